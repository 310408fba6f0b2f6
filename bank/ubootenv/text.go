package ubootenv

import (
	"github.com/iadsafe/iad-agent/bank/internal/fsync"

	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// TextFile is an environment kept as a text file in the format of U-Boot's
// "env export -t" and "env import -t": one "name=value" entry per line,
// '\' escaping a newline or a backslash inside a value. A boot script on
// a board whose U-Boot cannot save its own environment (no bootcount, no
// writable env storage) keeps the boot state this way on a FAT partition:
//
//	fatload virtio 0:1 ${loadaddr} iadstate.txt; env import -t ${loadaddr} ${filesize}
//	… count the try, choose the bank …
//	env export -t ${loadaddr} boot_bank upgrade_available bootcount …
//	fatwrite virtio 0:1 ${loadaddr} iadstate.txt ${filesize}
//
// Reading follows U-Boot's importer: leading blanks are skipped, lines
// starting with '#' are comments, "name" or "name=" deletes (so reads as
// absent), and a NUL byte ends the text. Writing replaces the file
// atomically (a temporary file, fsync, rename, fsync of the directory);
// empty values are left out, as U-Boot would delete them on import.
//
// The file holds only the variables written to it, not the board's
// environment, so a Store on a TextFile may start from an empty Defaults.
type TextFile struct {
	path string
}

var _ Backend = (*TextFile)(nil)

// OpenText returns the text environment in the file at path. The file
// need not exist yet: Read then reports ErrNoEnv and Write creates it.
func OpenText(path string) *TextFile { return &TextFile{path: path} }

// Path is the file's path.
func (f *TextFile) Path() string { return f.path }

// Read parses the file. A missing or empty file is ErrNoEnv.
func (f *TextFile) Read() (Vars, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoEnv, f.path)
	}
	if err != nil {
		return nil, fmt.Errorf("ubootenv: %w", err)
	}
	v, err := ParseText(b)
	if err != nil {
		return nil, fmt.Errorf("ubootenv: %s: %w", f.path, err)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: %s holds no variables", ErrNoEnv, f.path)
	}
	return v, nil
}

// Write replaces the file with v.
func (f *TextFile) Write(v Vars) error {
	b, err := FormatText(v)
	if err != nil {
		return err
	}
	tmp := f.path + ".tmp"
	if err := writeSync(tmp, b); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ubootenv: writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ubootenv: %w", err)
	}
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("ubootenv: syncing the directory of %s: %w", f.path, err)
	}
	return nil
}

// ParseText reads "env export -t" text the way U-Boot's "env import -t"
// does (see TextFile).
func ParseText(b []byte) (Vars, error) {
	if i := slices.Index(b, 0); i >= 0 {
		b = b[:i]
	}
	v := Vars{}
	for i := 0; i < len(b); {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i < len(b) && b[i] == '#' {
			for i < len(b) && b[i] != '\n' {
				i++
			}
			i++
			continue
		}
		start := i
		for i < len(b) && b[i] != '=' && b[i] != '\n' {
			i++
		}
		name := string(b[start:i])
		if i == len(b) || b[i] == '\n' || i+1 == len(b) || b[i+1] == '\n' {
			// "name" or "name=" (or an empty line): U-Boot deletes.
			delete(v, name)
			if i < len(b) && b[i] == '=' {
				i++
			}
			i++
			continue
		}
		if name == "" {
			return nil, fmt.Errorf("%w: a value without a name", ErrBadVar)
		}
		i++ // '='
		var val []byte
		for i < len(b) && b[i] != '\n' {
			if b[i] == '\\' && i+1 < len(b) {
				i++
			}
			val = append(val, b[i])
			i++
		}
		i++
		v[name] = string(val)
	}
	return v, nil
}

// FormatText writes v as "env export -t" does: sorted by name, '\' before
// a newline or a backslash in a value, each entry ending with a newline.
// Empty values are left out.
func FormatText(v Vars) ([]byte, error) {
	names := make([]string, 0, len(v))
	for n, x := range v {
		if err := checkVar(n, x); err != nil {
			return nil, err
		}
		if strings.ContainsAny(n, "\n\\ \t#") || strings.HasPrefix(n, "#") {
			return nil, fmt.Errorf("%w: name %q cannot be written as text", ErrBadVar, n)
		}
		if x != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte('=')
		for _, c := range []byte(v[n]) {
			if c == '\n' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}

func writeSync(path string, data []byte) error { return fsync.WriteFile(path, data) }

func syncDir(dir string) error { return fsync.Dir(dir) }
