package mib

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadOID reports an object identifier that cannot be parsed.
var ErrBadOID = errors.New("mib: bad object identifier")

// OID is a numeric object identifier. The engine orders, compares and
// dispatches on OIDs in this form; strings appear only at the edges.
type OID []uint32

// ParseOID parses dotted numeric notation, with or without a leading dot.
func ParseOID(s string) (OID, error) {
	s = strings.TrimPrefix(s, ".")
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadOID)
	}
	parts := strings.Split(s, ".")
	o := make(OID, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: %q", ErrBadOID, s)
		}
		o[i] = uint32(v)
	}
	return o, nil
}

// MustParseOID is ParseOID for constants known to be valid.
func MustParseOID(s string) OID {
	o, err := ParseOID(s)
	if err != nil {
		panic(err)
	}
	return o
}

// String returns the dotted form without a leading dot ("1.3.6.1").
func (o OID) String() string {
	var b strings.Builder
	for i, v := range o {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(uint64(v), 10))
	}
	return b.String()
}

// Dotted returns the form gosnmp uses, with a leading dot (".1.3.6.1").
func (o OID) Dotted() string { return "." + o.String() }

// Compare orders OIDs lexicographically by sub-identifier, as SNMP does.
// It returns -1, 0 or +1.
func (o OID) Compare(p OID) int {
	n := min(len(o), len(p))
	for i := 0; i < n; i++ {
		switch {
		case o[i] < p[i]:
			return -1
		case o[i] > p[i]:
			return 1
		}
	}
	switch {
	case len(o) < len(p):
		return -1
	case len(o) > len(p):
		return 1
	}
	return 0
}

// Equal reports whether o and p are the same OID.
func (o OID) Equal(p OID) bool { return o.Compare(p) == 0 }

// HasPrefix reports whether p is a prefix of o (or equal to it).
func (o OID) HasPrefix(p OID) bool {
	if len(p) > len(o) {
		return false
	}
	for i := range p {
		if o[i] != p[i] {
			return false
		}
	}
	return true
}

// Append returns a new OID made of o followed by subs; o is not modified.
func (o OID) Append(subs ...uint32) OID {
	r := make(OID, 0, len(o)+len(subs))
	r = append(r, o...)
	return append(r, subs...)
}
