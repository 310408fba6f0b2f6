package config

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestOpenInstallsDefaults(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	s := openTest(t, Options{Root: root})
	if got, want := listDir(t, root), []string{"gen-1", "live"}; !slices.Equal(got, want) {
		t.Fatalf("root: got %v, want %v", got, want)
	}
	if got, want := listDir(t, s.LiveDir()), []string{"defaults.conf", "ports.conf", "protocol.conf", "users.conf"}; !slices.Equal(got, want) {
		t.Fatalf("live: got %v, want %v", got, want)
	}
	for _, name := range listDir(t, s.LiveDir()) {
		data, err := os.ReadFile(filepath.Join(s.LiveDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(string(data), "\n"); first != "format-version = 1" {
			t.Errorf("%s first line: got %q, want %q", name, first, "format-version = 1")
		}
	}
	// Reopening keeps the same configuration and generation.
	d := mustDigest(t, s)
	s2 := openTest(t, Options{Root: root})
	if got := mustDigest(t, s2); got != d {
		t.Errorf("digest after reopen: got %x, want %x", got, d)
	}
	if got, want := listDir(t, root), []string{"gen-1", "live"}; !slices.Equal(got, want) {
		t.Errorf("root after reopen: got %v, want %v", got, want)
	}
}

// fillLive gives a store's live directory a varied configuration: nested
// and empty directories, odd modes, an empty file and a big one.
func fillLive(t *testing.T, s *Store, bigSize int) {
	t.Helper()
	live := s.LiveDir()
	writeFile(t, filepath.Join(live, "users.conf"), []byte("format-version = 1\nline.1.number = 3001\n"), 0o640)
	writeFile(t, filepath.Join(live, "sip", "trunk.conf"), []byte("format-version = 1\ntrunk = 192.0.2.20\n"), 0o600)
	writeFile(t, filepath.Join(live, "empty.conf"), nil, 0o644)
	writeFile(t, filepath.Join(live, "hooks", "post-restore.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	writeFile(t, filepath.Join(live, "ro.conf"), []byte("factory = 1\n"), 0o444)
	if err := os.MkdirAll(filepath.Join(live, "sip", "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(live, "sip"), 0o750); err != nil {
		t.Fatal(err)
	}
	if bigSize > 0 {
		f, err := os.OpenFile(filepath.Join(live, "big.bin"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.NewChaCha8([32]byte{1})
		if _, err := io.CopyN(f, rng, int64(bigSize)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoundTripLarge(t *testing.T) {
	ctx := context.Background()
	const bigSize = 16 << 20
	src := openTest(t, Options{Root: filepath.Join(t.TempDir(), "src")})
	dst := openTest(t, Options{Root: filepath.Join(t.TempDir(), "dst")})
	fillLive(t, src, bigSize)
	want := mustDigest(t, src)
	if got := mustDigest(t, dst); got == want {
		t.Fatal("source and destination digests equal before restore")
	}

	meta := BackupMeta{SoftwareVersion: "2.3.1", ConfigFormat: 7}
	pr, pw := io.Pipe()
	type result struct {
		n   int64
		m   Manifest
		err error
	}
	done := make(chan result, 1)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		n, m, err := src.Backup(ctx, pw, meta)
		pw.CloseWithError(err)
		done <- result{n, m, err}
	}()
	st, err := dst.Stage(ctx, pr)
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	runtime.ReadMemStats(&after)
	res := <-done
	if res.err != nil {
		t.Fatalf("Backup: %v", res.err)
	}
	// Streaming means allocation far below the 16 MiB file.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Backup+Stage allocated %d bytes for a %d-byte file, want < 4 MiB", alloc, bigSize)
	}
	if res.n < bigSize {
		t.Errorf("Backup wrote %d bytes, want at least %d", res.n, bigSize)
	}
	got := st.Manifest()
	if got.SoftwareVersion != meta.SoftwareVersion || got.ConfigFormat != meta.ConfigFormat || got.Format != ManifestFormat {
		t.Errorf("staged manifest header: got %+v, want software %q config format %d", got, meta.SoftwareVersion, meta.ConfigFormat)
	}
	if !got.Created.Equal(res.m.Created) || !slices.Equal(got.Files, res.m.Files) || !slices.Equal(got.Dirs, res.m.Dirs) {
		t.Errorf("staged manifest differs from backup manifest:\ngot  %+v\nwant %+v", got, res.m)
	}
	if err := st.Apply(ctx); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := mustDigest(t, dst); got != want {
		t.Errorf("digest after restore: got %x, want %x", got, want)
	}
	for name, mode := range map[string]fs.FileMode{"sip": 0o750, "sip/empty": 0o700, "hooks/post-restore.sh": 0o755, "ro.conf": 0o444} {
		fi, err := os.Lstat(filepath.Join(dst.LiveDir(), name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode: got %o, want %o", name, fi.Mode().Perm(), mode)
		}
	}
	if got, want := listDir(t, dst.root), []string{"gen-2", "live"}; !slices.Equal(got, want) {
		t.Errorf("root after Apply: got %v, want %v", got, want)
	}
}

// TestRestoreOverChanges is the method's step c: the backup taken before
// an upgrade brings the configuration back whatever happened meanwhile.
func TestRestoreOverChanges(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{Root: filepath.Join(t.TempDir(), "store")})
	fillLive(t, s, 0)
	want := mustDigest(t, s)
	var archive bytes.Buffer
	n, _, err := s.Backup(ctx, &archive, BackupMeta{SoftwareVersion: "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(archive.Len()) {
		t.Errorf("Backup returned %d bytes, wrote %d", n, archive.Len())
	}
	writeFile(t, filepath.Join(s.LiveDir(), "users.conf"), []byte("changed\n"), 0o640)
	writeFile(t, filepath.Join(s.LiveDir(), "new.conf"), []byte("new\n"), 0o644)
	if err := os.Chmod(filepath.Join(s.LiveDir(), "ro.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mustDigest(t, s); got == want {
		t.Fatal("digest did not change with the configuration")
	}
	st, err := s.Stage(ctx, &archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustDigest(t, s); got != want {
		t.Errorf("digest after restore: got %x, want %x", got, want)
	}
	if err := st.Apply(ctx); !errors.Is(err, errUsed) {
		t.Errorf("second Apply: got %v, want %v", err, errUsed)
	}
}

func TestDigestSeesModeAndContent(t *testing.T) {
	s := openTest(t, Options{Root: filepath.Join(t.TempDir(), "store")})
	path := filepath.Join(s.LiveDir(), "users.conf")
	d0 := mustDigest(t, s)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	d1 := mustDigest(t, s)
	if d1 == d0 {
		t.Error("digest ignores a mode change")
	}
	data, _ := os.ReadFile(path)
	data[len(data)-2] ^= 1
	writeFile(t, path, data, 0o600)
	if d2 := mustDigest(t, s); d2 == d1 {
		t.Error("digest ignores a one-bit content change")
	}
}

func TestBackupRefusesLinks(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		make func(path string) error
	}{
		{"symlink", func(p string) error { return os.Symlink("/etc/passwd", p) }},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, Options{Root: filepath.Join(t.TempDir(), "store")})
			if err := c.make(filepath.Join(s.LiveDir(), "odd")); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, _, err := s.Backup(ctx, &buf, BackupMeta{}); !errors.Is(err, ErrUnsafe) {
				t.Errorf("Backup: got %v, want %v", err, ErrUnsafe)
			}
			if buf.Len() != 0 {
				t.Errorf("Backup wrote %d bytes before refusing", buf.Len())
			}
			if _, err := s.Digest(); !errors.Is(err, ErrUnsafe) {
				t.Errorf("Digest: got %v, want %v", err, ErrUnsafe)
			}
		})
	}
}

func TestBackupTooLarge(t *testing.T) {
	s := openTest(t, testOptions(filepath.Join(t.TempDir(), "store")))
	writeFile(t, filepath.Join(s.LiveDir(), "big.conf"), bytes.Repeat([]byte("x"), testMaxSize), 0o644)
	if _, _, err := s.Backup(context.Background(), io.Discard, BackupMeta{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Backup: got %v, want %v", err, ErrTooLarge)
	}
}

func TestOpenRecoversLeftovers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	s := openTest(t, Options{Root: root})
	want := mustDigest(t, s)
	// What a crash mid-Stage or mid-Apply leaves behind.
	if err := os.Symlink("gen-9", filepath.Join(root, liveTmp)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "stage-x", "users.conf"), []byte("half"), 0o644)
	writeFile(t, filepath.Join(root, "gen-9", "users.conf"), []byte("orphan"), 0o644)
	if err := os.Chmod(filepath.Join(root, "gen-9"), 0o500); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "unrelated.txt"), []byte("keep"), 0o644)

	s2 := openTest(t, Options{Root: root})
	if got, want := listDir(t, root), []string{"gen-1", "live", "unrelated.txt"}; !slices.Equal(got, want) {
		t.Errorf("root after recovery: got %v, want %v", got, want)
	}
	if got := mustDigest(t, s2); got != want {
		t.Errorf("digest after recovery: got %x, want %x", got, want)
	}
	// The next generation must not collide with anything recovery removed.
	st, err := s2.Stage(context.Background(), bytes.NewReader(archiveOf(t, baseFiles())))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := listDir(t, root), []string{"gen-2", "live", "unrelated.txt"}; !slices.Equal(got, want) {
		t.Errorf("root after Apply: got %v, want %v", got, want)
	}
}

func TestOpenRefusesBadLive(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(root string) error
		want error
	}{
		{"directory", func(r string) error { return os.Mkdir(filepath.Join(r, "live"), 0o755) }, ErrCorrupt},
		{"outside", func(r string) error { return os.Symlink("../elsewhere", filepath.Join(r, "live")) }, ErrUnsafe},
		{"absolute", func(r string) error { return os.Symlink("/etc", filepath.Join(r, "live")) }, ErrUnsafe},
		{"dangling", func(r string) error { return os.Symlink("gen-5", filepath.Join(r, "live")) }, ErrCorrupt},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if err := c.make(root); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(context.Background(), Options{Root: root}); !errors.Is(err, c.want) {
				t.Errorf("Open: got %v, want %v", err, c.want)
			}
		})
	}
	if _, err := Open(context.Background(), Options{}); err == nil {
		t.Error("Open with empty Root: got nil error")
	}
}

var errCrash = errors.New("simulated power cut")

// TestCrashAtEverySwapStep stops Apply after each step, as a power cut
// would, and checks that Open then finds the old or the new configuration,
// whole, and nothing else.
func TestCrashAtEverySwapStep(t *testing.T) {
	ctx := context.Background()
	archive := archiveOf(t, baseFiles())
	newDigest := digestOfArchive(t, archive)
	liveAt := slices.Index(swapSteps, stepLiveRenamed)

	for i, step := range swapSteps {
		t.Run(step, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "store")
			armed := false
			opts := Options{Root: root, afterStep: func(s string) error {
				if armed && s == step {
					return errCrash
				}
				return nil
			}}
			s := openTest(t, opts)
			oldDigest := mustDigest(t, s)
			st, err := s.Stage(ctx, bytes.NewReader(archive))
			if err != nil {
				t.Fatal(err)
			}
			armed = true
			if err := st.Apply(ctx); !errors.Is(err, errCrash) {
				t.Fatalf("Apply: got %v, want %v", err, errCrash)
			}

			s2 := openTest(t, Options{Root: root})
			got := mustDigest(t, s2)
			want, which := oldDigest, "old"
			if i >= liveAt {
				want, which = newDigest, "new"
			}
			if got != want {
				t.Errorf("after crash at %s: digest %x, want the %s configuration %x", step, got, which, want)
			}
			if names := listDir(t, root); len(names) != 2 || names[1] != "live" || !strings.HasPrefix(names[0], genPrefix) {
				t.Errorf("root after recovery: got %v, want one gen-N and live", names)
			}
		})
	}

	// A power cut while the first start installs the defaults.
	defaults := mustDigest(t, openTest(t, Options{Root: filepath.Join(t.TempDir(), "defaults")}))
	for _, step := range swapSteps {
		t.Run("first-start/"+step, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "store")
			_, err := Open(ctx, Options{Root: root, afterStep: func(s string) error {
				if s == step {
					return errCrash
				}
				return nil
			}})
			if err != nil && !errors.Is(err, errCrash) {
				t.Fatalf("Open: got %v, want nil or %v", err, errCrash)
			}
			if got := mustDigest(t, openTest(t, Options{Root: root})); got != defaults {
				t.Errorf("digest: got %x, want the defaults %x", got, defaults)
			}
		})
	}
}

// TestSwapStepsKeepLiveWhole checks at every step of a swap, from inside
// it, that live resolves to the old or the new configuration, whole.
func TestSwapStepsKeepLiveWhole(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	var steps []string
	var check func(step string)
	s := openTest(t, Options{Root: root, afterStep: func(step string) error {
		if check != nil {
			check(step)
		}
		return nil
	}})
	oldDigest := mustDigest(t, s)
	newDigest := digestOfArchive(t, archiveOf(t, baseFiles()))
	check = func(step string) {
		steps = append(steps, step)
		got, err := digestDir(filepath.Join(root, liveName) + "/")
		if err != nil {
			t.Errorf("at %s: live: %v", step, err)
			return
		}
		if got != oldDigest && got != newDigest {
			t.Errorf("at %s: live is neither the old nor the new configuration", step)
		}
	}
	st, err := s.Stage(ctx, bytes.NewReader(archiveOf(t, baseFiles())))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(steps, swapSteps) {
		t.Errorf("steps: got %v, want %v", steps, swapSteps)
	}
}

// digestOfArchive applies an archive to a fresh store and returns its digest.
func digestOfArchive(t *testing.T, archive []byte) [32]byte {
	t.Helper()
	ctx := context.Background()
	s := openTest(t, Options{Root: filepath.Join(t.TempDir(), "ref")})
	st, err := s.Stage(ctx, bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	return mustDigest(t, s)
}

// TestReadersSeeWholeFiles reads through live while swaps run: every read
// must return one configuration's file whole, never a mix or an error.
func TestReadersSeeWholeFiles(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{Root: filepath.Join(t.TempDir(), "store")})
	versions := map[string]bool{}
	var archives [][]byte
	for i := range 2 {
		body := strings.Repeat("line = "+string(rune('a'+i))+"\n", 2000)
		versions[body] = true
		archives = append(archives, archiveOf(t, []testFile{{name: "users.conf", mode: 0o644, body: body}}))
	}
	first, err := s.Stage(ctx, bytes.NewReader(archives[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Apply(ctx); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			data, err := os.ReadFile(filepath.Join(s.LiveDir(), "users.conf"))
			if errors.Is(err, fs.ErrNotExist) {
				// A reader that resolved live just before a swap can find
				// the old generation already removed; it retries.
				continue
			}
			if err != nil || !versions[string(data)] {
				readErr = errors.Join(err, errors.New("read a partial or unknown users.conf"))
				return
			}
		}
	}()
	for i := range 10 {
		st, err := s.Stage(ctx, bytes.NewReader(archives[i%2]))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Apply(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Backup(ctx, io.Discard, BackupMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Error(readErr)
	}
}
