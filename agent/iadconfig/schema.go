package iadconfig

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// Field describes one key of a model file. Keys may hold placeholders:
// <n> is a line number 1..MaxLines and <port> an analogue port name
// (fxs1..fxs16, fxo1..fxo16). The placeholder's segment and everything
// before it name the block an entry belongs to ("line.3", "fxs1"); a
// Required field must be present in every block that exists, or, without
// a placeholder, in the file.
type Field struct {
	File     string
	Key      string
	Type     Type
	Required bool
	// Secret fields never appear in logs, SNMP or error texts.
	Secret bool
	Doc    string

	segs  []string
	block int // index of the placeholder segment, -1 if none
}

// Type checks a value. Check's message quotes the value only for types
// that are not secret.
type Type struct {
	Name  string
	Check func(string) error
}

// Limits of the model.
const (
	MaxLines = 64
	MaxPorts = 16
)

const (
	phLine = "<n>"
	phPort = "<port>"
)

func (f *Field) compile() {
	f.segs = strings.Split(f.Key, ".")
	f.block = -1
	for i, s := range f.segs {
		if s == phLine || s == phPort {
			f.block = i
		}
	}
}

// match reports whether key is an instance of the field and returns its
// block ("" for fields without a placeholder).
func (f *Field) match(key string) (block string, ok bool) {
	segs := strings.Split(key, ".")
	if len(segs) != len(f.segs) {
		return "", false
	}
	for i, p := range f.segs {
		switch p {
		case phLine:
			if _, ok := lineNumber(segs[i]); !ok {
				return "", false
			}
		case phPort:
			if _, _, ok := portName(segs[i]); !ok {
				return "", false
			}
		default:
			if segs[i] != p {
				return "", false
			}
		}
	}
	if f.block < 0 {
		return "", true
	}
	return strings.Join(segs[:f.block+1], "."), true
}

// instance is the key of the field in block ("line.3" + ".number").
func (f *Field) instance(block string) string {
	if f.block < 0 {
		return f.Key
	}
	return block + "." + strings.Join(f.segs[f.block+1:], ".")
}

// lineNumber parses a line number without leading zeros.
func lineNumber(s string) (int, bool) {
	if s == "" || s[0] == '0' || len(s) > 2 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLines {
		return 0, false
	}
	return n, true
}

// portName splits "fxs3" into ("fxs", 3).
func portName(s string) (kind string, n int, ok bool) {
	if len(s) < 4 {
		return "", 0, false
	}
	kind = s[:3]
	if kind != "fxs" && kind != "fxo" {
		return "", 0, false
	}
	n, ok = lineNumber(s[3:])
	if !ok || n > MaxPorts {
		return "", 0, false
	}
	return kind, n, true
}

// blockOrder sorts blocks: lines by number, ports FXS first, then by
// number.
func blockOrder(block string) int {
	seg := block[strings.LastIndexByte(block, '.')+1:]
	if n, ok := lineNumber(seg); ok {
		return n
	}
	if kind, n, ok := portName(seg); ok {
		if kind == "fxo" {
			return 1000 + n
		}
		return n
	}
	return 0
}

// The value types of the model.

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func tInt(min, max int) Type {
	return Type{Name: fmt.Sprintf("integer %d..%d", min, max), Check: func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errorf("%q is not an integer", truncate(v, 32))
		}
		if n < min || n > max {
			return errorf("%d is out of range %d..%d", n, min, max)
		}
		return nil
	}}
}

func tEnum(values ...string) Type {
	return Type{Name: "one of " + strings.Join(values, ", "), Check: func(v string) error {
		for _, x := range values {
			if v == x {
				return nil
			}
		}
		return errorf("%q is not one of %s", truncate(v, 32), strings.Join(values, ", "))
	}}
}

var tBool = tEnum("yes", "no")

var tNumber = Type{Name: "directory number: 1..32 of 0-9 * #, optional leading +", Check: func(v string) error {
	d := strings.TrimPrefix(v, "+")
	if d == "" || len(d) > 32 || strings.Trim(d, "0123456789*#") != "" {
		return errorf("%q is not a directory number", truncate(v, 40))
	}
	return nil
}}

func tText(max int) Type {
	return Type{Name: fmt.Sprintf("text of at most %d bytes, no control characters", max), Check: func(v string) error {
		if len(v) > max {
			return errorf("longer than %d bytes", max)
		}
		if hasControl(v) {
			return errorf("contains a control character")
		}
		return nil
	}}
}

func tToken(max int) Type {
	return Type{Name: fmt.Sprintf("1..%d printable ASCII characters, no spaces", max), Check: func(v string) error {
		if v == "" || len(v) > max {
			return errorf("must be 1..%d characters", max)
		}
		for _, r := range v {
			if r <= ' ' || r >= 0x7f {
				return errorf("%q has a character other than printable ASCII", truncate(v, 40))
			}
		}
		return nil
	}}
}

// tSecret never quotes the value.
func tSecret(max int) Type {
	return Type{Name: fmt.Sprintf("secret, at most %d bytes, no control characters", max), Check: func(v string) error {
		if len(v) > max {
			return errorf("longer than %d bytes", max)
		}
		if hasControl(v) {
			return errorf("contains a control character")
		}
		return nil
	}}
}

func hasControl(v string) bool {
	for _, r := range v {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

var tIPv4 = Type{Name: "IPv4 address", Check: func(v string) error {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return errorf("%q is not an IPv4 address", truncate(v, 45))
	}
	return nil
}}

var tNetmask = Type{Name: "IPv4 netmask (contiguous, /8../30)", Check: func(v string) error {
	if _, err := maskBits(v); err != nil {
		return err
	}
	return nil
}}

func maskBits(v string) (int, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return 0, errorf("%q is not an IPv4 netmask", truncate(v, 45))
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	bits := 0
	for m&0x80000000 != 0 {
		bits++
		m <<= 1
	}
	if m != 0 {
		return 0, errorf("%s is not a contiguous netmask", v)
	}
	if bits < 8 || bits > 30 {
		return 0, errorf("%s (/%d) is outside /8../30", v, bits)
	}
	return bits, nil
}

// tUnicast is a unicast IPv4 or IPv6 address: what a device can be
// managed at or send to.
var tUnicast = Type{Name: "unicast IPv4 or IPv6 address", Check: checkUnicast}

func checkUnicast(v string) error {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return errorf("%q is not an IP address", truncate(v, 45))
	}
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return errorf("%s is not a unicast address", v)
	}
	return nil
}

// tHost is an IP address or a DNS name.
var tHost = Type{Name: "IP address or DNS name", Check: checkHost}

func checkHost(v string) error {
	if _, err := netip.ParseAddr(v); err == nil {
		return checkUnicast(v)
	}
	if len(v) == 0 || len(v) > 253 {
		return errorf("%q is not an IP address or DNS name", truncate(v, 45))
	}
	allDigits := true
	for _, label := range strings.Split(v, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errorf("%q is not an IP address or DNS name", truncate(v, 45))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return errorf("%q is not an IP address or DNS name", truncate(v, 45))
			}
			if c < '0' || c > '9' {
				allDigits = false
			}
		}
	}
	if allDigits {
		// 300.1.1.1 is a broken address, not a host name.
		return errorf("%q is not an IP address", truncate(v, 45))
	}
	return nil
}

// list types: comma-separated, no spaces needed, no duplicates.
func tList(elem Type, min, max int) Type {
	return Type{Name: fmt.Sprintf("comma-separated list of %d..%d: %s", min, max, elem.Name), Check: func(v string) error {
		items := splitList(v)
		if len(items) < min || len(items) > max {
			return errorf("has %d entries, want %d..%d", len(items), min, max)
		}
		seen := map[string]bool{}
		for _, it := range items {
			if err := elem.Check(it); err != nil {
				return err
			}
			if seen[it] {
				return errorf("lists %s twice", it)
			}
			seen[it] = true
		}
		return nil
	}}
}

// splitList splits a comma-separated list, trimming spaces; "" is empty.
func splitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// Codecs the voice engine supports.
var codecs = []string{"g711a", "g711u", "g722", "g726", "g729", "ilbc", "opus"}

var tCodec = tEnum(codecs...)

var tPortRef = Type{Name: "port name fxs1..fxs16 or fxo1..fxo16", Check: func(v string) error {
	if _, _, ok := portName(v); !ok {
		return errorf("%q is not a port name (fxs1..fxs16, fxo1..fxo16)", truncate(v, 32))
	}
	return nil
}}

var tLineRef = Type{Name: fmt.Sprintf("line number 1..%d", MaxLines), Check: func(v string) error {
	if _, ok := lineNumber(v); !ok {
		return errorf("%q is not a line number 1..%d", truncate(v, 32), MaxLines)
	}
	return nil
}}

var tTOS = Type{Name: "IP TOS byte 0..252, a multiple of 4 (the ECN bits are zero)", Check: func(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errorf("%q is not an integer", truncate(v, 32))
	}
	if n < 0 || n > 252 || n%4 != 0 {
		return errorf("%d is not 0..252 with the two ECN bits zero", n)
	}
	return nil
}}

var tDSCP = tInt(0, 63)
