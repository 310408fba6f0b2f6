package itest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/snmp"
)

// The protocols net-snmp 5.9.3 on Debian 12 (the CI machine) offers, as
// `snmpget -h` lists them; the test checks the list against the tool and
// runs the whole matrix over them.
var (
	netsnmpAuth = []string{"MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"}
	netsnmpPriv = []string{"DES", "AES", "AES-192", "AES-256"}
)

const (
	v3AuthPass = "interop-auth-pass"
	v3PrivPass = "interop-priv-pass"
)

// toolProtocols reads the -a and -x protocol lists from snmpget -h.
func toolProtocols(t *testing.T) (auth, priv []string) {
	t.Helper()
	_, stderr, _ := SNMP{}.run(t, "snmpget", "-h")
	for _, line := range strings.Split(stderr, "\n") {
		m := regexp.MustCompile(`^\s+-([ax]) PROTOCOL.*\(([A-Z0-9|-]+)\)`).FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if m[1] == "a" {
			auth = strings.Split(m[2], "|")
		} else {
			priv = strings.Split(m[2], "|")
		}
	}
	return auth, priv
}

// v3Combo is one row of the interop matrix.
type v3Combo struct {
	level, auth, priv string
}

func (c v3Combo) user() string {
	switch c.level {
	case "noAuthNoPriv":
		return "plain"
	case "authNoPriv":
		return "a-" + c.auth
	}
	return "p-" + c.auth + "-" + c.priv
}

func (c v3Combo) v3() *V3User {
	u := &V3User{Name: c.user(), Level: c.level}
	if c.auth != "" {
		u.Auth, u.AuthPass = c.auth, v3AuthPass
	}
	if c.priv != "" {
		u.Priv, u.PrivPass = c.priv, v3PrivPass
	}
	return u
}

// writeSNMPConfig writes an -snmp-config file readable by the owner only.
func writeSNMPConfig(t *testing.T, conf string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "snmp.conf")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func v3Counter(t *testing.T, c SNMP, name string) int {
	t.Helper()
	return atoi(c.GetValue(t, "SNMP-USER-BASED-SM-MIB::"+name+".0"))
}

// TestSNMPv3Interop is the interop matrix: net-snmp's snmpget, snmpset,
// snmpwalk and snmpbulkwalk with -v3 at every security level, every
// authentication protocol and every privacy protocol the tools offer,
// against the real agent.
func TestSNMPv3Interop(t *testing.T) {
	auths, privs := toolProtocols(t)
	t.Logf("net-snmp offers -a %s and -x %s", strings.Join(auths, "|"), strings.Join(privs, "|"))
	if !slices.Equal(auths, netsnmpAuth) || !slices.Equal(privs, netsnmpPriv) {
		skipOrFatal(t, "net-snmp's protocol lists differ from the expected -a %v -x %v: got -a %v -x %v", netsnmpAuth, netsnmpPriv, auths, privs)
	}

	combos := []v3Combo{{level: "noAuthNoPriv"}}
	for _, a := range netsnmpAuth {
		combos = append(combos, v3Combo{level: "authNoPriv", auth: a})
	}
	for _, a := range netsnmpAuth {
		for _, p := range netsnmpPriv {
			combos = append(combos, v3Combo{level: "authPriv", auth: a, priv: p})
		}
	}
	var conf strings.Builder
	conf.WriteString("user plain rw\n")
	for _, c := range combos[1:] {
		fmt.Fprintf(&conf, "user %s auth %s %s", c.user(), c.auth, v3AuthPass)
		if c.priv != "" {
			fmt.Fprintf(&conf, " priv %s %s", c.priv, v3PrivPass)
		}
		conf.WriteString(" rw\n")
	}
	a := StartAgent(t, "", "-snmp-config", writeSNMPConfig(t, conf.String()), "-ro-community", "public", "-slot-size", "1MiB")

	type result struct{ get, set, walk, bulk bool }
	results := make([]result, len(combos))
	for i, c := range combos {
		t.Run(c.user(), func(t *testing.T) {
			cl := a.SNMP("")
			cl.V3 = c.v3()
			r := &results[i]
			got := cl.Get(t, "iadSwHardware.0", "SNMP-FRAMEWORK-MIB::snmpEngineBoots.0")
			r.get = got["iadSwHardware.0"] == "iad-generic"
			if !r.get {
				t.Errorf("snmpget: %v", got)
			}
			limit := strconv.Itoa(3 + i%5)
			if out, err := cl.Set(t, "iadSwBootLimit.0", "u", limit); err != nil {
				t.Errorf("snmpset: %v\n%s", err, out)
			} else {
				r.set = cl.GetValue(t, "iadSwBootLimit.0") == limit
				if !r.set {
					t.Errorf("iadSwBootLimit.0 after SET: want %s", limit)
				}
			}
			r.walk = len(cl.Walk(t, "iadBankTable")) == 8
			r.bulk = len(cl.BulkWalk(t, "iadBankTable")) == 8
			if !r.walk || !r.bulk {
				t.Errorf("walks of iadBankTable: snmpwalk ok=%v, snmpbulkwalk ok=%v (want 8 variables each)", r.walk, r.bulk)
			}
		})
	}
	mark := func(ok bool) string {
		if ok {
			return "pass"
		}
		return "FAIL"
	}
	var table strings.Builder
	table.WriteString("| level | auth | priv | snmpget | snmpset | snmpwalk | snmpbulkwalk |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for i, c := range combos {
		r := results[i]
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s | %s | %s |\n", c.level, or(c.auth, "-"), or(c.priv, "-"), mark(r.get), mark(r.set), mark(r.walk), mark(r.bulk))
	}
	t.Logf("interop matrix (net-snmp %s):\n%s", netsnmpVersion(t), table.String())
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func netsnmpVersion(t *testing.T) string {
	// snmpget -V prints "NET-SNMP version: 5.9.3" on stderr.
	stdout, stderr, _ := SNMP{}.run(t, "snmpget", "-V")
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stdout+stderr), "NET-SNMP version:"))
}

// TestSNMPv3Refusals: what net-snmp sees for a wrong password, an unknown
// user, a read-only user's SET and a user below its security level, and
// the usmStats counters that count them.
func TestSNMPv3Refusals(t *testing.T) {
	conf := "user admin auth SHA-256 " + v3AuthPass + " priv AES " + v3PrivPass + " rw\n" +
		"user viewer auth SHA " + v3AuthPass + " priv AES-256 " + v3PrivPass + " ro\n" +
		"user ops auth SHA-512 " + v3AuthPass + " priv AES " + v3PrivPass + " rw min-level authNoPriv write-level authPriv\n"
	a := StartAgent(t, "", "-snmp-config", writeSNMPConfig(t, conf), "-ro-community", "public", "-slot-size", "1MiB")
	admin := a.SNMP("")
	admin.V3 = &V3User{Name: "admin", Auth: "SHA-256", AuthPass: v3AuthPass, Priv: "AES", PrivPass: v3PrivPass}
	try := func(u *V3User, tool string, args ...string) (string, error) {
		c := a.SNMP("")
		c.V3, c.Retries = u, 0
		all := append(append(c.common(), a.Target()), args...)
		stdout, stderr, err := c.run(t, tool, all...)
		return stdout + stderr, err
	}

	t.Run("wrong auth password", func(t *testing.T) {
		before := v3Counter(t, admin, "usmStatsWrongDigests")
		out, err := try(&V3User{Name: "admin", Auth: "SHA-256", AuthPass: "not-the-password", Priv: "AES", PrivPass: v3PrivPass}, "snmpget", "iadSwHardware.0")
		if err == nil || !strings.Contains(out, "Authentication failure") {
			t.Errorf("snmpget with a wrong password: err %v, output %q, want an authentication failure report", err, out)
		}
		if after := v3Counter(t, admin, "usmStatsWrongDigests"); after <= before {
			t.Errorf("usmStatsWrongDigests: %d then %d, want growth", before, after)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		before := v3Counter(t, admin, "usmStatsUnknownUserNames")
		out, err := try(&V3User{Name: "mallory", Auth: "SHA", AuthPass: v3AuthPass}, "snmpget", "iadSwHardware.0")
		if err == nil || !strings.Contains(out, "Unknown user name") {
			t.Errorf("snmpget as an unknown user: err %v, output %q, want an unknown user report", err, out)
		}
		if after := v3Counter(t, admin, "usmStatsUnknownUserNames"); after <= before {
			t.Errorf("usmStatsUnknownUserNames: %d then %d, want growth", before, after)
		}
	})
	t.Run("read-only user's SET", func(t *testing.T) {
		viewer := &V3User{Name: "viewer", Auth: "SHA", AuthPass: v3AuthPass, Priv: "AES-256", PrivPass: v3PrivPass}
		before := admin.GetValue(t, "iadSwBootLimit.0")
		out, err := try(viewer, "snmpset", "iadSwBootLimit.0", "u", "7")
		if err == nil || !strings.Contains(out, "noAccess") {
			t.Errorf("read-only user's snmpset: err %v, output %q, want noAccess", err, out)
		}
		if got := admin.GetValue(t, "iadSwBootLimit.0"); got != before {
			t.Errorf("iadSwBootLimit.0: %s after the refused SET, was %s", got, before)
		}
		if _, err := try(viewer, "snmpget", "iadSwBootLimit.0"); err != nil {
			t.Errorf("read-only user's snmpget: %v", err)
		}
	})
	t.Run("below the write level", func(t *testing.T) {
		out, err := try(&V3User{Name: "ops", Level: "authNoPriv", Auth: "SHA-512", AuthPass: v3AuthPass, Priv: "AES", PrivPass: v3PrivPass}, "snmpset", "iadSwBootLimit.0", "u", "4")
		if err == nil || !strings.Contains(out, "authorizationError") {
			t.Errorf("SET at authNoPriv by a user writing at authPriv: err %v, output %q, want authorizationError", err, out)
		}
		if out, err := try(&V3User{Name: "ops", Auth: "SHA-512", AuthPass: v3AuthPass, Priv: "AES", PrivPass: v3PrivPass}, "snmpset", "iadSwBootLimit.0", "u", "4"); err != nil {
			t.Errorf("SET at authPriv: %v\n%s", err, out)
		}
	})
	t.Run("authPriv user in the clear", func(t *testing.T) {
		before := v3Counter(t, admin, "usmStatsUnsupportedSecLevels")
		out, err := try(&V3User{Name: "admin", Level: "authNoPriv", Auth: "SHA-256", AuthPass: v3AuthPass}, "snmpget", "iadSwHardware.0")
		if err == nil || !strings.Contains(out, "Unsupported security level") {
			t.Errorf("authPriv user at authNoPriv: err %v, output %q, want an unsupported security level report", err, out)
		}
		if after := v3Counter(t, admin, "usmStatsUnsupportedSecLevels"); after <= before {
			t.Errorf("usmStatsUnsupportedSecLevels: %d then %d, want growth", before, after)
		}
	})
	t.Run("v2c without a rw community", func(t *testing.T) {
		// No rw community is configured: v2c SET is off.
		c := a.SNMP("public")
		c.Retries = 0
		c.Timeout = 300 * time.Millisecond
		if out, err := c.Set(t, "iadSwBootLimit.0", "u", "5"); err == nil {
			t.Errorf("v2c SET with the read community succeeded: %s", out)
		}
	})
}

// TestSNMPv3Restart: engineBoots grows at every start (persisted in the
// journal), and a manager holding the old boots and time re-synchronises
// by itself through the notInTimeWindow report.
func TestSNMPv3Restart(t *testing.T) {
	conf := "user admin auth SHA " + v3AuthPass + " priv AES " + v3PrivPass + " rw\n"
	a := StartAgent(t, "", "-snmp-config", writeSNMPConfig(t, conf), "-ro-community", "public", "-slot-size", "1MiB")
	c := a.SNMP("")
	c.V3 = &V3User{Name: "admin", Auth: "SHA", AuthPass: v3AuthPass, Priv: "AES", PrivPass: v3PrivPass}
	before := c.Get(t, "SNMP-FRAMEWORK-MIB::snmpEngineID.0", "SNMP-FRAMEWORK-MIB::snmpEngineBoots.0", "SNMP-FRAMEWORK-MIB::snmpEngineTime.0")
	boots := atoi(before["SNMP-FRAMEWORK-MIB::snmpEngineBoots.0"])
	engineID := strings.ReplaceAll(before["SNMP-FRAMEWORK-MIB::snmpEngineID.0"], " ", "")
	if boots < 1 || len(engineID) < 10 {
		t.Fatalf("first start: boots %d engine ID %q", boots, engineID)
	}

	a.Stop(t)
	a.Restart(t)
	after := c.Get(t, "SNMP-FRAMEWORK-MIB::snmpEngineID.0", "SNMP-FRAMEWORK-MIB::snmpEngineBoots.0")
	if got := atoi(after["SNMP-FRAMEWORK-MIB::snmpEngineBoots.0"]); got != boots+1 {
		t.Errorf("snmpEngineBoots after a restart: got %d, want %d", got, boots+1)
	}
	if got := strings.ReplaceAll(after["SNMP-FRAMEWORK-MIB::snmpEngineID.0"], " ", ""); got != engineID {
		t.Errorf("snmpEngineID changed across a restart: %s then %s", engineID, got)
	}

	// A manager that cached the engine before the restart: net-snmp skips
	// discovery with -e and -Z, gets notInTimeWindow, re-synchronises and
	// retries on its own.
	notInTime := v3Counter(t, c, "usmStatsNotInTimeWindows")
	stale := *c.V3
	stale.Extra = []string{"-e", "0x" + engineID, "-Z", strconv.Itoa(boots) + "," + before["SNMP-FRAMEWORK-MIB::snmpEngineTime.0"]}
	sc := c
	sc.V3 = &stale
	if got := sc.GetValue(t, "iadSwHardware.0"); got != "iad-generic" {
		t.Errorf("snmpget with the old boots: got %q", got)
	}
	if got := v3Counter(t, c, "usmStatsNotInTimeWindows"); got <= notInTime {
		t.Errorf("usmStatsNotInTimeWindows: %d then %d: the stale request was not caught", notInTime, got)
	}
}

// TestSNMPv3ObjectNames checks the OIDs the engine serves for the SNMPv3
// MIB modules against snmptranslate.
func TestSNMPv3ObjectNames(t *testing.T) {
	c := SNMP{}
	for name, oid := range snmp.V3Names {
		if got := c.Translate(t, name); got != oid.String() {
			t.Errorf("%s: snmptranslate says %s, the engine uses %s", name, got, oid)
		}
	}
}
