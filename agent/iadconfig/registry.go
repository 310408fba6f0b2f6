package iadconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sync"
)

// Converter turns a configuration of format From into format To = From+1.
// Convert must be a pure function: it must not modify its argument, and
// its result depends on nothing else. It returns an error wrapping
// ErrConvert when the configuration cannot be expressed in format To.
type Converter struct {
	From, To uint32
	Convert  func(*Doc) (*Doc, error)
	Summary  string
}

// Registry holds the formats and the chain of converters between them.
type Registry struct {
	formats    map[uint32]*Format
	converters map[uint32]Converter // by From
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{formats: map[uint32]*Format{}, converters: map[uint32]Converter{}}
}

// AddFormat registers a format.
func (r *Registry) AddFormat(f Format) error {
	if err := f.compile(); err != nil {
		return err
	}
	if _, dup := r.formats[f.Version]; dup {
		return fmt.Errorf("iadconfig: format %d registered twice", f.Version)
	}
	r.formats[f.Version] = &f
	return nil
}

// AddConverter registers the converter from c.From to c.To; both formats
// must be registered and To must be From+1, so the chain has no gaps and
// no shortcuts.
func (r *Registry) AddConverter(c Converter) error {
	switch {
	case c.Convert == nil:
		return fmt.Errorf("iadconfig: converter %d→%d has no function", c.From, c.To)
	case c.To != c.From+1:
		return fmt.Errorf("iadconfig: converter %d→%d must go to %d", c.From, c.To, c.From+1)
	case r.formats[c.From] == nil || r.formats[c.To] == nil:
		return fmt.Errorf("iadconfig: converter %d→%d: format not registered", c.From, c.To)
	}
	if _, dup := r.converters[c.From]; dup {
		return fmt.Errorf("iadconfig: converter from %d registered twice", c.From)
	}
	r.converters[c.From] = c
	return nil
}

var (
	defaultOnce sync.Once
	defaultReg  *Registry
)

// Default returns the registry of this software: formats 1, 2 and 3 and
// the converters 1→2 (minor) and 2→3 (major). It is shared; do not add to
// it.
func Default() *Registry {
	defaultOnce.Do(func() {
		r := NewRegistry()
		for _, f := range []Format{V1(), V2(), V3()} {
			must(r.AddFormat(f))
		}
		must(r.AddConverter(Converter{From: 1, To: 2, Convert: ConvertV1ToV2, Summary: "codec pair to lists (global and per line), gain to tx-gain/rx-gain, qos.tos to DSCP, ntp.server and mgmt.trap-target to lists"}))
		must(r.AddConverter(Converter{From: 2, To: 3, Convert: ConvertV2ToV3, Summary: "users.conf to subscribers.conf; line.<n>.port to <port>.line (fails when two lines share a port)"}))
		defaultReg = r
	})
	return defaultReg
}

func must(err error) {
	if err != nil {
		panic(err) // a programming error in the built-in tables
	}
}

// Format returns a registered format.
func (r *Registry) Format(v uint32) (*Format, bool) {
	f, ok := r.formats[v]
	return f, ok
}

// Versions returns the registered format versions, ascending.
func (r *Registry) Versions() []uint32 { return slices.Sorted(maps.Keys(r.formats)) }

// Latest is the highest registered format.
func (r *Registry) Latest() uint32 { return slices.Max(r.Versions()) }

// Converters returns the registered converters in chain order.
func (r *Registry) Converters() []Converter {
	var out []Converter
	for _, v := range r.Versions() {
		if c, ok := r.converters[v]; ok {
			out = append(out, c)
		}
	}
	return out
}

// IsMajor reports whether converting between the formats crosses a
// major compat version.
func (r *Registry) IsMajor(from, to uint32) bool {
	a, b := r.formats[from], r.formats[to]
	return a != nil && b != nil && a.Compat.Major != b.Compat.Major
}

// Plan returns the converters that take format from to format to, in
// order (none when they are equal). It refuses a target older than the
// source (ErrTooNew), unknown formats or a gap in the chain
// (ErrUnknownFormat), and a change of major compat version unless force
// (ErrMajorMismatch).
func (r *Registry) Plan(from, to uint32, force bool) ([]Converter, error) {
	if r.formats[to] == nil {
		return nil, fmt.Errorf("%w: target format %d (this software knows %v)", ErrUnknownFormat, to, r.Versions())
	}
	if from > to {
		return nil, fmt.Errorf("%w: configuration is format %d, the running software uses format %d", ErrTooNew, from, to)
	}
	if r.formats[from] == nil {
		return nil, fmt.Errorf("%w: format %d (this software knows %v)", ErrUnknownFormat, from, r.Versions())
	}
	var plan []Converter
	for v := from; v < to; v++ {
		c, ok := r.converters[v]
		if !ok {
			return nil, fmt.Errorf("%w: no converter from format %d to %d", ErrUnknownFormat, v, v+1)
		}
		plan = append(plan, c)
	}
	if !force && r.IsMajor(from, to) {
		return nil, fmt.Errorf("%w: configuration is format %d (compat %s), the running software uses format %d (compat %s); force to convert anyway",
			ErrMajorMismatch, from, r.formats[from].Compat, to, r.formats[to].Compat)
	}
	return plan, nil
}

// Convert converts d up to format to along the chain. d is not modified.
// Each step's result must be in the step's target format; a converter
// error wraps ErrConvert and names the step.
func (r *Registry) Convert(d *Doc, to uint32, force bool) (*Doc, error) {
	plan, err := r.Plan(d.Format, to, force)
	if err != nil {
		return nil, err
	}
	cur := d.Clone()
	for _, c := range plan {
		next, err := c.Convert(cur.Clone())
		if err != nil {
			if !errors.Is(err, ErrConvert) {
				err = fmt.Errorf("%w: %w", ErrConvert, err)
			}
			return nil, fmt.Errorf("format %d to %d: %w", c.From, c.To, err)
		}
		if next == nil || next.Format != c.To {
			return nil, fmt.Errorf("%w: format %d to %d: converter returned the wrong format", ErrConvert, c.From, c.To)
		}
		for _, n := range next.Names() {
			if next.Files[n].Version != c.To || next.Files[n].Name != n {
				return nil, fmt.Errorf("%w: format %d to %d: converter left %s inconsistent", ErrConvert, c.From, c.To, n)
			}
		}
		cur = next
	}
	return cur, nil
}

// Validate checks d against its own format.
func (r *Registry) Validate(d *Doc) Problems {
	f, ok := r.formats[d.Format]
	if !ok {
		return Problems{{File: DefaultsFile, Field: VersionKey, Msg: fmt.Sprintf("format %d is unknown (this software knows %v)", d.Format, r.Versions())}}
	}
	return f.Validate(d)
}

// DetectFormat returns the format of a configuration: the format-version
// of its defaults.conf. read returns a file's content or an error
// wrapping fs.ErrNotExist.
func DetectFormat(read func(name string) ([]byte, error)) (uint32, error) {
	b, err := read(DefaultsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s is missing, so the configuration's format is unknown", ErrUnknownFormat, DefaultsFile)
	}
	if err != nil {
		return 0, err
	}
	v, err := ReadVersion(DefaultsFile, b)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnknownFormat, err)
	}
	return v, nil
}

// Decode reads the model files of a configuration through read. It fails
// with ErrTooNew for a format above every registered one, ErrUnknownFormat
// for other unknown formats, and Problems (ErrInvalid) for files that
// cannot be parsed. A missing model file is left out of the Doc for
// Validate to report.
func (r *Registry) Decode(read func(name string) ([]byte, error)) (*Doc, error) {
	v, err := DetectFormat(read)
	if err != nil {
		return nil, err
	}
	f, ok := r.formats[v]
	if !ok {
		if v > r.Latest() {
			return nil, fmt.Errorf("%w: configuration is format %d, this software knows up to %d", ErrTooNew, v, r.Latest())
		}
		return nil, fmt.Errorf("%w: format %d (this software knows %v)", ErrUnknownFormat, v, r.Versions())
	}
	d := NewDoc(v)
	var ps Problems
	for _, name := range f.Files {
		b, err := read(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		file, err := ParseFile(name, b)
		if err != nil {
			var se *SyntaxError
			if errors.As(err, &se) {
				ps = append(ps, Problem{File: name, Line: se.Line, Msg: se.Msg})
				continue
			}
			return nil, err
		}
		d.Files[name] = file
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return d, nil
}

// Encode renders every model file of d in canonical order.
func (r *Registry) Encode(d *Doc) (map[string][]byte, error) {
	f, ok := r.formats[d.Format]
	if !ok {
		return nil, fmt.Errorf("%w: format %d", ErrUnknownFormat, d.Format)
	}
	out := make(map[string][]byte, len(d.Files))
	for n, file := range d.Files {
		out[n] = f.Canonical(file).Marshal()
	}
	return out, nil
}
