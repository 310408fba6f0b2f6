package config

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden archives in testdata/ and the FuzzStage seed corpus")

// goldenCase is one archive under testdata/ and the error Stage must give.
type goldenCase struct {
	name  string
	want  error // nil: the archive must stage and apply
	build func(t testing.TB) []byte
}

func goldenCases() []goldenCase {
	base := baseFiles()
	m := manifestOf(base)
	man := func(t testing.TB, edit func(*Manifest)) tarEntry {
		mm := manifestOf(base)
		edit(&mm)
		return manifestEntry(t, mm)
	}
	withEntries := func(t testing.TB, first tarEntry, extra ...tarEntry) []byte {
		return buildTar(t, append(append([]tarEntry{first}, entriesOf(base)...), extra...)...)
	}
	return []goldenCase{
		{"good", nil, func(t testing.TB) []byte { return archiveOf(t, base) }},
		{"empty", ErrCorrupt, func(t testing.TB) []byte { return nil }},
		{"garbage", ErrCorrupt, func(t testing.TB) []byte {
			return bytes.Repeat([]byte("this is not a tar archive\n"), 40)
		}},
		{"truncated", ErrCorrupt, func(t testing.TB) []byte {
			good := archiveOf(t, base)
			// The last 1024 bytes are the end marker; 500 before them lies
			// inside the last file's data block.
			return good[:len(good)-1024-500]
		}},
		{"manifest-not-first", ErrCorrupt, func(t testing.TB) []byte {
			e := entriesOf(base)
			return buildTar(t, append([]tarEntry{e[0], manifestEntry(t, m)}, e[1:]...)...)
		}},
		{"missing-manifest", ErrCorrupt, func(t testing.TB) []byte { return buildTar(t, entriesOf(base)...) }},
		{"bad-json", ErrCorrupt, func(t testing.TB) []byte {
			return withEntries(t, regEntry(ManifestName, 0o644, `{"format": 1, "files": [`))
		}},
		{"bad-manifest-format", ErrCorrupt, func(t testing.TB) []byte {
			return withEntries(t, man(t, func(m *Manifest) { m.Format = 2 }))
		}},
		{"hash-mismatch", ErrManifest, func(t testing.TB) []byte {
			return withEntries(t, man(t, func(m *Manifest) { m.Files[0].SHA256 = sha("something else") }))
		}},
		{"size-mismatch", ErrManifest, func(t testing.TB) []byte {
			return withEntries(t, man(t, func(m *Manifest) { m.Files[0].Size++ }))
		}},
		{"extra-file", ErrManifest, func(t testing.TB) []byte {
			return withEntries(t, manifestEntry(t, m), regEntry("extra.conf", 0o644, "x = 1\n"))
		}},
		{"missing-file", ErrManifest, func(t testing.TB) []byte {
			e := entriesOf(base)
			return buildTar(t, append([]tarEntry{manifestEntry(t, m)}, e[1:]...)...)
		}},
		{"duplicate-file", ErrManifest, func(t testing.TB) []byte {
			return withEntries(t, manifestEntry(t, m), entriesOf(base)[0])
		}},
		{"dotdot-path", ErrUnsafe, func(t testing.TB) []byte {
			return withEntries(t, manifestEntry(t, m), regEntry("../evil", 0o644, "pwned\n"))
		}},
		{"dotdot-in-manifest", ErrUnsafe, func(t testing.TB) []byte {
			return withEntries(t, man(t, func(m *Manifest) {
				m.Files = append(m.Files, FileEntry{Name: "sip/../../evil", Size: 6, Mode: 0o644, SHA256: sha("pwned\n")})
			}))
		}},
		{"absolute-path", ErrUnsafe, func(t testing.TB) []byte {
			return withEntries(t, manifestEntry(t, m), regEntry("/tmp/iad-config-evil", 0o644, "pwned\n"))
		}},
		{"symlink-entry", ErrUnsafe, func(t testing.TB) []byte {
			return withEntries(t, manifestEntry(t, m),
				tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "evil-link", Linkname: "/etc/passwd", Mode: 0o777}})
		}},
		{"hardlink-entry", ErrUnsafe, func(t testing.TB) []byte {
			return withEntries(t, manifestEntry(t, m),
				tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "hard", Linkname: "/etc/shadow", Mode: 0o644}})
		}},
		{"device-entry", ErrUnsafe, func(t testing.TB) []byte {
			return withEntries(t, manifestEntry(t, m),
				tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3, Mode: 0o666}})
		}},
		{"too-many-files", ErrTooLarge, func(t testing.TB) []byte {
			files := baseFiles()
			for i := range testMaxFiles {
				files = append(files, testFile{name: fmt.Sprintf("extra%d.conf", i), mode: 0o644, body: "x = 1\n"})
			}
			return archiveOf(t, files)
		}},
		{"too-large", ErrTooLarge, func(t testing.TB) []byte {
			big := strings.Repeat("pad = 0123456789abcdef\n", testMaxSize/23+10)
			return archiveOf(t, append(baseFiles(), testFile{name: "big.conf", mode: 0o644, body: big}))
		}},
	}
}

func goldenPath(name string) string { return filepath.Join("testdata", name+".tar") }

// TestGoldenArchives writes the golden archives under -update; otherwise
// it checks they are all present.
func TestGoldenArchives(t *testing.T) {
	for _, c := range goldenCases() {
		data := c.build(t)
		if *update {
			if err := os.WriteFile(goldenPath(c.name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			dir := filepath.Join("testdata", "fuzz", "FuzzStage")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, c.name), []byte(seed), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := os.Stat(goldenPath(c.name)); err != nil {
			t.Errorf("golden %s: %v (run go test -run TestGoldenArchives -update)", c.name, err)
		}
	}
}

func TestStageGolden(t *testing.T) {
	ctx := context.Background()
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			data, err := os.ReadFile(goldenPath(c.name))
			if err != nil {
				t.Fatalf("read golden: %v (run go test -run TestGoldenArchives -update)", err)
			}
			s := openTest(t, testOptions(filepath.Join(t.TempDir(), "store")))
			before := mustDigest(t, s)
			rootBefore := listDir(t, s.root)

			st, err := s.Stage(ctx, bytes.NewReader(data))
			if c.want == nil {
				if err != nil {
					t.Fatalf("Stage: got %v, want success", err)
				}
				if err := st.Apply(ctx); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if got := mustDigest(t, s); got == before {
					t.Errorf("Digest unchanged after applying %s", c.name)
				}
				got, err := os.ReadFile(filepath.Join(s.LiveDir(), "sip", "proxy.conf"))
				if want := baseFiles()[2].body; err != nil || string(got) != want {
					t.Errorf("live sip/proxy.conf: got %q, %v; want %q", got, err, want)
				}
				return
			}
			t.Logf("Stage: %v", err)
			if !errors.Is(err, c.want) {
				t.Fatalf("Stage: got error %v, want %v", err, c.want)
			}
			if st != nil {
				t.Errorf("Stage returned a Staged with error %v", err)
			}
			if got := mustDigest(t, s); got != before {
				t.Errorf("live config changed: digest %x, want %x", got, before)
			}
			if got := listDir(t, s.root); !slices.Equal(got, rootBefore) {
				t.Errorf("root after failed Stage: got %v, want %v", got, rootBefore)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(s.root), "evil")); err == nil {
				t.Errorf("../evil was created next to the root")
			}
		})
	}
}

func TestStageDiscard(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, testOptions(filepath.Join(t.TempDir(), "store")))
	before := mustDigest(t, s)
	rootBefore := listDir(t, s.root)
	st, err := s.Stage(ctx, bytes.NewReader(archiveOf(t, baseFiles())))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(st.Manifest().Files); got != 3 {
		t.Errorf("staged manifest: got %d files, want 3", got)
	}
	if err := st.Discard(); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if err := st.Apply(ctx); !errors.Is(err, errUsed) {
		t.Errorf("Apply after Discard: got %v, want %v", err, errUsed)
	}
	if got := mustDigest(t, s); got != before {
		t.Errorf("digest after Discard: got %x, want %x", got, before)
	}
	if got := listDir(t, s.root); !slices.Equal(got, rootBefore) {
		t.Errorf("root after Discard: got %v, want %v", got, rootBefore)
	}
}

func TestStageCanceled(t *testing.T) {
	s := openTest(t, testOptions(filepath.Join(t.TempDir(), "store")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rootBefore := listDir(t, s.root)
	if _, err := s.Stage(ctx, bytes.NewReader(archiveOf(t, baseFiles()))); !errors.Is(err, context.Canceled) {
		t.Errorf("Stage: got %v, want %v", err, context.Canceled)
	}
	if got := listDir(t, s.root); !slices.Equal(got, rootBefore) {
		t.Errorf("root after canceled Stage: got %v, want %v", got, rootBefore)
	}
}
