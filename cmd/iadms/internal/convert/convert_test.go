package convert

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/image"
)

// backup makes a real backup archive (the agent's own code) of the
// default configuration, in config format 1.
func backup(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	s, err := config.Open(ctx, config.Options{Root: filepath.Join(t.TempDir(), "store")})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, _, err := s.Backup(ctx, &b, config.BackupMeta{SoftwareVersion: "1.0.0", ConfigFormat: 1}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stage unpacks an archive with the agent's code, which verifies it, and
// returns the files.
func stage(t *testing.T, archive []byte) (config.Manifest, map[string]string) {
	t.Helper()
	ctx := context.Background()
	s, err := config.Open(ctx, config.Options{Root: filepath.Join(t.TempDir(), "store")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stage(ctx, bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("the converted archive does not stage: %v", err)
	}
	if err := st.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range st.Manifest().Files {
		b, err := os.ReadFile(filepath.Join(s.LiveDir(), f.Name))
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name] = string(b)
	}
	return st.Manifest(), files
}

func script(t *testing.T, body string) Command {
	t.Helper()
	p := filepath.Join(t.TempDir(), "conv.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nset -e\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return Command{Argv: []string{p}}
}

func TestArchiveWithCommand(t *testing.T) {
	in := backup(t)
	m, err := ReadManifest(bytes.NewReader(in))
	if err != nil || m.ConfigFormat != 1 {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	conv := script(t, `echo "format-version=$2 from=$1" > "$3/format.conf"; sed -i 's/^/v2 /' "$3/ports.conf"`)
	var out bytes.Buffer
	got, err := Archive(context.Background(), bytes.NewReader(in), &out, Plan{From: 1, To: 2, Version: "2.0.0"}, conv, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got.ConfigFormat != 2 || got.SoftwareVersion != "2.0.0" {
		t.Errorf("new manifest: %+v", got)
	}
	m2, files := stage(t, out.Bytes())
	if m2.ConfigFormat != 2 || files["format.conf"] != "format-version=2 from=1\n" || !strings.HasPrefix(files["ports.conf"], "v2 ") {
		t.Errorf("converted: format %d, files %v", m2.ConfigFormat, files)
	}
}

func TestArchiveFailures(t *testing.T) {
	in := backup(t)
	work := t.TempDir()
	for _, tc := range []struct {
		name string
		conv Converter
		plan Plan
		data []byte
		want error
		text string
	}{
		{"no converter", nil, Plan{From: 1, To: 2}, in, ErrNoConverter, "format 1 to 2"},
		{"converter fails", script(t, "echo broken >&2; exit 4"), Plan{From: 1, To: 2}, in, ErrConverter, "broken"},
		{"converter leaves a symlink", script(t, `ln -s /etc/passwd "$3/evil"`), Plan{From: 1, To: 2}, in, ErrConverter, "unsafe"},
		{"wrong source format", script(t, "true"), Plan{From: 3, To: 4}, in, ErrArchive, "backup is format 1, expected 3"},
		{"truncated archive", script(t, "true"), Plan{From: 1, To: 2}, in[:len(in)/2], ErrArchive, ""},
		{"operator says no", Manual{Ask: func(context.Context, string) (bool, error) { return false, nil }}, Plan{From: 1, To: 2}, in, ErrDeclined, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Archive(context.Background(), bytes.NewReader(tc.data), &out, tc.plan, tc.conv, work)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v with %q", err, tc.want, tc.text)
			}
		})
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("work directory not cleaned: %v", left)
	}
}

func TestManualAsksWithTheDirectory(t *testing.T) {
	var question string
	m := Manual{Ask: func(_ context.Context, q string) (bool, error) {
		question = q
		return true, nil
	}}
	var out bytes.Buffer
	if _, err := Archive(context.Background(), bytes.NewReader(backup(t)), &out, Plan{From: 1, To: 2, Version: "2.0.0"}, m, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(question, "format 1; the new software expects format 2") || !strings.Contains(question, "Edit the files under /") {
		t.Errorf("question: %q", question)
	}
}

func TestReadManifestErrors(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("garbage"), make([]byte, 1024)} {
		if _, err := ReadManifest(bytes.NewReader(in)); !errors.Is(err, ErrArchive) {
			t.Errorf("%q: got %v, want ErrArchive", in[:min(len(in), 8)], err)
		}
	}
}

func TestImageFormat(t *testing.T) {
	f, err := ImageFormat{Header: image.Header{ConfigFormat: 7}}.TargetFormat(context.Background())
	if f != 7 || err != nil {
		t.Errorf("got %d %v", f, err)
	}
}
