package config

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// Staged is a verified configuration waiting in a staging directory. Apply
// makes it live; Discard throws it away. A Staged left alone is removed by
// the next Open.
type Staged struct {
	store    *Store
	dir      string
	manifest Manifest
	used     bool // guarded by store.mu
}

// Manifest returns the staged archive's manifest.
func (st *Staged) Manifest() Manifest { return st.manifest }

// Stage reads a backup archive from r as a stream, extracts it into a new
// staging directory and verifies it against its manifest. The live
// configuration is not touched; on any error the staging directory is
// removed.
//
// Errors: ErrUnsafe for names that are not clean relative paths and for
// link or device entries; ErrTooLarge past Options.MaxArchiveSize or
// Options.MaxFiles; ErrCorrupt for a missing, misplaced or malformed
// manifest and for a malformed or truncated archive; ErrManifest when a file
// is missing, extra, duplicated, or differs in size or SHA-256.
//
// Every staged file and directory is fsynced with its final mode before
// Stage returns, so Apply only has to rename.
func (s *Store) Stage(ctx context.Context, r io.Reader) (st *Staged, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir, err := os.MkdirTemp(s.root, stageGlob)
	if err != nil {
		return nil, fmt.Errorf("config: create staging dir: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := removeTree(dir); rerr != nil {
				s.log.Warn("config: remove staging dir", "dir", dir, "err", rerr)
			}
		}
	}()
	m, err := s.extract(ctx, dir, r)
	if err != nil {
		return nil, err
	}
	s.log.Info("config: archive staged", "files", len(m.Files), "software", m.SoftwareVersion, "config_format", m.ConfigFormat)
	return &Staged{store: s, dir: dir, manifest: m}, nil
}

func (s *Store) extract(ctx context.Context, dir string, r io.Reader) (Manifest, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("config: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(r)

	m, msize, err := s.readManifest(tr)
	if err != nil {
		return Manifest{}, err
	}
	want := make(map[string]*entry, len(m.Files)+len(m.Dirs))
	for _, d := range m.Dirs {
		want[d.Name] = &entry{FileEntry: FileEntry{Name: d.Name, Mode: d.Mode}, dir: true}
	}
	for _, f := range m.Files {
		want[f.Name] = &entry{FileEntry: f}
	}
	seen := make(map[string]bool, len(want))
	total, count := msize, 0

	for {
		if err := ctx.Err(); err != nil {
			return Manifest{}, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		name, isDir, err := entryName(hdr)
		if err != nil {
			return Manifest{}, err
		}
		if count++; count > s.opts.MaxFiles {
			return Manifest{}, fmt.Errorf("%w: more than %d entries", ErrTooLarge, s.opts.MaxFiles)
		}
		if hdr.Size > s.opts.MaxArchiveSize-total {
			return Manifest{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.opts.MaxArchiveSize)
		}
		total += hdr.Size
		e := want[name]
		switch {
		case e == nil:
			return Manifest{}, fmt.Errorf("%w: %s is not in the manifest", ErrManifest, name)
		case seen[name]:
			return Manifest{}, fmt.Errorf("%w: %s appears twice", ErrManifest, name)
		case e.dir != isDir:
			return Manifest{}, fmt.Errorf("%w: %s: entry type differs from manifest", ErrManifest, name)
		}
		seen[name] = true
		if isDir {
			if err := root.MkdirAll(name, 0o700); err != nil {
				return Manifest{}, fmt.Errorf("config: %w", err)
			}
			continue
		}
		if hdr.Size != e.Size {
			return Manifest{}, fmt.Errorf("%w: %s is %d bytes, manifest says %d", ErrManifest, name, hdr.Size, e.Size)
		}
		if err := extractFile(ctx, root, tr, e.FileEntry); err != nil {
			return Manifest{}, err
		}
	}
	for name := range want {
		if !seen[name] {
			return Manifest{}, fmt.Errorf("%w: %s is missing", ErrManifest, name)
		}
	}
	if err := finishDirs(root, m.Dirs); err != nil {
		return Manifest{}, err
	}
	if err := os.Chmod(dir, genDirMode); err != nil {
		return Manifest{}, fmt.Errorf("config: %w", err)
	}
	return m, syncDir(dir)
}

// readManifest reads and checks the first entry.
func (s *Store) readManifest(tr *tar.Reader) (Manifest, int64, error) {
	hdr, err := tr.Next()
	if err == io.EOF {
		return Manifest{}, 0, fmt.Errorf("%w: empty archive", ErrCorrupt)
	}
	if err != nil {
		return Manifest{}, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if hdr.Name != ManifestName || !isRegular(hdr.Typeflag) {
		return Manifest{}, 0, fmt.Errorf("%w: first entry is %q, want %s", ErrCorrupt, hdr.Name, ManifestName)
	}
	if hdr.Size > maxManifestSize || hdr.Size > s.opts.MaxArchiveSize {
		return Manifest{}, 0, fmt.Errorf("%w: manifest is %d bytes", ErrTooLarge, hdr.Size)
	}
	js, err := io.ReadAll(tr)
	if err != nil {
		return Manifest{}, 0, fmt.Errorf("%w: read manifest: %w", ErrCorrupt, err)
	}
	var m Manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return Manifest{}, 0, fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
	}
	if err := m.validate(s.opts.MaxArchiveSize-hdr.Size, s.opts.MaxFiles); err != nil {
		return Manifest{}, 0, err
	}
	return m, hdr.Size, nil
}

func isRegular(typ byte) bool {
	return typ == tar.TypeReg || typ == '\x00' // '\x00' is the pre-POSIX regular file
}

// entryName classifies a tar entry and returns its clean name.
func entryName(hdr *tar.Header) (name string, isDir bool, err error) {
	name = hdr.Name
	switch {
	case isRegular(hdr.Typeflag):
	case hdr.Typeflag == tar.TypeDir:
		isDir = true
		name = strings.TrimSuffix(name, "/")
	case hdr.Typeflag == tar.TypeSymlink, hdr.Typeflag == tar.TypeLink,
		hdr.Typeflag == tar.TypeChar, hdr.Typeflag == tar.TypeBlock, hdr.Typeflag == tar.TypeFifo:
		return "", false, fmt.Errorf("%w: %q is a link or device (type %q)", ErrUnsafe, hdr.Name, hdr.Typeflag)
	default:
		return "", false, fmt.Errorf("%w: %q has unsupported type %q", ErrCorrupt, hdr.Name, hdr.Typeflag)
	}
	if err := checkName(name); err != nil {
		return "", false, err
	}
	return name, isDir, nil
}

// extractFile writes one file, checks it against the manifest and leaves it
// fsynced with its final mode.
func extractFile(ctx context.Context, root *os.Root, r io.Reader, e FileEntry) (err error) {
	if parent := path.Dir(e.Name); parent != "." {
		if err := root.MkdirAll(parent, 0o700); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	f, err := root.OpenFile(e.Name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("config: %w", cerr)
		}
	}()
	n, sum, rerr, werr := hashCopy(ctx, f, r)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case rerr != nil:
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, e.Name, rerr)
	case werr != nil:
		return fmt.Errorf("config: write %s: %w", e.Name, werr)
	case n != e.Size:
		return fmt.Errorf("%w: %s is %d bytes, manifest says %d", ErrManifest, e.Name, n, e.Size)
	case sum != e.SHA256:
		return fmt.Errorf("%w: %s: sha256 %s, manifest says %s", ErrManifest, e.Name, sum, e.SHA256)
	}
	if err := f.Chmod(fs.FileMode(e.Mode)); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("config: sync %s: %w", e.Name, err)
	}
	return nil
}

// finishDirs gives every directory its final mode and fsyncs it, deepest
// first so a read-only parent never blocks work on its children.
func finishDirs(root *os.Root, dirs []DirEntry) error {
	sorted := append([]DirEntry(nil), dirs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name > sorted[j].Name })
	for _, d := range sorted {
		f, err := root.Open(d.Name)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		err = f.Chmod(fs.FileMode(d.Mode))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("config: finish dir %s: %w", d.Name, err)
		}
	}
	return nil
}

// Apply makes the staged configuration live: it renames the staging
// directory to the next generation, fsyncs the root, points a fresh
// live.tmp symlink at it, renames live.tmp over live, fsyncs the root again
// and removes the previous generation. When Apply returns nil the new
// configuration is live and durable. If it fails before the live rename the
// old configuration stays live; a crash at any point leaves either the old
// or the new configuration, whole, for Open to keep.
func (st *Staged) Apply(ctx context.Context) error {
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.used {
		return errUsed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	old, err := s.currentGen()
	if err != nil {
		return err
	}
	st.used = true
	if err := s.install(ctx, st.dir, old); err != nil {
		if _, serr := os.Lstat(st.dir); serr == nil {
			_ = removeTree(st.dir)
		}
		return err
	}
	return nil
}

// Discard removes the staging directory. It is a no-op after Apply or a
// previous Discard.
func (st *Staged) Discard() error {
	s := st.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.used {
		return nil
	}
	st.used = true
	if err := removeTree(st.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config: discard: %w", err)
	}
	return nil
}
