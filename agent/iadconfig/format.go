package iadconfig

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Compat is an OpenWrt-style compatibility version of a format: formats
// with the same Major convert into each other automatically (a minor step
// keeps every value where older software still finds its meaning); a
// different Major needs force, because software of the other major
// version would misread the files.
type Compat struct{ Major, Minor uint32 }

func (c Compat) String() string { return fmt.Sprintf("%d.%d", c.Major, c.Minor) }

// Check is a cross-check over a whole Doc of one format. It runs after
// the per-field checks and must skip values those already reject.
type Check func(d *Doc) []Problem

// Format is one version of the configuration format.
type Format struct {
	Version uint32
	Compat  Compat
	// Files are the model files, in the order problems are reported.
	Files  []string
	Fields []Field
	Checks []Check
	// Summary says what the format changed, for the documentation.
	Summary string
}

// DefaultsFile is the model file every format has; its format-version
// is the format of the whole configuration.
const DefaultsFile = "defaults.conf"

func (f *Format) compile() error {
	if f.Version == 0 {
		return fmt.Errorf("iadconfig: format version 0")
	}
	if !slices.Contains(f.Files, DefaultsFile) {
		return fmt.Errorf("iadconfig: format %d has no %s", f.Version, DefaultsFile)
	}
	keys := map[string]bool{}
	for i := range f.Fields {
		fl := &f.Fields[i]
		fl.compile()
		if !slices.Contains(f.Files, fl.File) {
			return fmt.Errorf("iadconfig: format %d: field %s in unknown file %s", f.Version, fl.Key, fl.File)
		}
		if keys[fl.File+" "+fl.Key] {
			return fmt.Errorf("iadconfig: format %d: field %s %s twice", f.Version, fl.File, fl.Key)
		}
		keys[fl.File+" "+fl.Key] = true
		if fl.Secret != IsSecretKey(fl.Key) {
			return fmt.Errorf("iadconfig: format %d: field %s: Secret is %v but its name says %v", f.Version, fl.Key, fl.Secret, IsSecretKey(fl.Key))
		}
	}
	return nil
}

// lookup finds the field a key of file is an instance of.
func (f *Format) lookup(file, key string) (*Field, string) {
	for i := range f.Fields {
		fl := &f.Fields[i]
		if fl.File != file {
			continue
		}
		if block, ok := fl.match(key); ok {
			return fl, block
		}
	}
	return nil, ""
}

// Validate checks every value of d against the format's fields and runs
// the cross-checks; it returns nil or every problem found.
func (f *Format) Validate(d *Doc) Problems {
	var ps Problems
	if d.Format != f.Version {
		ps = append(ps, Problem{File: DefaultsFile, Field: VersionKey, Msg: fmt.Sprintf("configuration is format %d, validated as %d", d.Format, f.Version)})
	}
	for _, name := range f.Files {
		file := d.Files[name]
		if file == nil {
			ps = append(ps, Problem{File: name, Msg: "missing"})
			continue
		}
		if file.Version != f.Version {
			ps = append(ps, Problem{File: name, Field: VersionKey, Msg: fmt.Sprintf("is %d, the configuration is format %d", file.Version, f.Version)})
		}
		present := map[string]bool{}
		blocks := map[string]bool{} // block pattern + " " + instance
		for _, e := range file.Entries {
			fl, block := f.lookup(name, e.Key)
			if fl == nil {
				ps = append(ps, Problem{File: name, Field: e.Key, Line: e.Line, Msg: "unknown field"})
				continue
			}
			present[e.Key] = true
			if block != "" {
				blocks[fl.blockPattern()+" "+block] = true
			}
			if err := fl.Type.Check(e.Value); err != nil {
				ps = append(ps, Problem{File: name, Field: e.Key, Line: e.Line, Msg: err.Error()})
			}
		}
		var missing []Problem
		for i := range f.Fields {
			fl := &f.Fields[i]
			if fl.File != name || !fl.Required {
				continue
			}
			if fl.block < 0 {
				if !present[fl.Key] {
					missing = append(missing, Problem{File: name, Field: fl.Key, Msg: "missing (required)"})
				}
				continue
			}
			for bk := range blocks {
				pat, inst, _ := cutSpace(bk)
				if pat == fl.blockPattern() && !present[fl.instance(inst)] {
					missing = append(missing, Problem{File: name, Field: fl.instance(inst), Msg: "missing (required)"})
				}
			}
		}
		slices.SortFunc(missing, func(a, b Problem) int { return compareKeys(a.Field, b.Field) })
		ps = append(ps, missing...)
	}
	for _, c := range f.Checks {
		ps = append(ps, c(d)...)
	}
	if len(ps) == 0 {
		return nil
	}
	// File by file, in the format's order; within a file, field checks
	// before cross-checks.
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Compare(fileRank(f.Files, a.File), fileRank(f.Files, b.File))
	})
	return ps
}

func fileRank(files []string, name string) int {
	if i := slices.Index(files, name); i >= 0 {
		return i
	}
	return len(files)
}

func cutSpace(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (f *Field) blockPattern() string {
	if f.block < 0 {
		return ""
	}
	return joinSegs(f.segs[:f.block+1])
}

func joinSegs(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "."
		}
		out += x
	}
	return out
}

// compareKeys orders keys with numbers compared as numbers, so line.2
// comes before line.10.
func compareKeys(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitPrefix(s string) int {
	i := 0
	for i < len(s) && i < 9 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// Canonical returns a copy of file with its entries in the format's
// order: fields without a placeholder in schema order, blocks in number
// order (FXS ports before FXO) with their fields in schema order; keys
// the format does not know keep their order at the end.
func (f *Format) Canonical(file *File) *File {
	out := file.Clone()
	type rank struct{ group, block, field int }
	ranks := make(map[string]rank, len(out.Entries))
	unknown := len(f.Fields) + 1
	for _, e := range out.Entries {
		fl, block := f.lookup(file.Name, e.Key)
		if fl == nil {
			ranks[e.Key] = rank{unknown, 0, 0}
			continue
		}
		idx := f.fieldIndex(fl)
		group := idx
		if fl.block >= 0 {
			group = f.firstOfBlock(fl)
		}
		ranks[e.Key] = rank{group, blockOrder(block), idx}
	}
	slices.SortStableFunc(out.Entries, func(a, b Entry) int {
		ra, rb := ranks[a.Key], ranks[b.Key]
		return cmp.Or(cmp.Compare(ra.group, rb.group), cmp.Compare(ra.block, rb.block), cmp.Compare(ra.field, rb.field))
	})
	return out
}

func (f *Format) fieldIndex(fl *Field) int {
	for i := range f.Fields {
		if &f.Fields[i] == fl {
			return i
		}
	}
	return -1
}

func (f *Format) firstOfBlock(fl *Field) int {
	for i := range f.Fields {
		g := &f.Fields[i]
		if g.File == fl.File && g.block >= 0 && g.blockPattern() == fl.blockPattern() {
			return i
		}
	}
	return f.fieldIndex(fl)
}

// Reference renders the registered formats and converters as Markdown
// tables, for docs/config-format.md (a test keeps the two in step).
func (r *Registry) Reference() string {
	var b strings.Builder
	for _, v := range r.Versions() {
		f := r.formats[v]
		fmt.Fprintf(&b, "### Format %d (compat %s)\n\n%s.\n\n", f.Version, f.Compat, upperFirst(f.Summary))
		fmt.Fprintf(&b, "Files: %s.\n\n", "`"+strings.Join(f.Files, "`, `")+"`")
		b.WriteString("| file | key | value | required | meaning |\n| --- | --- | --- | --- | --- |\n")
		for _, fl := range f.Fields {
			req := ""
			if fl.Required {
				req = "yes"
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s |\n", fl.File, fl.Key, fl.Type.Name, req, fl.Doc)
		}
		b.WriteString("\n")
	}
	b.WriteString("### Converters\n\n| step | kind | what it does |\n| --- | --- | --- |\n")
	for _, c := range r.Converters() {
		kind := "minor"
		if r.IsMajor(c.From, c.To) {
			kind = "major (restore needs iadOpForce)"
		}
		fmt.Fprintf(&b, "| %d → %d | %s | %s |\n", c.From, c.To, kind, c.Summary)
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
