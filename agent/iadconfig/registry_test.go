package iadconfig_test

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

func TestPlan(t *testing.T) {
	reg := iadconfig.Default()
	cases := []struct {
		from, to uint32
		force    bool
		steps    int
		err      error
		text     string
	}{
		{1, 1, false, 0, nil, ""},
		{1, 2, false, 1, nil, ""},
		{2, 2, false, 0, nil, ""},
		{1, 3, false, 0, iadconfig.ErrMajorMismatch, "configuration is format 1 (compat 1.0), the running software uses format 3 (compat 2.0); force to convert anyway"},
		{2, 3, false, 0, iadconfig.ErrMajorMismatch, ""},
		{1, 3, true, 2, nil, ""},
		{2, 3, true, 1, nil, ""},
		{3, 3, false, 0, nil, ""},
		{2, 1, false, 0, iadconfig.ErrTooNew, "configuration is format 2, the running software uses format 1"},
		{3, 1, true, 0, iadconfig.ErrTooNew, ""},
		{9, 3, true, 0, iadconfig.ErrTooNew, ""},
		{1, 9, true, 0, iadconfig.ErrUnknownFormat, "target format 9"},
		{0, 3, true, 0, iadconfig.ErrUnknownFormat, "format 0"},
	}
	for _, tc := range cases {
		plan, err := reg.Plan(tc.from, tc.to, tc.force)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Plan(%d, %d, %v): got %v, want %v", tc.from, tc.to, tc.force, err, tc.err)
			continue
		}
		if tc.text != "" && !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Plan(%d, %d, %v): %q does not say %q", tc.from, tc.to, tc.force, err, tc.text)
		}
		if len(plan) != tc.steps {
			t.Errorf("Plan(%d, %d, %v): %d steps, want %d", tc.from, tc.to, tc.force, len(plan), tc.steps)
		}
	}
	if !reg.IsMajor(2, 3) || reg.IsMajor(1, 2) {
		t.Errorf("IsMajor: 2→3 must be major, 1→2 minor")
	}
}

func TestRegistryRejectsBadTables(t *testing.T) {
	r := iadconfig.NewRegistry()
	if err := r.AddFormat(iadconfig.V1()); err != nil {
		t.Fatal(err)
	}
	if err := r.AddFormat(iadconfig.V1()); err == nil {
		t.Error("format 1 registered twice")
	}
	if err := r.AddConverter(iadconfig.Converter{From: 1, To: 2, Convert: iadconfig.ConvertV1ToV2}); err == nil {
		t.Error("converter to an unregistered format accepted")
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.AddFormat(iadconfig.V2()))
	must(r.AddFormat(iadconfig.V3()))
	if err := r.AddConverter(iadconfig.Converter{From: 1, To: 3, Convert: iadconfig.ConvertV1ToV2}); err == nil {
		t.Error("a converter skipping a version accepted")
	}
	if err := r.AddConverter(iadconfig.Converter{From: 1, To: 2}); err == nil {
		t.Error("a converter without a function accepted")
	}
	// A gap in the chain: no 2→3.
	must(r.AddConverter(iadconfig.Converter{From: 1, To: 2, Convert: iadconfig.ConvertV1ToV2}))
	if _, err := r.Plan(1, 3, true); !errors.Is(err, iadconfig.ErrUnknownFormat) {
		t.Errorf("Plan over a gap: got %v, want ErrUnknownFormat", err)
	}
	bad := iadconfig.V1()
	bad.Version = 7
	bad.Fields = append(bad.Fields, iadconfig.Field{File: "users.conf", Key: "line.<n>.api-key", Type: bad.Fields[0].Type})
	if err := r.AddFormat(bad); err == nil {
		t.Error("a secret-looking field not marked Secret was accepted")
	}
}

func TestDecode(t *testing.T) {
	reg := iadconfig.Default()
	full := func() map[string][]byte {
		files, err := reg.Encode(fullDoc(t, 1))
		if err != nil {
			t.Fatal(err)
		}
		return files
	}
	cases := []struct {
		name  string
		edit  func(map[string][]byte)
		err   error
		text  string
		check func(*iadconfig.Doc)
	}{
		{"ok", func(map[string][]byte) {}, nil, "", nil},
		{"no defaults.conf", func(m map[string][]byte) { delete(m, "defaults.conf") }, iadconfig.ErrUnknownFormat, "defaults.conf is missing", nil},
		{"defaults.conf without version", func(m map[string][]byte) { m["defaults.conf"] = []byte("a = 1\n") }, iadconfig.ErrUnknownFormat, "first entry must be format-version", nil},
		{"too new", func(m map[string][]byte) { m["defaults.conf"] = []byte("format-version = 4\n") }, iadconfig.ErrTooNew, "format 4, this software knows up to 3", nil},
		{"syntax errors listed", func(m map[string][]byte) {
			m["users.conf"] = []byte("format-version = 1\nnonsense\n")
			m["ports.conf"] = []byte("format-version = 1\na = 1\na = 2\n")
		}, iadconfig.ErrInvalid, "2 problems: users.conf: want key = value; ports.conf: a given twice (first on line 2)", nil},
		{"missing model file left to Validate", func(m map[string][]byte) { delete(m, "ports.conf") }, nil, "", func(d *iadconfig.Doc) {
			if d.File("ports.conf") != nil || d.File("users.conf") == nil {
				t.Errorf("files: %v", d.Names())
			}
		}},
		{"other files ignored", func(m map[string][]byte) { m["sip-extra.conf"] = []byte("\x00binary") }, nil, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := full()
			tc.edit(m)
			d, err := reg.Decode(readMap(m))
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if tc.text != "" && !strings.Contains(err.Error(), tc.text) {
				t.Errorf("%q does not say %q", err, tc.text)
			}
			if tc.check != nil {
				tc.check(d)
			}
		})
	}
}

// TestSecretsNeverShown: String, LogValue and problems redact passwords.
func TestSecretsNeverShown(t *testing.T) {
	d := loadDir(t, filepath.Join("testdata", "convert", "1-2", "full", "in"))
	secrets := d.Secrets()
	if len(secrets) != 2 {
		t.Fatalf("Secrets: got %d values, want 2", len(secrets))
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "doc", d)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "doc", d)
	for _, out := range []string{d.String(), logged.String()} {
		for _, s := range secrets {
			if strings.Contains(out, s) || strings.Contains(out, strings.TrimSpace(s)) {
				t.Errorf("output shows a secret:\n%s", out)
			}
		}
		if !strings.Contains(out, "<redacted>") || !strings.Contains(out, "fax-line") {
			t.Errorf("output lacks the redaction mark or the other values:\n%s", out)
		}
	}
	// A secret that breaks a rule is reported without its value.
	d.Files["users.conf"].Set("line.1.sip.password", "bad\x01secret-value")
	if ps := iadconfig.Default().Validate(d); ps == nil || strings.Contains(ps.Error(), "secret-value") {
		t.Errorf("problems: %v", ps)
	}
	if got := iadconfig.Redact("hook said: Xy!9#pq failed", secrets); got != "hook said: <redacted> failed" {
		t.Errorf("Redact: got %q", got)
	}
	for key, want := range map[string]bool{"line.1.sip.password": true, "x.api-key": true, "a.secret": true, "line.1.number": false, "sip.registrar": false} {
		if iadconfig.IsSecretKey(key) != want {
			t.Errorf("IsSecretKey(%q) = %v, want %v", key, !want, want)
		}
	}
}
