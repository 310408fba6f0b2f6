package creds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `# iadms credentials
lab    v2c  community=s3cret-rw read-community=s3cret-ro   # trailing comment
core   v3   user=ops level=authPriv auth=SHA-256 auth-pass=authpass-123 priv=AES priv-pass=privpass-123
ro3    v3   user=viewer
files  ftp  user=iad password="pass word #1"
`

func TestParse(t *testing.T) {
	f, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(f.Names(), ","), "core,files,lab,ro3"; got != want {
		t.Fatalf("names: got %s, want %s", got, want)
	}
	lab, _ := f.SNMP("lab")
	if lab.Community.Reveal() != "s3cret-rw" || lab.ReadOnly().Community.Reveal() != "s3cret-ro" {
		t.Errorf("lab: got community %q / read %q", lab.Community.Reveal(), lab.ReadOnly().Community.Reveal())
	}
	core, _ := f.SNMP("core")
	if core.Level != AuthPriv || core.Auth != "SHA-256" || core.Priv != "AES" || core.PrivPass.Reveal() != "privpass-123" {
		t.Errorf("core: got %+v", core)
	}
	ro3, _ := f.SNMP("ro3")
	if ro3.Level != NoAuthNoPriv {
		t.Errorf("ro3: level %s, want noAuthNoPriv", ro3.Level)
	}
	files, err := f.FTP("files")
	if err != nil || files.Password.Reveal() != "pass word #1" {
		t.Errorf("files: got %q, %v", files.Password.Reveal(), err)
	}
	if _, err := f.SNMP("files"); !errors.Is(err, ErrKind) {
		t.Errorf("SNMP(files): got %v, want ErrKind", err)
	}
	if _, err := f.FTP("lab"); !errors.Is(err, ErrKind) {
		t.Errorf("FTP(lab): got %v, want ErrKind", err)
	}
	if _, err := f.Get("nope"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Get(nope): got %v, want ErrUnknown", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, line, want string }{
		{"no kind", "lab", "want NAME KIND"},
		{"bad kind", "lab v1 community=x", `kind "v1"`},
		{"bad name", "../x v2c community=x", "bad name"},
		{"no community", "lab v2c", "needs community="},
		{"unknown key", "lab v2c community=x comunity=y", "unknown keys for v2c: comunity"},
		{"field without =", "lab v2c community=x oops", "without '='"},
		{"twice", "lab v2c community=x community=y", "given twice"},
		{"v3 no user", "a v3 level=noAuthNoPriv", "needs user="},
		{"v3 bad level", "a v3 user=u level=high", "level"},
		{"v3 bad auth", "a v3 user=u level=authNoPriv auth=SHA1 auth-pass=12345678", "auth \"SHA1\""},
		{"v3 short pass", "a v3 user=u auth=SHA auth-pass=short", "at least 8"},
		{"v3 priv without auth", "a v3 user=u level=authNoPriv auth=SHA auth-pass=12345678 priv=AES priv-pass=12345678", "priv settings"},
		{"v3 bad priv", "a v3 user=u level=authPriv auth=SHA auth-pass=12345678 priv=3DES priv-pass=12345678", "priv \"3DES\""},
		{"ftp no user", "f ftp password=x", "needs user="},
		{"unterminated", `lab v2c community="abc`, "unterminated"},
		{"duplicate", "lab v2c community=x\nlab v2c community=y", "defined twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.line))
			if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrSyntax containing %q", err, tc.want)
			}
		})
	}
}

// TestSyntaxErrorsHideValues: a malformed line must not echo what may be
// a secret.
func TestSyntaxErrorsHideValues(t *testing.T) {
	for _, line := range []string{
		"lab v2c community=topsecret junkfield-topsecret",
		`lab v2c community="topsecret`,
		"a v3 user=u auth=SHA auth-pass=topsec",
	} {
		_, err := Parse(strings.NewReader(line))
		if err == nil || strings.Contains(err.Error(), "topsec") {
			t.Errorf("%q: error %v shows the value", line, err)
		}
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	f, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	jlog := slog.New(slog.NewJSONHandler(&buf, nil))
	for _, name := range f.Names() {
		e, _ := f.Get(name)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			fmt.Fprintf(&buf, verb+"\n", e)
			fmt.Fprintf(&buf, verb+"\n", e.Community)
			fmt.Fprintf(&buf, verb+"\n", e.Password)
		}
		log.Info("entry", "e", e, "community", e.Community, "pw", e.PrivPass)
		jlog.Info("entry", "e", e, "raw", struct{ C Secret }{e.AuthPass})
		b, _ := json.Marshal(e)
		buf.Write(b)
		buf.WriteString(fmt.Sprint(e))
	}
	for _, secret := range []string{"s3cret", "authpass", "privpass", "pass word"} {
		if strings.Contains(buf.String(), secret) {
			t.Fatalf("%q printed:\n%s", secret, buf.String())
		}
	}
}

func TestLoadPermissions(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o640, true},
		{0o644, false}, // world-readable
		{0o604, false},
		{0o660, false}, // group-writable
		{0o602, false},
		{0o601, false},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("creds-%o", tc.mode))
			if err := os.WriteFile(p, []byte(sample), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			f, err := Load(p)
			if tc.ok {
				if err != nil {
					t.Fatalf("got %v, want the file accepted", err)
				}
				if f.Path != p {
					t.Errorf("path: got %s", f.Path)
				}
				return
			}
			if !errors.Is(err, ErrPermissions) || !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("got %v, want ErrPermissions with advice", err)
			}
		})
	}
	if _, err := Load(dir); !errors.Is(err, ErrPermissions) {
		t.Errorf("a directory: got %v, want ErrPermissions", err)
	}
}
