package config

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// stageBaseFiles stages baseFiles.
func stageBaseFiles(t *testing.T, s *Store) *Staged {
	t.Helper()
	st, err := s.Stage(context.Background(), bytes.NewReader(archiveOf(t, baseFiles())))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tidy checks the root holds live, its generation, the kept ones, and
// nothing else.
func tidy(t *testing.T, root string, kept ...uint32) {
	t.Helper()
	names := listDir(t, root)
	var gens, other []string
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, genPrefix):
			gens = append(gens, n)
		case n == liveName || isKeepLink(n):
		default:
			other = append(other, n)
		}
	}
	if len(other) > 0 || len(gens) != 1+len(kept) {
		t.Errorf("root holds %v; want live, %d generation(s), keep links for %v", names, 1+len(kept), kept)
	}
}

func TestApplyPendingCommitAndRollback(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	s := openTest(t, Options{Root: root})
	oldDigest := mustDigest(t, s)
	newDigest := digestOfArchive(t, archiveOf(t, baseFiles()))

	p, err := stageBaseFiles(t, s).ApplyPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustDigest(t, s); got != newDigest {
		t.Fatalf("pending: live is not the new configuration")
	}
	second := stageBaseFiles(t, s)
	if _, err := second.ApplyPending(ctx); err == nil {
		t.Fatal("a second ApplyPending while one is pending succeeded")
	}
	second.Discard()
	if err := p.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustDigest(t, s); got != oldDigest {
		t.Errorf("after Rollback: live is not the old configuration")
	}
	tidy(t, root)
	if err := p.Commit(ctx); !errors.Is(err, errUsed) {
		t.Errorf("Commit after Rollback: got %v, want %v", err, errUsed)
	}

	p, err = stageBaseFiles(t, s).ApplyPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustDigest(t, s); got != newDigest {
		t.Errorf("after Commit: live is not the new configuration")
	}
	tidy(t, root)
	// Open leaves a committed configuration alone.
	if got := mustDigest(t, openTest(t, Options{Root: root})); got != newDigest {
		t.Errorf("after reopen: live is not the committed configuration")
	}
}

// TestCrashDuringPendingApply cuts power after every step of
// ApplyPending, Commit and Rollback: the next Open shows the old
// configuration unless Commit had removed the prev link.
func TestCrashDuringPendingApply(t *testing.T) {
	ctx := context.Background()
	newDigest := digestOfArchive(t, archiveOf(t, baseFiles()))
	type plan struct {
		steps    []string
		rollback bool
		newAfter int // index in steps from which the new configuration survives; -1 never
	}
	for name, pl := range map[string]plan{
		"apply":    {pendingSteps, false, -1},
		"commit":   {commitSteps, false, 0},
		"rollback": {rollbackSteps, true, -1},
	} {
		for _, step := range pl.steps {
			t.Run(name+"/"+step, func(t *testing.T) {
				root := filepath.Join(t.TempDir(), "store")
				armed := false
				s := openTest(t, Options{Root: root, afterStep: func(s string) error {
					if armed && s == step {
						return errCrash
					}
					return nil
				}})
				oldDigest := mustDigest(t, s)
				armed = name == "apply"
				p, err := stageBaseFiles(t, s).ApplyPending(ctx)
				if name == "apply" {
					if !errors.Is(err, errCrash) {
						t.Fatalf("ApplyPending: got %v, want the crash", err)
					}
				} else {
					if err != nil {
						t.Fatal(err)
					}
					armed = true
					if pl.rollback {
						err = p.Rollback(ctx)
					} else {
						err = p.Commit(ctx)
					}
					if !errors.Is(err, errCrash) {
						t.Fatalf("got %v, want the crash", err)
					}
				}
				got := mustDigest(t, openTest(t, Options{Root: root}))
				want, which := oldDigest, "old"
				if pl.newAfter >= 0 && slices.Index(pl.steps, step) >= pl.newAfter {
					want, which = newDigest, "new"
				}
				if got != want {
					t.Errorf("after a crash at %s: live is not the %s configuration", step, which)
				}
				tidy(t, root)
			})
		}
	}
}

func TestKeepAndStageKept(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	s := openTest(t, Options{Root: root})
	factory := mustDigest(t, s)

	if _, err := s.StageKept(ctx, 1); !errors.Is(err, ErrNotKept) {
		t.Errorf("StageKept with nothing kept: got %v, want %v", err, ErrNotKept)
	}
	live, err := s.StageLive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Keep(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := stageBaseFiles(t, s).Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if kept, err := s.Kept(); err != nil || !slices.Equal(kept, []uint32{1}) {
		t.Errorf("Kept: got %v, %v; want [1]", kept, err)
	}
	tidy(t, root, 1)

	// Reopening keeps the kept generation.
	s = openTest(t, Options{Root: root})
	tidy(t, root, 1)
	st, err := s.StageKept(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustDigest(t, s); got != factory {
		t.Errorf("the kept configuration, applied, differs from the one kept")
	}
	// Still kept after being applied (Apply used a copy).
	tidy(t, root, 1)

	// Replacing what is kept removes the old kept generation.
	if err := stageBaseFiles(t, s).Keep(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := stageBaseFiles(t, s).Keep(ctx, 3); err != nil {
		t.Fatal(err)
	}
	tidy(t, root, 1, 3)
	st, _ = s.StageKept(ctx, 1)
	if err := st.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := mustDigest(t, s), digestOfArchive(t, archiveOf(t, baseFiles())); got != want {
		t.Errorf("keep-1 is not the replacement")
	}

	// A dangling keep link is dropped at Open, not trusted.
	if err := os.Symlink("gen-999", filepath.Join(root, "keep-7")); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, Options{Root: root})
	if kept, _ := s.Kept(); !slices.Equal(kept, []uint32{1, 3}) {
		t.Errorf("Kept after a dangling link: got %v, want [1 3]", kept)
	}
}

func TestCrashDuringKeep(t *testing.T) {
	ctx := context.Background()
	for _, step := range keepSteps {
		t.Run(step, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "store")
			armed := false
			s := openTest(t, Options{Root: root, afterStep: func(s string) error {
				if armed && s == step {
					return errCrash
				}
				return nil
			}})
			live := mustDigest(t, s)
			first, _ := s.StageLive(ctx)
			if err := first.Keep(ctx, 2); err != nil {
				t.Fatal(err)
			}
			armed = true
			if err := stageBaseFiles(t, s).Keep(ctx, 2); !errors.Is(err, errCrash) {
				t.Fatalf("Keep: got %v, want the crash", err)
			}
			s2 := openTest(t, Options{Root: root})
			if got := mustDigest(t, s2); got != live {
				t.Errorf("live changed by a crash while keeping")
			}
			tidy(t, root, 2)
			if _, err := s2.StageKept(ctx, 2); err != nil {
				t.Errorf("nothing usable kept after the crash: %v", err)
			}
		})
	}
}

func TestDerive(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{Root: filepath.Join(t.TempDir(), "store")})
	base := stageBaseFiles(t, s)
	d, err := base.Derive(ctx, map[string]FileChange{
		"users.conf":       {Remove: true},
		"ports.conf":       {Data: []byte("format-version = 2\n")},
		"subscribers.conf": {Data: []byte("format-version = 2\nline.1.number = 1\n"), Mode: 0o600},
		"sip/new.conf":     {Data: []byte("x\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFile("users.conf", 100); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("users.conf in the derived configuration: %v", err)
	}
	if b, _ := d.ReadFile("ports.conf", 100); string(b) != "format-version = 2\n" {
		t.Errorf("ports.conf: got %q", b)
	}
	if _, err := d.ReadFile("ports.conf", 5); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFile over the limit: got %v, want %v", err, ErrTooLarge)
	}
	if b, _ := base.ReadFile("users.conf", 100); !strings.Contains(string(b), "line.1.number") {
		t.Errorf("the source was changed by Derive: users.conf %q", b)
	}
	if err := d.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{"ports.conf": 0o644, "subscribers.conf": 0o600, "sip/proxy.conf": 0o600, "sip/new.conf": 0o644, "sip": 0o750 | fs.ModeDir} {
		fi, err := os.Stat(filepath.Join(s.LiveDir(), name))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode(), err, mode)
		}
	}
	for _, bad := range []map[string]FileChange{{"../x": {Data: nil}}, {"sip": {Data: []byte("x")}}, {"nodir/x.conf": {Data: []byte("x")}}} {
		if _, err := base.Derive(ctx, bad); err == nil {
			t.Errorf("Derive(%v) succeeded", bad)
		}
	}
	if err := base.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Derive(ctx, nil); !errors.Is(err, errUsed) {
		t.Errorf("Derive after Discard: got %v, want %v", err, errUsed)
	}
}

func TestStageLiveIsACopy(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{Root: filepath.Join(t.TempDir(), "store")})
	fillLive(t, s, 100<<10)
	want := mustDigest(t, s)
	st, err := s.StageLive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.LiveDir(), "users.conf"), []byte("changed\n"), 0o644)
	if err := st.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustDigest(t, s); got != want {
		t.Errorf("StageLive then Apply changed the configuration")
	}
	if b, err := s.ReadLiveFile("users.conf", 1<<20); err != nil || string(b) == "changed\n" {
		t.Errorf("ReadLiveFile: %q, %v", b, err)
	}
}
