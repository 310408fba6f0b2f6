package device

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/creds"
	"github.com/iadsafe/iad-agent/mib"
)

func TestMain(m *testing.M) { os.Exit(itest.Main(m)) }

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1": "192.0.2.1:161", "192.0.2.1:1161": "192.0.2.1:1161",
		"::1": "[::1]:161", "[2001:db8::1]:162": "[2001:db8::1]:162",
	} {
		got, err := ParseAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "host.example:161", "192.0.2.1:0", "192.0.2.1:99999", "[::1]"} {
		if _, err := ParseAddr(in); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseAddr(%q): got %v, want ErrConfig", in, err)
		}
	}
}

func v2c(community string) creds.Entry {
	return creds.Entry{Name: "t", Kind: creds.KindV2c, Community: creds.Secret(community)}
}

// TestAgent drives a real iad-agent: software state, a row created with
// one SET and read back, the table walked, refusals.
func TestAgent(t *testing.T) {
	a := itest.StartAgent(t, "", "-rw-community", "rw-secret", "-slot-size", "1MiB")
	ctx := context.Background()
	c, err := New(mustAddr(t, a.Target()), v2c("rw-secret"), Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sw, err := c.Software(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sw.Version != "1.0.0" || sw.Active != mib.BankA || sw.Next != mib.BankA || sw.Banks[mib.BankA].State != mib.BankActive ||
		sw.Banks[mib.BankB].State != mib.BankEmpty || sw.BootLimit != 3 || sw.Hardware != "iad-generic" || sw.Uptime < 0 { // uptime may still read 0 ticks right after start
		t.Errorf("software: %+v", sw)
	}
	if _, err := c.Op(ctx, 5); !errors.Is(err, ErrNoSuchOp) {
		t.Errorf("Op of a missing row: got %v, want ErrNoSuchOp", err)
	}
	// A backup to a server that does not exist: the row is created and
	// fails with a cause.
	req := Request{Type: mib.OpBackupConfig, Server: mustAddr(t, "127.0.0.1:9"), File: "x.tar", Timeout: 3 * time.Second}
	if err := c.StartOp(ctx, 5, req); err != nil {
		t.Fatal(err)
	}
	if err := c.StartOp(ctx, 5, req); !errors.Is(err, ErrRefused) {
		t.Errorf("creating row 5 twice: got %v, want ErrRefused", err)
	}
	var op Op
	deadline := time.Now().Add(time.Minute)
	for !op.Done() && time.Now().Before(deadline) {
		if op, err = c.Op(ctx, 5); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if op.Type != mib.OpBackupConfig || op.File != "x.tar" || op.State != mib.OpFailed || op.FailCause == mib.FailNone || op.FailText == "" {
		t.Errorf("row 5: %+v", op)
	}
	if err := c.StartOp(ctx, 6, Request{Type: mib.OpRevert}); err != nil {
		t.Fatal(err)
	}
	ops, err := c.Ops(ctx)
	if err != nil || len(ops) != 2 || ops[0].Index != 5 || ops[1].Index != 6 || ops[1].Type != mib.OpRevert {
		t.Errorf("Ops: %+v, %v", ops, err)
	}
	// A file name the MIB does not allow is refused with nothing created.
	bad := req
	bad.File = "caf\u00e9.tar"
	if err := c.StartOp(ctx, 7, bad); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "WrongValue") {
		t.Errorf("non-ASCII file name: got %v, want wrongValue", err)
	}
	if _, err := c.Op(ctx, 7); !errors.Is(err, ErrNoSuchOp) {
		t.Errorf("refused row exists: %v", err)
	}
	// Read-only credentials cannot start anything.
	ro, _ := New(mustAddr(t, a.Target()), v2c("public"), Options{Timeout: 300 * time.Millisecond})
	defer ro.Close()
	if err := ro.StartOp(ctx, 8, Request{Type: mib.OpRevert}); err == nil {
		t.Errorf("SET with the read community accepted")
	}
	if err := ro.CheckWrite(ctx, 3); !errors.Is(err, ErrUnreachable) {
		t.Errorf("CheckWrite with the read community: got %v, want no answer", err)
	}
	if err := c.CheckWrite(ctx, 3); err != nil {
		t.Errorf("CheckWrite: %v", err)
	}
	if sw, _ := c.Software(ctx); sw.BootLimit != 3 {
		t.Errorf("boot limit %d after CheckWrite, want 3", sw.BootLimit)
	}
	if err := c.StartOp(ctx, 0, Request{Type: mib.OpRevert}); !errors.Is(err, ErrConfig) {
		t.Errorf("index 0: got %v, want ErrConfig", err)
	}
}

func TestNotIAD(t *testing.T) {
	d := itest.StartSNMPD(t, "")
	c, err := New(mustAddr(t, d.Target()), v2c("public"), Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Software(context.Background()); !errors.Is(err, ErrNotIAD) {
		t.Errorf("net-snmp's snmpd: got %v, want ErrNotIAD", err)
	}
}

// TestSNMPv3 reads net-snmp's snmpd with SNMPv3 users from the
// credentials format (the agent speaks v3 once its USM exists).
func TestSNMPv3(t *testing.T) {
	conf := "createUser authpriv SHA-256 auth-pass-123 AES priv-pass-123\n" +
		"createUser authonly SHA auth-pass-123\n" +
		"rouser authpriv priv\nrouser authonly auth\nrocommunity public 127.0.0.1\n"
	d := itest.StartSNMPD(t, conf)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		line string
		ok   bool
	}{
		{"authPriv SHA-256 AES", "u v3 user=authpriv auth=SHA-256 auth-pass=auth-pass-123 priv=AES priv-pass=priv-pass-123", true},
		{"authNoPriv SHA", "u v3 user=authonly auth=SHA auth-pass=auth-pass-123", true},
		{"wrong password", "u v3 user=authpriv auth=SHA-256 auth-pass=wrong-pass-1 priv=AES priv-pass=priv-pass-123", false},
		{"unknown user", "u v3 user=nobody auth=SHA auth-pass=auth-pass-123", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := creds.Parse(strings.NewReader(tc.line))
			if err != nil {
				t.Fatal(err)
			}
			e, _ := f.SNMP("u")
			c, err := New(mustAddr(t, d.Target()), e, Options{Timeout: 500 * time.Millisecond, Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			up, err := c.Uptime(ctx)
			if tc.ok && (err != nil || up <= 0) {
				t.Fatalf("got %v, %v; want the uptime", up, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("got an answer, want a refusal")
			}
			if err != nil && strings.Contains(err.Error(), "pass-123") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

func mustAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	a, err := ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
