package snmp

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"

	"github.com/gosnmp/gosnmp"
	"github.com/iadsafe/iad-agent/mib"
)

// maxOIDLen is the SMI limit on sub-identifiers (RFC 2578 section 3.5).
const maxOIDLen = 128

// validOID reports whether gosnmp can encode o: BER packs the first two
// arcs into one, which limits them.
func validOID(o mib.OID) bool {
	if len(o) < 2 || len(o) > maxOIDLen || o[0] > 2 {
		return false
	}
	return o[0] == 2 || o[1] < 40
}

// normalize turns a handler's value into exactly the Go type gosnmp's
// marshaller expects, because gosnmp panics or fails the whole message on
// anything else; a bad value is then reported against its own varbind.
func normalize(v Value) (Value, error) {
	bad := func() (Value, error) {
		return Value{}, fmt.Errorf("%w: value %T not valid for type %v", ErrBadHandler, v.V, v.Type)
	}
	switch v.Type {
	case gosnmp.OctetString, gosnmp.Opaque, gosnmp.BitString:
		switch x := v.V.(type) {
		case string, []byte:
			return Value{v.Type, x}, nil
		}
		return bad()
	case gosnmp.Integer:
		i, ok := toInt64(v.V)
		if !ok || i < math.MinInt32 || i > math.MaxInt32 {
			return bad()
		}
		return Value{v.Type, int(i)}, nil
	case gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks, gosnmp.Uinteger32:
		if u, ok := toUint64(v.V); ok && u <= math.MaxUint32 {
			return Value{v.Type, uint32(u)}, nil
		}
		return bad()
	case gosnmp.Counter64:
		if u, ok := toUint64(v.V); ok {
			return Value{v.Type, u}, nil
		}
		return bad()
	case gosnmp.ObjectIdentifier:
		var o mib.OID
		switch x := v.V.(type) {
		case mib.OID:
			o = x
		case string:
			var err error
			if o, err = mib.ParseOID(x); err != nil {
				return bad()
			}
		default:
			return bad()
		}
		if !validOID(o) {
			return bad()
		}
		return Value{v.Type, o.Dotted()}, nil
	case gosnmp.IPAddress:
		var ip net.IP
		switch x := v.V.(type) {
		case string:
			ip = net.ParseIP(x).To4()
		case net.IP:
			ip = x.To4()
		case netip.Addr:
			if x.Is4() {
				b := x.As4()
				ip = b[:]
			}
		case []byte:
			if len(x) == 4 {
				ip = net.IP(x)
			}
		}
		if ip == nil {
			return bad()
		}
		// gosnmp would call net.ParseIP itself and panic on nil, so hand it
		// the four bytes.
		return Value{v.Type, []byte(ip.To4())}, nil
	case gosnmp.Null:
		return Value{Type: gosnmp.Null}, nil
	}
	return bad()
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}

func toUint64(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint:
		return uint64(x), true
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	}
	if i, ok := toInt64(v); ok && i >= 0 {
		return uint64(i), true
	}
	return 0, false
}

// fromPDU converts a decoded request varbind. Byte slices are copied because
// the decoder aliases the receive buffer, which the next packet overwrites.
func fromPDU(p gosnmp.SnmpPDU) (VarBind, error) {
	o, err := mib.ParseOID(p.Name)
	if err != nil {
		return VarBind{}, err
	}
	if !validOID(o) {
		return VarBind{}, fmt.Errorf("%w: %q", mib.ErrBadOID, p.Name)
	}
	v := Value{Type: p.Type}
	switch x := p.Value.(type) {
	case []byte:
		v.V = append([]byte(nil), x...)
	case uint:
		if x > math.MaxUint32 {
			return VarBind{}, fmt.Errorf("snmp: %v value %d out of range", p.Type, x)
		}
		v.V = uint32(x)
	case string:
		if p.Type == gosnmp.ObjectIdentifier {
			oid, err := mib.ParseOID(x)
			if err != nil {
				return VarBind{}, err
			}
			v.V = oid
		} else {
			v.V = strings.Clone(x)
		}
	default:
		v.V = x
	}
	return VarBind{OID: o, Value: v}, nil
}

// toPDU converts a response varbind whose value came out of normalize or is
// an exception.
func toPDU(vb VarBind) gosnmp.SnmpPDU {
	return gosnmp.SnmpPDU{Name: vb.OID.Dotted(), Type: vb.Value.Type, Value: vb.Value.V}
}

// Normalize turns a value into exactly the Go type gosnmp marshals for its
// type (see Value), for transports other than the engine's own (AgentX).
func Normalize(v Value) (Value, error) { return normalize(v) }
