package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Names of the pending-apply and kept-configuration links in the root.
const (
	prevName   = "prev"     // the previous generation while an apply is pending
	prevTmp    = "prev.tmp" // only while prev is being made
	keepPrefix = "keep-"    // keep-<format>: a whole configuration kept in that format
	tmpSuffix  = ".tmp"
)

// ErrNotKept means no configuration is kept for the format asked for.
var ErrNotKept = errors.New("config: no configuration kept in that format")

// Steps of ApplyPending, Commit, Rollback and Keep, as seen by afterStep.
const (
	stepPendGenRenamed   = "pending-gen-renamed"
	stepPendPrevLinked   = "pending-prev-linked"
	stepPendLiveRenamed  = "pending-live-renamed"
	stepPendLiveSynced   = "pending-live-synced"
	stepCommitPrevGone   = "commit-prev-removed"
	stepCommitOldRemoved = "commit-old-removed"
	stepRollbackLive     = "rollback-live-renamed"
	stepRollbackPrevGone = "rollback-prev-removed"
	stepRollbackNewGone  = "rollback-new-removed"
	stepKeepGenRenamed   = "keep-gen-renamed"
	stepKeepLinked       = "keep-linked"
	stepKeepOldRemoved   = "keep-old-removed"
)

var (
	pendingSteps  = []string{stepPendGenRenamed, stepPendPrevLinked, stepPendLiveRenamed, stepPendLiveSynced}
	commitSteps   = []string{stepCommitPrevGone, stepCommitOldRemoved}
	rollbackSteps = []string{stepRollbackLive, stepRollbackPrevGone, stepRollbackNewGone}
	keepSteps     = []string{stepKeepGenRenamed, stepKeepLinked, stepKeepOldRemoved}
)

func keepName(format uint32) string { return keepPrefix + strconv.FormatUint(uint64(format), 10) }

// readLink returns the generation a root link points at, or "" if the link
// does not exist. A link that is not a symlink to an existing gen-<N> is
// an error wrapping ErrCorrupt.
func (s *Store) readLink(name string) (string, error) {
	p := filepath.Join(s.root, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return "", fmt.Errorf("%w: %s is not a symlink", ErrCorrupt, name)
	}
	target, err := os.Readlink(p)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	if !genRE.MatchString(target) {
		return "", fmt.Errorf("%w: %s points at %q, want gen-<N>", ErrUnsafe, name, target)
	}
	if gi, err := os.Lstat(filepath.Join(s.root, target)); err != nil || !gi.IsDir() {
		return "", fmt.Errorf("%w: %s points at missing %s", ErrCorrupt, name, target)
	}
	return target, nil
}

// link atomically points name at gen: a fresh tmp link renamed over it.
func (s *Store) link(name, gen string) error {
	tmp := filepath.Join(s.root, name+tmpSuffix)
	_ = os.Remove(tmp)
	if err := os.Symlink(gen, tmp); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.root, name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// referenced returns every generation a link points at.
func (s *Store) referenced() (map[string]bool, error) {
	refs := map[string]bool{}
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("config: read root: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if n != liveName && n != prevName && !isKeepLink(n) {
			continue
		}
		g, err := s.readLink(n)
		if err != nil {
			return nil, err
		}
		if g != "" {
			refs[g] = true
		}
	}
	return refs, nil
}

func isKeepLink(name string) bool {
	v, ok := strings.CutPrefix(name, keepPrefix)
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	return err == nil && n > 0 && strconv.FormatUint(n, 10) == v
}

// removeUnreferenced removes gen unless a link still points at it.
func (s *Store) removeUnreferenced(gen string) {
	refs, err := s.referenced()
	if err != nil || refs[gen] {
		return
	}
	if err := removeTree(filepath.Join(s.root, gen)); err != nil {
		s.log.Warn("config: remove generation", "gen", gen, "err", err)
	}
}

// recoverLinks runs first in recover: it finishes or undoes what a crash
// interrupted. A pending apply (prev exists) is rolled back: its reload
// hook never confirmed the new configuration. Dangling keep links are
// dropped.
func (s *Store) recoverLinks() error {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("config: read root: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if n == prevTmp || (strings.HasPrefix(n, keepPrefix) && strings.HasSuffix(n, tmpSuffix)) {
			s.log.Info("config: removing leftover of interrupted link change", "name", n)
			if err := os.Remove(filepath.Join(s.root, n)); err != nil {
				return fmt.Errorf("config: %w", err)
			}
		}
		if isKeepLink(n) {
			if _, err := s.readLink(n); err != nil {
				s.log.Warn("config: dropping bad kept configuration link", "name", n, "err", err)
				if err := os.Remove(filepath.Join(s.root, n)); err != nil {
					return fmt.Errorf("config: %w", err)
				}
			}
		}
	}
	prev, err := s.readLink(prevName)
	if err != nil {
		return err
	}
	if prev == "" {
		return nil
	}
	cur, err := s.currentGen()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if cur != prev {
		s.log.Warn("config: rolling back an apply that was not confirmed", "live", cur, "previous", prev)
		if err := s.link(liveName, prev); err != nil {
			return err
		}
		if err := syncDir(s.root); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(s.root, prevName)); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return syncDir(s.root)
}

// Pending is an applied configuration whose predecessor is still kept, so
// that it can be rolled back until Commit. If the process dies first, the
// next Open rolls it back.
type Pending struct {
	store    *Store
	gen, old string
	done     bool // guarded by store.mu
}

// ApplyPending makes the staged configuration live like Apply, but keeps
// the previous generation and records it in the prev link, so that
// Rollback (or, after a crash, Open) can bring it back. Call Commit or
// Rollback; only one apply can be pending.
func (st *Staged) ApplyPending(ctx context.Context) (*Pending, error) {
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.used {
		return nil, errUsed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p, err := s.readLink(prevName); err != nil {
		return nil, err
	} else if p != "" {
		return nil, fmt.Errorf("config: another apply is pending")
	}
	old, err := s.currentGen()
	if err != nil {
		return nil, err
	}
	gen, err := s.nextGen()
	if err != nil {
		return nil, err
	}
	st.used = true
	genPath := filepath.Join(s.root, gen)
	if err := os.Rename(st.dir, genPath); err != nil {
		_ = removeTree(st.dir)
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := s.step(stepPendGenRenamed); err != nil {
		return nil, err
	}
	undo := func(err error) (*Pending, error) {
		_ = os.Remove(filepath.Join(s.root, prevName))
		_ = removeTree(genPath)
		return nil, err
	}
	if err := syncDir(s.root); err != nil {
		return undo(err)
	}
	if err := s.link(prevName, old); err != nil {
		return undo(err)
	}
	if err := syncDir(s.root); err != nil {
		return undo(err)
	}
	if err := s.step(stepPendPrevLinked); err != nil {
		return nil, err
	}
	if err := s.link(liveName, gen); err != nil {
		return undo(err)
	}
	if err := s.step(stepPendLiveRenamed); err != nil {
		return nil, err
	}
	p := &Pending{store: s, gen: gen, old: old}
	if err := syncDir(s.root); err != nil {
		// Live may or may not be the new one after a power cut; put the
		// old one back now, while we still can.
		_ = p.rollbackLocked()
		return nil, err
	}
	if err := s.step(stepPendLiveSynced); err != nil {
		return nil, err
	}
	s.log.Info("config: configuration applied, previous one kept until confirmed", "live", gen, "previous", old)
	return p, nil
}

// Commit drops the previous configuration: the new one stays.
func (p *Pending) Commit(ctx context.Context) error {
	s := p.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.done {
		return errUsed
	}
	p.done = true
	if err := os.Remove(filepath.Join(s.root, prevName)); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	if err := s.step(stepCommitPrevGone); err != nil {
		return err
	}
	s.removeUnreferenced(p.old)
	if err := s.step(stepCommitOldRemoved); err != nil {
		return err
	}
	if err := syncDir(s.root); err != nil {
		s.log.Warn("config: sync root after cleanup", "err", err)
	}
	s.log.Info("config: applied configuration confirmed", "live", p.gen)
	return nil
}

// Rollback makes the previous configuration live again and removes the
// new one.
func (p *Pending) Rollback(ctx context.Context) error {
	s := p.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.done {
		return errUsed
	}
	p.done = true
	return p.rollbackLocked()
}

func (p *Pending) rollbackLocked() error {
	s := p.store
	if err := s.link(liveName, p.old); err != nil {
		return err
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	if err := s.step(stepRollbackLive); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.root, prevName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config: %w", err)
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	if err := s.step(stepRollbackPrevGone); err != nil {
		return err
	}
	s.removeUnreferenced(p.gen)
	if err := s.step(stepRollbackNewGone); err != nil {
		return err
	}
	s.log.Info("config: previous configuration restored", "live", p.old)
	return nil
}

// Keep stores the staged configuration as the one kept for format, for
// software of that format to find again (a revert to the other bank). It
// replaces what was kept for that format before. The staged
// configuration is consumed; live is not touched.
func (st *Staged) Keep(ctx context.Context, format uint32) error {
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.used {
		return errUsed
	}
	if format == 0 {
		return fmt.Errorf("config: keep: format 0")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	name := keepName(format)
	old, err := s.readLink(name)
	if err != nil {
		s.log.Warn("config: replacing bad kept configuration link", "name", name, "err", err)
		old = ""
	}
	gen, err := s.nextGen()
	if err != nil {
		return err
	}
	st.used = true
	if err := os.Rename(st.dir, filepath.Join(s.root, gen)); err != nil {
		_ = removeTree(st.dir)
		return fmt.Errorf("config: %w", err)
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	if err := s.step(stepKeepGenRenamed); err != nil {
		return err
	}
	if err := s.link(name, gen); err != nil {
		_ = removeTree(filepath.Join(s.root, gen))
		return err
	}
	if err := syncDir(s.root); err != nil {
		return err
	}
	if err := s.step(stepKeepLinked); err != nil {
		return err
	}
	if old != "" {
		s.removeUnreferenced(old)
	}
	if err := s.step(stepKeepOldRemoved); err != nil {
		return err
	}
	s.log.Info("config: configuration kept", "format", format, "gen", gen)
	return nil
}

// Kept returns the formats a configuration is kept for, ascending.
func (s *Store) Kept() ([]uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("config: read root: %w", err)
	}
	var out []uint32
	for _, e := range entries {
		if !isKeepLink(e.Name()) {
			continue
		}
		if g, err := s.readLink(e.Name()); err == nil && g != "" {
			n, _ := strconv.ParseUint(strings.TrimPrefix(e.Name(), keepPrefix), 10, 32)
			out = append(out, uint32(n))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// StageLive copies the live configuration into a new staging directory.
func (s *Store) StageLive(ctx context.Context) (*Staged, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen, err := s.currentGen()
	if err != nil {
		return nil, err
	}
	return s.stageCopy(ctx, filepath.Join(s.root, gen), nil)
}

// StageKept copies the configuration kept for format into a new staging
// directory; ErrNotKept if there is none.
func (s *Store) StageKept(ctx context.Context, format uint32) (*Staged, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen, err := s.readLink(keepName(format))
	if err != nil {
		return nil, err
	}
	if gen == "" {
		return nil, fmt.Errorf("%w: format %d", ErrNotKept, format)
	}
	return s.stageCopy(ctx, filepath.Join(s.root, gen), nil)
}

// FileChange replaces, adds or removes one file in Derive.
type FileChange struct {
	Data   []byte
	Mode   fs.FileMode // 0: the mode of the file it replaces, else 0o644
	Remove bool
}

// Derive makes a new staged configuration from st: a copy with the given
// files replaced, added or removed (names are paths relative to the
// configuration root). st itself is unchanged and still usable.
func (st *Staged) Derive(ctx context.Context, changes map[string]FileChange) (*Staged, error) {
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.used {
		return nil, errUsed
	}
	for name := range changes {
		if err := checkName(name); err != nil {
			return nil, err
		}
	}
	return s.stageCopy(ctx, st.dir, changes)
}

// stageCopy copies the configuration in src into a new staging directory,
// applying changes, and returns it fsynced and with a manifest of what it
// holds. s.mu is held.
func (s *Store) stageCopy(ctx context.Context, src string, changes map[string]FileChange) (st *Staged, err error) {
	entries, err := scan(ctx, src)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(s.root, stageGlob)
	if err != nil {
		return nil, fmt.Errorf("config: create staging dir: %w", err)
	}
	defer func() {
		if err != nil {
			_ = removeTree(dir)
		}
	}()
	from, err := os.OpenRoot(src)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer from.Close()
	to, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer to.Close()
	m := Manifest{Format: ManifestFormat, Created: s.opts.now().UTC(), Files: []FileEntry{}}
	isDir := map[string]bool{}
	for _, e := range entries {
		if e.dir {
			isDir[e.Name] = true
			if err := to.MkdirAll(e.Name, 0o700); err != nil {
				return nil, fmt.Errorf("config: %w", err)
			}
			m.Dirs = append(m.Dirs, DirEntry{Name: e.Name, Mode: e.Mode})
			continue
		}
		c, changed := changes[e.Name]
		if changed {
			if c.Remove {
				continue
			}
			mode := c.Mode
			if mode == 0 {
				mode = fs.FileMode(e.Mode)
			}
			fe, err := writeStaged(to, e.Name, c.Data, mode)
			if err != nil {
				return nil, err
			}
			m.Files = append(m.Files, fe)
			continue
		}
		if err := copyStaged(ctx, from, to, e.FileEntry); err != nil {
			return nil, err
		}
		m.Files = append(m.Files, e.FileEntry)
	}
	names := make([]string, 0, len(changes))
	for n := range changes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := changes[name]
		if c.Remove || containsFile(m.Files, name) {
			continue
		}
		if isDir[name] {
			return nil, fmt.Errorf("config: %s is a directory", name)
		}
		if parent := path.Dir(name); parent != "." && !isDir[parent] {
			return nil, fmt.Errorf("config: parent of %s does not exist", name)
		}
		mode := c.Mode
		if mode == 0 {
			mode = 0o644
		}
		fe, err := writeStaged(to, name, c.Data, mode)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, fe)
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	if err := finishDirs(to, m.Dirs); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, genDirMode); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return &Staged{store: s, dir: dir, manifest: m}, nil
}

func containsFile(fs []FileEntry, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

func writeStaged(root *os.Root, name string, data []byte, mode fs.FileMode) (FileEntry, error) {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return FileEntry{}, fmt.Errorf("config: %w", err)
	}
	n, sum, _, werr := hashCopy(context.Background(), f, bytes.NewReader(data))
	err = werr
	if err == nil {
		err = f.Chmod(mode.Perm())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileEntry{}, fmt.Errorf("config: write %s: %w", name, err)
	}
	return FileEntry{Name: name, Size: n, Mode: uint32(mode.Perm()), SHA256: sum}, nil
}

// copyStaged streams one file and checks it still matches what scan saw.
func copyStaged(ctx context.Context, from, to *os.Root, e FileEntry) (err error) {
	src, err := from.Open(e.Name)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer src.Close()
	dst, err := to.OpenFile(e.Name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer func() {
		if cerr := dst.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("config: %w", cerr)
		}
	}()
	n, sum, rerr, werr := hashCopy(ctx, dst, io.LimitReader(src, e.Size+1))
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case rerr != nil:
		return fmt.Errorf("config: read %s: %w", e.Name, rerr)
	case werr != nil:
		return fmt.Errorf("config: write %s: %w", e.Name, werr)
	case n != e.Size || sum != e.SHA256:
		return fmt.Errorf("config: %s changed while it was copied", e.Name)
	}
	if err := dst.Chmod(fs.FileMode(e.Mode)); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("config: sync %s: %w", e.Name, err)
	}
	return nil
}

// ReadFile reads a file of the staged configuration, at most max bytes
// (a longer file is an error wrapping ErrTooLarge). A missing file gives
// an error wrapping fs.ErrNotExist.
func (st *Staged) ReadFile(name string, max int64) ([]byte, error) {
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.used {
		return nil, errUsed
	}
	return readLimited(st.dir, name, max)
}

// ReadLiveFile reads a file of the live configuration like
// Staged.ReadFile. It does not wait for a running Stage, Backup or copy:
// like the device's other software it reads through the live link, and
// retries once if a swap removed the generation it had resolved.
func (s *Store) ReadLiveFile(name string, max int64) ([]byte, error) {
	b, err := readLimited(s.LiveDir(), name, max)
	if err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsafe) {
		b, err = readLimited(s.LiveDir(), name, max)
	}
	return b, err
}

func readLimited(dir, name string, max int64) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrUnsafe, name)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, name, max)
	}
	return b, nil
}
