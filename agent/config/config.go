// Package config owns the device's live configuration directory and its
// backup archive: it packs the live configuration for backup, verifies and
// stages a downloaded archive, and swaps a staged configuration in
// atomically.
//
// Layout under the store root:
//
//	live        symlink to the current generation, e.g. "gen-7"
//	gen-<N>     one complete configuration directory
//	live.tmp    the next symlink, only while a swap is under way
//	prev        the previous generation while an apply awaits confirmation
//	            (ApplyPending); Open rolls such an apply back
//	keep-<F>    a whole configuration kept in format F for software of that
//	            format (the other bank) to find again
//	stage-*     archives being extracted and verified, and copies being made
//
// The device's other software reads its files through <root>/live/. A swap
// writes and fsyncs a whole new generation, then renames a fresh symlink over
// live, so a reader or a power cut sees either the old configuration or the
// new one, whole. The old generation is removed right after the swap, so a
// reader that resolved live just before it may get ENOENT; it should retry,
// never fall back to a guess.
//
// The package must never leave the live configuration half-written, and
// never follow a path out of its own directory: archive names are checked,
// links and devices are refused, and extraction goes through an os.Root.
package config

import (
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors returned by Stage, Backup, Digest and Open. Callers use errors.Is.
var (
	// ErrCorrupt means the archive is malformed or truncated.
	ErrCorrupt = errors.New("config: corrupt archive")
	// ErrManifest means the archive's contents do not match its manifest.
	ErrManifest = errors.New("config: archive does not match manifest")
	// ErrUnsafe means a name or entry could reach outside the configuration
	// directory (absolute or ".." paths, links, devices).
	ErrUnsafe = errors.New("config: unsafe entry")
	// ErrTooLarge means the archive exceeds Options.MaxArchiveSize or
	// Options.MaxFiles.
	ErrTooLarge = errors.New("config: archive too large")
)

// errUsed is returned when a Staged is applied or discarded twice.
var errUsed = errors.New("config: staged configuration already applied or discarded")

const (
	liveName   = "live"
	liveTmp    = "live.tmp"
	genPrefix  = "gen-"
	stageGlob  = "stage-*"
	stageBase  = "stage-"
	genDirMode = 0o755

	defaultMaxArchiveSize = 64 << 20
	defaultMaxFiles       = 1024
)

var genRE = regexp.MustCompile(`^gen-[1-9][0-9]{0,18}$`)

//go:embed defaults/*.conf
var defaultFiles embed.FS

// Options configures a Store. Zero values get defaults.
type Options struct {
	// Root is the store directory, e.g. <data>/config-store. Required.
	Root string
	// Logger receives progress; nil discards.
	Logger *slog.Logger
	// MaxArchiveSize bounds the sum of entry sizes in an archive (manifest
	// included). Default 64 MiB.
	MaxArchiveSize int64
	// MaxFiles bounds the number of files and directories. Default 1024.
	MaxFiles int

	// afterStep, when set, runs after each step of a swap; a non-nil result
	// stops the swap on the spot, as a power cut would, so tests can check
	// that Open recovers from every step.
	afterStep func(step string) error
	// now stamps manifests; tests fix it for reproducible archives.
	now func() time.Time
}

func (o *Options) fill() error {
	if o.Root == "" {
		return errors.New("config: Options.Root is empty")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxArchiveSize <= 0 {
		o.MaxArchiveSize = defaultMaxArchiveSize
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = defaultMaxFiles
	}
	if o.now == nil {
		o.now = time.Now
	}
	return nil
}

// Store is the configuration store under one root directory. Its methods
// are safe for concurrent use; they are serialised by one lock, so only one
// Backup, Stage, Apply or Digest runs at a time.
type Store struct {
	root string
	opts Options
	log  *slog.Logger

	mu sync.Mutex
}

// Open opens the store at opts.Root, creating it if needed. It first
// recovers from any interrupted swap: it removes live.tmp, every stage-*
// directory and every gen-* directory that live does not point at. On first
// start (no live) it installs the embedded default configuration as gen-1.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("config: create root: %w", err)
	}
	s := &Store{root: root, opts: opts, log: opts.Logger}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recover(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// LiveDir returns <root>/live, the path readers use.
func (s *Store) LiveDir() string { return filepath.Join(s.root, liveName) }

// recover brings the root back to "live plus its generation, and the
// kept generations" after a crash; an apply that was pending is rolled
// back.
func (s *Store) recover(ctx context.Context) error {
	if err := s.recoverLinks(); err != nil {
		return err
	}
	cur, err := s.currentGen()
	first := errors.Is(err, fs.ErrNotExist)
	if err != nil && !first {
		return err
	}
	refs, err := s.referenced()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("config: read root: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		stale := name == liveTmp ||
			strings.HasPrefix(name, stageBase) ||
			(strings.HasPrefix(name, genPrefix) && name != cur && !refs[name])
		if !stale {
			continue
		}
		s.log.Info("config: removing leftover of interrupted swap", "name", name)
		if err := removeTree(filepath.Join(s.root, name)); err != nil {
			return fmt.Errorf("config: remove %s: %w", name, err)
		}
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	if !first {
		return nil
	}
	s.log.Info("config: no live configuration, installing defaults")
	dir, err := s.writeDefaults()
	if err != nil {
		return err
	}
	if err := s.install(ctx, dir, ""); err != nil {
		return fmt.Errorf("config: install defaults: %w", err)
	}
	return nil
}

// currentGen returns the generation name live points at. A missing live
// yields an error wrapping fs.ErrNotExist.
func (s *Store) currentGen() (string, error) {
	link := s.LiveDir()
	fi, err := os.Lstat(link)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return "", fmt.Errorf("%w: %s is not a symlink", ErrCorrupt, link)
	}
	target, err := os.Readlink(link)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	if !genRE.MatchString(target) {
		return "", fmt.Errorf("%w: live points at %q, want gen-<N>", ErrUnsafe, target)
	}
	gi, err := os.Lstat(filepath.Join(s.root, target))
	if err != nil || !gi.IsDir() {
		// A dangling live cannot come from our own swap order; refuse
		// rather than silently reset the device to factory defaults.
		return "", fmt.Errorf("%w: live points at missing %s", ErrCorrupt, target)
	}
	return target, nil
}

// nextGen returns a generation name above every existing one.
func (s *Store) nextGen() (string, error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return "", fmt.Errorf("config: read root: %w", err)
	}
	var max uint64
	for _, e := range entries {
		if !genRE.MatchString(e.Name()) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(e.Name(), genPrefix), 10, 63)
		if err == nil && n > max {
			max = n
		}
	}
	return genPrefix + strconv.FormatUint(max+1, 10), nil
}

// writeDefaults builds a staging directory holding the embedded defaults.
func (s *Store) writeDefaults() (dir string, err error) {
	dir, err = os.MkdirTemp(s.root, stageGlob)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	defer func() {
		if err != nil {
			_ = removeTree(dir)
		}
	}()
	entries, err := fs.ReadDir(defaultFiles, "defaults")
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	for _, e := range entries {
		data, err := defaultFiles.ReadFile("defaults/" + e.Name())
		if err != nil {
			return "", fmt.Errorf("config: %w", err)
		}
		if err := writeFileSync(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(dir, genDirMode); err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	return dir, syncDir(dir)
}

// step reports a finished swap step to the test hook.
func (s *Store) step(name string) error {
	if s.opts.afterStep == nil {
		return nil
	}
	return s.opts.afterStep(name)
}

// Swap steps, in order, as seen by the afterStep hook.
const (
	stepGenRenamed  = "gen-renamed"
	stepRootSynced  = "root-synced"
	stepLinkCreated = "link-created"
	stepLiveRenamed = "live-renamed"
	stepCommitted   = "committed"
	stepOldRemoved  = "old-removed"
)

var swapSteps = []string{stepGenRenamed, stepRootSynced, stepLinkCreated, stepLiveRenamed, stepCommitted, stepOldRemoved}

// install makes the fully written and fsynced directory dir the live
// generation and removes old (if not empty). Until live is renamed the old
// configuration stays live; after it, the new one is.
func (s *Store) install(ctx context.Context, dir, old string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	gen, err := s.nextGen()
	if err != nil {
		return err
	}
	genPath := filepath.Join(s.root, gen)
	tmpPath := filepath.Join(s.root, liveTmp)
	if err := os.Rename(dir, genPath); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// Before the live rename a failure leaves the old configuration live;
	// clean up what we made so the root stays tidy.
	abort := func(err error) error {
		_ = os.Remove(tmpPath)
		_ = removeTree(genPath)
		return err
	}
	if err := s.step(stepGenRenamed); err != nil {
		return err
	}
	if err := syncDir(s.root); err != nil {
		return abort(err)
	}
	if err := s.step(stepRootSynced); err != nil {
		return err
	}
	_ = os.Remove(tmpPath)
	if err := os.Symlink(gen, tmpPath); err != nil {
		return abort(fmt.Errorf("config: %w", err))
	}
	if err := s.step(stepLinkCreated); err != nil {
		return err
	}
	if err := os.Rename(tmpPath, s.LiveDir()); err != nil {
		return abort(fmt.Errorf("config: %w", err))
	}
	if err := s.step(stepLiveRenamed); err != nil {
		return err
	}
	if err := syncDir(s.root); err != nil {
		// The new configuration is live but a power cut could still bring
		// back the old one; both are whole, so report and let the caller
		// decide whether to retry.
		return err
	}
	if err := s.step(stepCommitted); err != nil {
		return err
	}
	s.log.Info("config: configuration swapped", "live", gen, "previous", old)
	if old == "" {
		return nil
	}
	if refs, err := s.referenced(); err == nil && refs[old] {
		return nil // kept for another format
	}
	if err := removeTree(filepath.Join(s.root, old)); err != nil {
		// Harmless: Open removes orphan generations.
		s.log.Warn("config: remove previous generation", "gen", old, "err", err)
		return nil
	}
	if err := s.step(stepOldRemoved); err != nil {
		return err
	}
	if err := syncDir(s.root); err != nil {
		s.log.Warn("config: sync root after cleanup", "err", err)
	}
	return nil
}

// Digest returns a SHA-256 over the live configuration: every file and
// directory in name order with its mode, and every file's size and content.
// Two configurations with equal digests are byte-identical.
func (s *Store) Digest() ([32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen, err := s.currentGen()
	if err != nil {
		return [32]byte{}, err
	}
	return digestDir(filepath.Join(s.root, gen))
}

func digestDir(dir string) ([32]byte, error) {
	entries, err := scan(context.Background(), dir)
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	for _, e := range entries {
		if e.dir {
			fmt.Fprintf(h, "d %q %o\n", e.Name, e.Mode)
			continue
		}
		fmt.Fprintf(h, "f %q %o %d %s\n", e.Name, e.Mode, e.Size, e.SHA256)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// removeTree removes path even when it holds read-only directories, which
// os.RemoveAll cannot empty without root. It never follows symlinks.
func removeTree(path string) error {
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}

// syncDir fsyncs a directory so renames and new entries in it are durable.
func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("config: sync dir: %w", err)
	}
	return nil
}

func writeFileSync(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// copyBufSize is the one buffer size used for streaming file contents.
const copyBufSize = 32 << 10

// hashCopy copies src to dst (dst may be io.Discard) and returns the byte
// count and SHA-256. Read errors are returned as readErr, write errors as
// writeErr, so callers can tell a truncated archive from a full disk.
func hashCopy(ctx context.Context, dst io.Writer, src io.Reader) (n int64, sum string, readErr, writeErr error) {
	h := sha256.New()
	buf := make([]byte, copyBufSize)
	for {
		if err := ctx.Err(); err != nil {
			return n, "", err, nil
		}
		m, err := src.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return n, "", nil, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, fmt.Sprintf("%x", h.Sum(nil)), nil, nil
		}
		if err != nil {
			return n, "", err, nil
		}
	}
}
