package iadconfig

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Doc is a configuration in memory: its format and its model files by
// name. Files the model does not know are not part of a Doc.
type Doc struct {
	Format uint32
	Files  map[string]*File
}

// NewDoc returns an empty Doc of the given format.
func NewDoc(format uint32) *Doc { return &Doc{Format: format, Files: map[string]*File{}} }

// File returns the named model file, or nil.
func (d *Doc) File(name string) *File { return d.Files[name] }

// Get returns the value of key in file.
func (d *Doc) Get(file, key string) (string, bool) {
	if f := d.Files[file]; f != nil {
		return f.Get(key)
	}
	return "", false
}

// Clone returns a deep copy.
func (d *Doc) Clone() *Doc {
	c := &Doc{Format: d.Format, Files: make(map[string]*File, len(d.Files))}
	for n, f := range d.Files {
		c.Files[n] = f.Clone()
	}
	return c
}

// Names returns the file names, sorted.
func (d *Doc) Names() []string { return slices.Sorted(maps.Keys(d.Files)) }

// IsSecretKey reports whether a key holds a secret. The rule is by name,
// so it covers any Doc, of any format, even keys no schema knows; the
// registry checks that every Field marked Secret follows it.
func IsSecretKey(key string) bool {
	last := key[strings.LastIndexByte(key, '.')+1:]
	for _, s := range []string{"password", "passwd", "secret", "key"} {
		if strings.Contains(last, s) {
			return true
		}
	}
	return false
}

const redacted = "<redacted>"

// String renders the Doc for humans with secrets redacted.
func (d *Doc) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "format %d", d.Format)
	for _, n := range d.Names() {
		f := d.Files[n]
		fmt.Fprintf(&b, "\n[%s]", n)
		for _, e := range f.Entries {
			v := e.Value
			if IsSecretKey(e.Key) {
				v = redacted
			}
			fmt.Fprintf(&b, "\n%s = %s", e.Key, strconv.Quote(v))
		}
	}
	return b.String()
}

// LogValue implements slog.LogValuer with secrets redacted.
func (d *Doc) LogValue() slog.Value {
	attrs := []slog.Attr{slog.Int("format", int(d.Format))}
	for _, n := range d.Names() {
		f := d.Files[n]
		var fa []slog.Attr
		for _, e := range f.Entries {
			v := e.Value
			if IsSecretKey(e.Key) {
				v = redacted
			}
			fa = append(fa, slog.String(e.Key, v))
		}
		attrs = append(attrs, slog.Attr{Key: n, Value: slog.GroupValue(fa...)})
	}
	return slog.GroupValue(attrs...)
}

// Secrets returns every non-empty secret value of the Doc, so that text
// from elsewhere (a reload hook's output) can be scrubbed of them.
func (d *Doc) Secrets() []string {
	var out []string
	for _, n := range d.Names() {
		for _, e := range d.Files[n].Entries {
			if IsSecretKey(e.Key) && e.Value != "" {
				out = append(out, e.Value)
			}
		}
	}
	return out
}

// Redact replaces every occurrence of the given secrets in s.
func Redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 3 { // shorter values would blank out ordinary text
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return s
}

// Problem is one finding of Validate: the file, the field (a key, or ""
// for the file as a whole) and what is wrong. Msg never holds a secret.
type Problem struct {
	File  string
	Field string
	Line  int // where the field was read, 0 if unknown
	Msg   string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.File + ": " + p.Msg
	}
	return p.File + ": " + p.Field + ": " + p.Msg
}

// LogValue gives the problem's parts as attributes.
func (p Problem) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("file", p.File), slog.String("field", p.Field), slog.String("problem", p.Msg)}
	if p.Line > 0 {
		attrs = append(attrs, slog.Int("line", p.Line))
	}
	return slog.GroupValue(attrs...)
}

// Problems is every finding of a validation; as an error it matches
// ErrInvalid.
type Problems []Problem

func (ps Problems) Error() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return fmt.Sprintf("%d %s: %s", len(ps), plural(len(ps), "problem"), strings.Join(parts, "; "))
}

// Is makes Problems match ErrInvalid.
func (ps Problems) Is(target error) bool { return target == ErrInvalid }

// Summary is Error cut to at most max bytes at a problem boundary, ending
// with "(+N more)" when problems were left out, for a field as short as
// iadOpFailText. The first problem is always shown, cut if it must be.
func (ps Problems) Summary(max int) string {
	out := fmt.Sprintf("%d %s: ", len(ps), plural(len(ps), "problem"))
	more := func(rest int) string {
		if rest == 0 {
			return ""
		}
		return fmt.Sprintf(" (+%d more)", rest)
	}
	shown := 0
	for i, p := range ps {
		sep := ""
		if i > 0 {
			sep = "; "
		}
		s := p.String()
		if len(out)+len(sep)+len(s)+len(more(len(ps)-i-1)) > max {
			break
		}
		out += sep + s
		shown++
	}
	if shown == 0 && len(ps) > 0 {
		tail := more(len(ps) - 1)
		if room := max - len(out) - len(tail) - len("…"); room > 0 {
			out += truncate(ps[0].String(), room)
		}
		return clip(out+tail, max)
	}
	return clip(out+more(len(ps)-shown), max)
}

func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return truncate(s, max-len("…"))
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
