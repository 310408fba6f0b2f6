package config

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzStage feeds arbitrary archives to Stage. Whatever the input, Stage
// must not panic, must leave the live configuration as it was, and must not
// create anything outside its root or leave a staging directory behind.
func FuzzStage(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.tar"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	parent := f.TempDir()
	root := filepath.Join(parent, "store")
	s, err := Open(context.Background(), testOptions(root))
	if err != nil {
		f.Fatal(err)
	}
	before, err := s.Digest()
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := s.Stage(ctx, bytes.NewReader(data))
		if err == nil {
			m := st.Manifest()
			if len(m.Files)+len(m.Dirs) > testMaxFiles {
				t.Errorf("staged %d entries, limit %d", len(m.Files)+len(m.Dirs), testMaxFiles)
			}
			if err := st.Discard(); err != nil {
				t.Fatalf("Discard: %v", err)
			}
		}
		if got := listDir(t, parent); !slices.Equal(got, []string{"store"}) {
			t.Fatalf("next to the root: got %v, want [store]", got)
		}
		if got := listDir(t, root); !slices.Equal(got, []string{"gen-1", "live"}) {
			t.Fatalf("root: got %v, want [gen-1 live]", got)
		}
		if got := mustDigest(t, s); got != before {
			t.Fatalf("live digest changed: got %x, want %x", got, before)
		}
	})
}
