package config

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// ManifestName is the archive's first entry.
const ManifestName = "MANIFEST.json"

// ManifestFormat is the manifest layout this package writes and reads.
const ManifestFormat = 1

// maxManifestSize bounds the manifest read into memory, whatever
// MaxArchiveSize says: 1024 entries with long names fit many times over.
const maxManifestSize = 4 << 20

// Manifest describes a backup archive. It is the archive's first entry, as
// JSON, so a restore can reject a wrong or damaged archive before the first
// file byte reaches the disk.
type Manifest struct {
	// Format is the manifest layout, ManifestFormat.
	Format int `json:"format"`
	// SoftwareVersion is the software that wrote the backup.
	SoftwareVersion string `json:"software_version"`
	// ConfigFormat is the configuration format version of the files, so a
	// restore can tell whether they need converting first.
	ConfigFormat uint32 `json:"config_format"`
	// Created is when the backup was taken (UTC, whole seconds).
	Created time.Time `json:"created"`
	// Files lists every regular file, sorted by name.
	Files []FileEntry `json:"files"`
	// Dirs lists every directory below the configuration root, sorted by
	// name, so empty directories and directory modes survive a round trip.
	Dirs []DirEntry `json:"dirs,omitempty"`
}

// FileEntry is one regular file of a configuration.
type FileEntry struct {
	// Name is a slash-separated path relative to the configuration root.
	Name string `json:"name"`
	// Size is the length in bytes.
	Size int64 `json:"size"`
	// Mode holds the permission bits only.
	Mode uint32 `json:"mode"`
	// SHA256 is the lowercase hex SHA-256 of the content.
	SHA256 string `json:"sha256"`
}

// DirEntry is one directory of a configuration.
type DirEntry struct {
	// Name is a slash-separated path relative to the configuration root.
	Name string `json:"name"`
	// Mode holds the permission bits only.
	Mode uint32 `json:"mode"`
}

// BackupMeta is what the caller knows about the configuration being backed
// up and the manifest records.
type BackupMeta struct {
	SoftwareVersion string
	ConfigFormat    uint32
}

// entry is a scanned file or directory of a live configuration.
type entry struct {
	FileEntry
	dir bool
}

// scan walks a configuration directory without following anything out of
// it and returns its entries sorted by name, files hashed. Symlinks and
// special files are refused: packing them could leak or follow paths outside
// the configuration.
func scan(ctx context.Context, dir string) ([]entry, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer root.Close()
	var out []entry
	err = fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		switch {
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, entry{FileEntry: FileEntry{Name: name, Mode: uint32(fi.Mode().Perm())}, dir: true})
			return nil
		case d.Type().IsRegular():
			e, err := hashFile(ctx, root, name)
			if err != nil {
				return err
			}
			out = append(out, entry{FileEntry: e})
			return nil
		default:
			return fmt.Errorf("%w: %s is a %v, not a regular file", ErrUnsafe, name, d.Type())
		}
	})
	if err != nil {
		if errors.Is(err, ErrUnsafe) || errors.Is(err, ctx.Err()) {
			return nil, err
		}
		return nil, fmt.Errorf("config: scan %s: %w", dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func hashFile(ctx context.Context, root *os.Root, name string) (FileEntry, error) {
	f, err := root.Open(name)
	if err != nil {
		return FileEntry{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return FileEntry{}, err
	}
	if !fi.Mode().IsRegular() {
		return FileEntry{}, fmt.Errorf("%w: %s changed into a %v", ErrUnsafe, name, fi.Mode().Type())
	}
	n, sum, rerr, _ := hashCopy(ctx, io.Discard, f)
	if rerr != nil {
		return FileEntry{}, rerr
	}
	return FileEntry{Name: name, Size: n, Mode: uint32(fi.Mode().Perm()), SHA256: sum}, nil
}

// checkName accepts clean, relative, slash-separated names only.
func checkName(name string) error {
	if !fs.ValidPath(name) || name == "." || strings.ContainsAny(name, "\x00\\") {
		return fmt.Errorf("%w: name %q", ErrUnsafe, name)
	}
	return nil
}

// validate checks a manifest on its own, before any file is extracted.
// budget is what remains of MaxArchiveSize after the manifest itself.
func (m *Manifest) validate(budget int64, maxFiles int) error {
	if m.Format != ManifestFormat {
		return fmt.Errorf("%w: manifest format %d, want %d", ErrCorrupt, m.Format, ManifestFormat)
	}
	if n := len(m.Files) + len(m.Dirs); n > maxFiles {
		return fmt.Errorf("%w: %d entries, limit %d", ErrTooLarge, n, maxFiles)
	}
	isDir := make(map[string]bool, len(m.Files)+len(m.Dirs))
	add := func(name string, mode uint32, dir bool) error {
		if err := checkName(name); err != nil {
			return err
		}
		if _, dup := isDir[name]; dup {
			return fmt.Errorf("%w: manifest lists %q twice", ErrCorrupt, name)
		}
		if mode&^0o777 != 0 {
			return fmt.Errorf("%w: %s: mode %o has more than permission bits", ErrCorrupt, name, mode)
		}
		isDir[name] = dir
		return nil
	}
	for _, d := range m.Dirs {
		if err := add(d.Name, d.Mode, true); err != nil {
			return err
		}
	}
	var total int64
	for _, f := range m.Files {
		if err := add(f.Name, f.Mode, false); err != nil {
			return err
		}
		if f.Size < 0 {
			return fmt.Errorf("%w: %s: negative size", ErrCorrupt, f.Name)
		}
		if f.Size > budget-total {
			return fmt.Errorf("%w: files exceed the %d bytes the size limit leaves after the manifest", ErrTooLarge, budget)
		}
		total += f.Size
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 || strings.ToLower(f.SHA256) != f.SHA256 {
			return fmt.Errorf("%w: %s: bad sha256 %q", ErrCorrupt, f.Name, f.SHA256)
		}
	}
	for name := range isDir {
		if parent := path.Dir(name); parent != "." && !isDir[parent] {
			return fmt.Errorf("%w: parent of %s is not a listed directory", ErrCorrupt, name)
		}
	}
	return nil
}
