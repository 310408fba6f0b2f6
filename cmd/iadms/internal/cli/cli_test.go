package cli

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs Main with its output in files and returns the exit code and
// standard error.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	open := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, stderr := open("out"), open("err")
	code := Main(context.Background(), args, IO{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	stdout.Close()
	stderr.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "err"))
	return code, string(b)
}

func credsFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(p, []byte("default v2c community=x\nfiles ftp user=u password=p\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsage(t *testing.T) {
	c := credsFile(t)
	state := filepath.Join(t.TempDir(), "state")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, ExitUsage, "usage: iadms COMMAND"},
		{[]string{"help"}, ExitOK, "Commands:"},
		{[]string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{[]string{"upgrade", "-h"}, ExitOK, "-image file"},
		{[]string{"upgrade", "--device", "192.0.2.1"}, ExitUsage, "--image FILE is required"},
		{[]string{"upgrade", "--image", "x", "--concurrency", "0"}, ExitUsage, "--concurrency >= 1"},
		{[]string{"upgrade", "--image", "/nonexistent.img", "--creds", c, "--state", state, "--device", "192.0.2.1"}, ExitUsage, "no such file"},
		{[]string{"status", "--creds", c, "--state", state}, ExitUsage, "give --device IP[:PORT] or --targets FILE"},
		{[]string{"status", "--creds", c, "--state", state, "--device", "x.example"}, ExitUsage, "want IP[:PORT]"},
		{[]string{"status", "--creds", c, "--state", state, "--device", "192.0.2.1", "--targets", "t"}, ExitUsage, "not both"},
		{[]string{"status", "--creds", c, "--state", state, "--device", "192.0.2.1", "--cred", "files"}, ExitUsage, "wrong kind of credentials"},
		{[]string{"status", "--creds", c, "--state", state, "--log-level", "loud", "--device", "192.0.2.1"}, ExitUsage, "--log-level"},
		{[]string{"restore", "--creds", c, "--state", state, "--device", "192.0.2.1"}, ExitUsage, "--in FILE is required"},
		{[]string{"reset", "--creds", filepath.Join(t.TempDir(), "missing"), "--state", state, "--device", "192.0.2.1"}, ExitUsage, "no such file"},
	} {
		code, stderr := run(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("iadms %s: exit %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

func TestServerFlag(t *testing.T) {
	c := credsFile(t)
	for _, tc := range []struct {
		server, cred, want string
	}{
		{"tftp://192.0.2.5", "", "tftp 192.0.2.5:69"},
		{"tftp://192.0.2.5:6969", "", "tftp 192.0.2.5:6969"},
		{"ftp://[2001:db8::5]", "files", "ftp [2001:db8::5]:21"},
		{"ftp://192.0.2.5", "", "needs --server-cred"},
		{"ftp://192.0.2.5", "default", "wrong kind"},
		{"http://192.0.2.5", "", "scheme must be tftp or ftp"},
		{"tftp://server.example", "", "must be an IP address"},
		{"tftp://192.0.2.5/dir", "", "want tftp://IP[:PORT]"},
		{"tftp://192.0.2.5:0", "", "bad port"},
	} {
		e, err := setup(&common{credsPath: c, state: t.TempDir(), logPath: "-", logLevel: "info"}, IO{Stderr: os.Stderr})
		if err != nil {
			t.Fatal(err)
		}
		e.io.Stderr = nil
		files, err := e.files(&fileFlags{server: tc.server, serverCred: tc.cred})
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			l := files.Location()
			got = l.Protocol.String() + " " + l.Server.String()
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("--server %s --server-cred %q: got %q, want %q", tc.server, tc.cred, got, tc.want)
		}
		e.close()
	}
}

func TestNameFromAddr(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.1:161": "192.0.2.1_161", "[2001:db8::1]:1161": "2001-db8--1_1161"} {
		if got := nameFromAddr(netip.MustParseAddrPort(in)); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}
