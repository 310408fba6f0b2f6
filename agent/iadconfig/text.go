package iadconfig

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// VersionKey is the key every model file starts with.
const VersionKey = "format-version"

// MaxFileSize bounds one model file; the agent never reads more of it.
const MaxFileSize = 1 << 20

// Entry is one "key = value" line of a model file.
type Entry struct {
	Key   string
	Value string
	// Line is the 1-based line the entry was read from; 0 for entries
	// made in memory (by a converter).
	Line int
}

// File is one model file: its format-version, the comment lines before
// its first entry after format-version (kept through conversions, so a
// file's own explanation survives), and its entries in order. Other
// comments and blank lines are dropped when a file is rewritten; an
// unchanged file is never rewritten.
type File struct {
	Name    string
	Version uint32
	Header  []string // leading comment lines, without "#"
	Entries []Entry
}

// ParseFile reads one model file. It reports the first syntax error with
// its line; values are not checked here (see Registry.Validate).
func ParseFile(name string, data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, &SyntaxError{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	f := &File{Name: name}
	seen := map[string]int{}
	sawVersion := false
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		line := strings.TrimSuffix(raw, "\r")
		if !utf8.ValidString(line) {
			return nil, &SyntaxError{File: name, Line: n, Msg: "not valid UTF-8"}
		}
		line = strings.Trim(line, " \t")
		if line == "" {
			continue
		}
		if c, ok := strings.CutPrefix(line, "#"); ok {
			if len(f.Entries) == 0 {
				f.Header = append(f.Header, c)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &SyntaxError{File: name, Line: n, Msg: "want key = value"}
		}
		k, v = strings.Trim(k, " \t"), strings.Trim(v, " \t")
		if !validKey(k) {
			return nil, &SyntaxError{File: name, Line: n, Msg: fmt.Sprintf("bad key %q (want lowercase letters, digits, '.', '-', '_')", truncate(k, 40))}
		}
		if strings.HasPrefix(v, `"`) {
			u, err := strconv.Unquote(v)
			if err != nil {
				// The value is not shown: it may be a secret.
				return nil, &SyntaxError{File: name, Line: n, Msg: k + ": bad quoted value"}
			}
			v = u
		}
		if !sawVersion {
			if k != VersionKey {
				return nil, &SyntaxError{File: name, Line: n, Msg: "first entry must be " + VersionKey}
			}
			ver, err := strconv.ParseUint(v, 10, 32)
			if err != nil || ver == 0 {
				return nil, &SyntaxError{File: name, Line: n, Msg: fmt.Sprintf("%s %q is not a number 1..4294967295", VersionKey, truncate(v, 20))}
			}
			f.Version, sawVersion = uint32(ver), true
			continue
		}
		if k == VersionKey {
			return nil, &SyntaxError{File: name, Line: n, Msg: VersionKey + " given twice"}
		}
		if prev, dup := seen[k]; dup {
			return nil, &SyntaxError{File: name, Line: n, Msg: fmt.Sprintf("%s given twice (first on line %d)", k, prev)}
		}
		seen[k] = n
		f.Entries = append(f.Entries, Entry{Key: k, Value: v, Line: n})
	}
	if !sawVersion {
		return nil, &SyntaxError{File: name, Msg: "no " + VersionKey}
	}
	return f, nil
}

// ReadVersion returns the format-version a model file declares, reading
// no further than needed.
func ReadVersion(name string, data []byte) (uint32, error) {
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.Trim(strings.TrimSuffix(raw, "\r"), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		if strings.Trim(k, " \t") != VersionKey {
			return 0, &SyntaxError{File: name, Line: i + 1, Msg: "first entry must be " + VersionKey}
		}
		ver, err := strconv.ParseUint(strings.Trim(v, " \t"), 10, 32)
		if err != nil || ver == 0 {
			return 0, &SyntaxError{File: name, Line: i + 1, Msg: VersionKey + " is not a number 1..4294967295"}
		}
		return uint32(ver), nil
	}
	return 0, &SyntaxError{File: name, Msg: "no " + VersionKey}
}

func validKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Marshal writes the file in the documented text format: format-version,
// the header comments, then one "key = value" line per entry.
func (f *File) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s = %d\n", VersionKey, f.Version)
	for _, c := range f.Header {
		b.WriteString("#" + c + "\n")
	}
	for _, e := range f.Entries {
		b.WriteString(e.Key + " = " + quoteIfNeeded(e.Value) + "\n")
	}
	return b.Bytes()
}

// quoteIfNeeded returns v as it is when reading it back gives v again,
// else as a Go double-quoted string.
func quoteIfNeeded(v string) string {
	if v == "" || strings.HasPrefix(v, `"`) || strings.Trim(v, " \t") != v || !utf8.ValidString(v) {
		return strconv.Quote(v)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return strconv.Quote(v)
		}
	}
	return v
}

// Get returns the value of key.
func (f *File) Get(key string) (string, bool) {
	if i := f.index(key); i >= 0 {
		return f.Entries[i].Value, true
	}
	return "", false
}

// Set replaces the value of key, or appends the entry.
func (f *File) Set(key, value string) {
	if i := f.index(key); i >= 0 {
		f.Entries[i].Value = value
		return
	}
	f.Entries = append(f.Entries, Entry{Key: key, Value: value})
}

// Delete removes key; it reports whether it was there.
func (f *File) Delete(key string) bool {
	if i := f.index(key); i >= 0 {
		f.Entries = slices.Delete(f.Entries, i, i+1)
		return true
	}
	return false
}

func (f *File) index(key string) int {
	for i, e := range f.Entries {
		if e.Key == key {
			return i
		}
	}
	return -1
}

// Clone returns a deep copy.
func (f *File) Clone() *File {
	c := *f
	c.Header = slices.Clone(f.Header)
	c.Entries = slices.Clone(f.Entries)
	return &c
}

// SyntaxError is a model file that cannot be read at all. It never quotes
// a value, which may be a secret.
type SyntaxError struct {
	File string
	Line int // 0: the file as a whole
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Is makes a SyntaxError match ErrInvalid.
func (e *SyntaxError) Is(target error) bool { return target == ErrInvalid }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
