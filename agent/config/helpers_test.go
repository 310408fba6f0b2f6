package config

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// Limits of the test stores, small so golden archives stay small.
const (
	testMaxFiles = 6
	testMaxSize  = 4096
)

var fixedTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func testOptions(root string) Options {
	return Options{
		Root:           root,
		MaxFiles:       testMaxFiles,
		MaxArchiveSize: testMaxSize,
		now:            func() time.Time { return fixedTime },
	}
}

func openTest(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", opts.Root, err)
	}
	return s
}

func mustDigest(t *testing.T, s *Store) [32]byte {
	t.Helper()
	d, err := s.Digest()
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return d
}

// listDir returns the sorted names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir(%s): %v", dir, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// testFile is one entry of a hand-built archive.
type testFile struct {
	name string
	mode uint32
	body string
	dir  bool
}

func sha(body string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(body))) }

// baseFiles is a small configuration with a subdirectory.
func baseFiles() []testFile {
	return []testFile{
		{name: "ports.conf", mode: 0o644, body: "format-version = 1\nfxs1.type = fxs\n"},
		{name: "sip", mode: 0o750, dir: true},
		{name: "sip/proxy.conf", mode: 0o600, body: "format-version = 1\nsip.registrar = 192.0.2.10\n"},
		{name: "users.conf", mode: 0o640, body: "format-version = 1\nline.1.number = 2001\n"},
	}
}

func manifestOf(files []testFile) Manifest {
	m := Manifest{Format: ManifestFormat, SoftwareVersion: "1.0.0", ConfigFormat: 1, Created: fixedTime, Files: []FileEntry{}}
	for _, f := range files {
		if f.dir {
			m.Dirs = append(m.Dirs, DirEntry{Name: f.name, Mode: f.mode})
			continue
		}
		m.Files = append(m.Files, FileEntry{Name: f.name, Size: int64(len(f.body)), Mode: f.mode, SHA256: sha(f.body)})
	}
	return m
}

// tarEntry is a raw archive entry; hdr.Size is filled from body.
type tarEntry struct {
	hdr  tar.Header
	body string
}

func entriesOf(files []testFile) []tarEntry {
	var out []tarEntry
	for _, f := range files {
		if f.dir {
			out = append(out, tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: f.name + "/", Mode: int64(f.mode)}})
			continue
		}
		out = append(out, regEntry(f.name, f.mode, f.body))
	}
	return out
}

func regEntry(name string, mode uint32, body string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode)}, body: body}
}

func manifestEntry(t testing.TB, m Manifest) tarEntry {
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return regEntry(ManifestName, 0o644, string(js)+"\n")
}

func buildTar(t testing.TB, entries ...tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = fixedTime
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// archiveOf builds a valid archive of files.
func archiveOf(t testing.TB, files []testFile) []byte {
	return buildTar(t, append([]tarEntry{manifestEntry(t, manifestOf(files))}, entriesOf(files)...)...)
}

func writeFile(t *testing.T, path string, body []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
