package config

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Backup writes the live configuration to w as an uncompressed tar archive:
// MANIFEST.json first, then every directory and regular file in name order.
// It reads the files twice (once to hash them for the manifest, once to
// stream them), so memory stays constant whatever their size. A file that
// changes between the two passes fails the backup instead of producing an
// archive that Stage would reject. Symlinks and special files in the live
// directory are refused with ErrUnsafe; a configuration that Stage would
// refuse as too large is refused with ErrTooLarge.
//
// It returns the bytes written and the manifest.
func (s *Store) Backup(ctx context.Context, w io.Writer, meta BackupMeta) (int64, Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen, err := s.currentGen()
	if err != nil {
		return 0, Manifest{}, err
	}
	dir := filepath.Join(s.root, gen)
	entries, err := scan(ctx, dir)
	if err != nil {
		return 0, Manifest{}, err
	}
	m := Manifest{
		Format:          ManifestFormat,
		SoftwareVersion: meta.SoftwareVersion,
		ConfigFormat:    meta.ConfigFormat,
		Created:         s.opts.now().UTC().Truncate(time.Second),
		Files:           []FileEntry{},
	}
	for _, e := range entries {
		if e.dir {
			m.Dirs = append(m.Dirs, DirEntry{Name: e.Name, Mode: e.Mode})
		} else {
			m.Files = append(m.Files, e.FileEntry)
		}
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return 0, Manifest{}, fmt.Errorf("config: %w", err)
	}
	js = append(js, '\n')
	if int64(len(js)) > maxManifestSize {
		return 0, Manifest{}, fmt.Errorf("%w: manifest is %d bytes", ErrTooLarge, len(js))
	}
	if err := m.validate(s.opts.MaxArchiveSize-int64(len(js)), s.opts.MaxFiles); err != nil {
		return 0, Manifest{}, err
	}

	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	hdr := func(name string, typ byte, mode uint32, size int64) *tar.Header {
		return &tar.Header{Typeflag: typ, Name: name, Mode: int64(mode), Size: size, ModTime: m.Created}
	}
	if err := tw.WriteHeader(hdr(ManifestName, tar.TypeReg, 0o644, int64(len(js)))); err != nil {
		return cw.n, Manifest{}, fmt.Errorf("config: write manifest: %w", err)
	}
	if _, err := tw.Write(js); err != nil {
		return cw.n, Manifest{}, fmt.Errorf("config: write manifest: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return cw.n, Manifest{}, fmt.Errorf("config: %w", err)
	}
	defer root.Close()
	for _, e := range entries {
		if e.dir {
			if err := tw.WriteHeader(hdr(e.Name+"/", tar.TypeDir, e.Mode, 0)); err != nil {
				return cw.n, Manifest{}, fmt.Errorf("config: write %s: %w", e.Name, err)
			}
			continue
		}
		if err := s.backupFile(ctx, tw, root, e.FileEntry, hdr(e.Name, tar.TypeReg, e.Mode, e.Size)); err != nil {
			return cw.n, Manifest{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, Manifest{}, fmt.Errorf("config: finish archive: %w", err)
	}
	return cw.n, m, nil
}

func (s *Store) backupFile(ctx context.Context, tw *tar.Writer, root *os.Root, e FileEntry, h *tar.Header) error {
	f, err := root.Open(e.Name)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("config: write %s: %w", e.Name, err)
	}
	// LimitReader keeps a file that grew since the first pass from
	// overrunning its header; the hash check below catches any change.
	n, sum, rerr, werr := hashCopy(ctx, tw, io.LimitReader(f, e.Size))
	if err := ctx.Err(); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("config: read %s: %w", e.Name, rerr)
	}
	if werr != nil {
		return fmt.Errorf("config: write %s: %w", e.Name, werr)
	}
	if n != e.Size || sum != e.SHA256 {
		return fmt.Errorf("config: %s changed during backup", e.Name)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
