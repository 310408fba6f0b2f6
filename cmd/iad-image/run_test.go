package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(p("payload"), bytes.Repeat([]byte("rootfs "), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	// Steps run in order: later ones use the keys and images earlier ones made.
	steps := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout
		wantErr  string // substring of stderr
	}{
		{"no command", nil, exitUsage, "", "usage: iad-image"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"help", []string{"help"}, exitOK, "usage: iad-image", ""},
		{"keygen", []string{"keygen", "-out", p("signer")}, exitOK, "wrote ", ""},
		{"keygen other", []string{"keygen", "-out", p("other")}, exitOK, "key id ", ""},
		{"keygen refuses overwrite", []string{"keygen", "-out", p("signer")}, exitFailure, "", "exists"},
		{"keygen without -out", []string{"keygen"}, exitUsage, "", "-out is required"},
		{"build", []string{"build", "-key", p("signer.key"), "-version", "2.1.0", "-hw", "iad-arm-v1",
			"-config-format", "4", "-created", "1767225600", "-in", p("payload"), "-out", p("good.img")}, exitOK, "wrote ", ""},
		{"build without -in", []string{"build", "-key", p("signer.key"), "-version", "2", "-hw", "x", "-out", p("x.img")}, exitUsage, "", "-in is required"},
		{"build bad flag", []string{"build", "-bogus"}, exitUsage, "", "flag provided but not defined"},
		{"build config-format too big", []string{"build", "-key", p("signer.key"), "-version", "2", "-hw", "x",
			"-config-format", "4294967296", "-in", p("payload"), "-out", p("x.img")}, exitUsage, "", "32 bits"},
		{"build with public key", []string{"build", "-key", p("signer.pub"), "-version", "2", "-hw", "x",
			"-in", p("payload"), "-out", p("x.img")}, exitFailure, "", "bad key"},
		{"build missing payload", []string{"build", "-key", p("signer.key"), "-version", "2", "-hw", "x",
			"-in", p("nope"), "-out", p("x.img")}, exitFailure, "", "no such file"},
		{"inspect", []string{"inspect", p("good.img")}, exitOK,
			"hardware: iad-arm-v1\nversion: 2.1.0\nconfig-format: 4\npayload-size: 35000\n", ""},
		{"inspect created", []string{"inspect", p("good.img")}, exitOK, "created: 2026-01-01T00:00:00Z\n", ""},
		{"inspect not an image", []string{"inspect", p("payload")}, exitFailure, "", "bad magic"},
		{"inspect two files", []string{"inspect", p("a"), p("b")}, exitUsage, "", "exactly one"},
		{"verify", []string{"verify", "-pub", p("signer.pub"), "-hw", "iad-arm-v1", p("good.img")}, exitOK, "ok\n", ""},
		{"verify second key", []string{"verify", "-pub", p("other.pub"), "-pub", p("signer.pub"), p("good.img")}, exitOK, "ok\n", ""},
		{"verify untrusted", []string{"verify", "-pub", p("other.pub"), p("good.img")}, exitFailure, "", "untrusted"},
		{"verify wrong hardware", []string{"verify", "-pub", p("signer.pub"), "-hw", "iad-x86", p("good.img")}, exitFailure, "", "incompatible hardware"},
		{"verify too large", []string{"verify", "-pub", p("signer.pub"), "-max", "100", p("good.img")}, exitFailure, "", "too large"},
		{"verify without -pub", []string{"verify", p("good.img")}, exitUsage, "", "-pub is required"},
		{"verify corrupt", []string{"verify", "-pub", p("signer.pub"), p("corrupt.img")}, exitFailure, "", "hash mismatch"},
		{"verify truncated", []string{"verify", "-pub", p("signer.pub"), p("short.img")}, exitFailure, "", "truncated"},
	}
	for _, s := range steps {
		if s.name == "verify corrupt" {
			corrupt(t, p("good.img"), p("corrupt.img"), p("short.img"))
		}
		code, out, errOut := runCmd(ctx, s.args...)
		if code != s.wantCode || !strings.Contains(out, s.wantOut) || !strings.Contains(errOut, s.wantErr) {
			t.Errorf("%s: got exit %d, stdout %q, stderr %q; want exit %d, stdout containing %q, stderr containing %q",
				s.name, code, out, errOut, s.wantCode, s.wantOut, s.wantErr)
		}
	}
	if _, err := os.Stat(p("x.img")); err == nil {
		t.Error("a failed build left its output file")
	}
	if leftovers, _ := filepath.Glob(p(".*.tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %q", leftovers)
	}
}

// corrupt writes a copy of src with one payload bit flipped, and one cut short.
func corrupt(t *testing.T, src, flipped, short string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	c := bytes.Clone(data)
	c[len(c)-1] ^= 0x80
	if err := os.WriteFile(flipped, c, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, data[:len(data)-1], 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBuildCanceled(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCmd(context.Background(), "keygen", "-out", filepath.Join(dir, "k")); code != exitOK {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "payload"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(dir, "img")
	code, _, errOut := runCmd(ctx, "build", "-key", filepath.Join(dir, "k.key"), "-version", "1", "-hw", "h",
		"-in", filepath.Join(dir, "payload"), "-out", out)
	if code != exitFailure || !strings.Contains(errOut, "context canceled") {
		t.Errorf("got exit %d, stderr %q; want %d and context canceled", code, errOut, exitFailure)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("canceled build left an image")
	}
}
