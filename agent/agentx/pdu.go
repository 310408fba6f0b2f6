package agentx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/mib"
)

// ErrParse reports bytes that are not a well-formed AgentX PDU.
var ErrParse = errors.New("agentx: malformed PDU")

// PDU types (RFC 2741 section 6.1).
type pduType uint8

const (
	typeOpen            pduType = 1
	typeClose           pduType = 2
	typeRegister        pduType = 3
	typeUnregister      pduType = 4
	typeGet             pduType = 5
	typeGetNext         pduType = 6
	typeGetBulk         pduType = 7
	typeTestSet         pduType = 8
	typeCommitSet       pduType = 9
	typeUndoSet         pduType = 10
	typeCleanupSet      pduType = 11
	typeNotify          pduType = 12
	typePing            pduType = 13
	typeIndexAllocate   pduType = 14
	typeIndexDeallocate pduType = 15
	typeAddAgentCaps    pduType = 16
	typeRemoveAgentCaps pduType = 17
	typeResponse        pduType = 18
)

var typeNames = map[pduType]string{
	typeOpen: "Open", typeClose: "Close", typeRegister: "Register", typeUnregister: "Unregister",
	typeGet: "Get", typeGetNext: "GetNext", typeGetBulk: "GetBulk", typeTestSet: "TestSet",
	typeCommitSet: "CommitSet", typeUndoSet: "UndoSet", typeCleanupSet: "CleanupSet", typeNotify: "Notify",
	typePing: "Ping", typeIndexAllocate: "IndexAllocate", typeIndexDeallocate: "IndexDeallocate",
	typeAddAgentCaps: "AddAgentCaps", typeRemoveAgentCaps: "RemoveAgentCaps", typeResponse: "Response",
}

func (t pduType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("pdu(%d)", uint8(t))
}

// Header flags.
const (
	flagInstanceRegistration = 0x01
	flagNewIndex             = 0x02
	flagAnyIndex             = 0x04
	flagNonDefaultContext    = 0x08
	flagNetworkByteOrder     = 0x10
)

// res.error values of the administrative PDUs (RFC 2741 section 6.2.16);
// the others are SNMP error statuses.
const (
	errOpenFailed            = 256
	errNotOpen               = 257
	errUnsupportedContext    = 262
	errDuplicateRegistration = 263
	errParseError            = 266
	errRequestDenied         = 267
	errProcessingError       = 268
)

// Close reasons (RFC 2741 section 6.2.2).
const (
	reasonOther         = 1
	reasonParseError    = 2
	reasonProtocolError = 3
	reasonTimeouts      = 4
	reasonShutdown      = 5
	reasonByManager     = 6
)

const (
	headerLen = 20
	// maxPayload bounds one PDU: far more than any request of ours needs,
	// far less than a hostile length could make us allocate.
	maxPayload = 1 << 20
	maxSubIDs  = 128
)

// header is the fixed 20-octet AgentX header.
type header struct {
	version       uint8
	typ           pduType
	flags         uint8
	sessionID     uint32
	transactionID uint32
	packetID      uint32
	payloadLen    uint32
}

func (h header) order() binary.ByteOrder {
	if h.flags&flagNetworkByteOrder != 0 {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// parseHeader reads the header at the start of b.
func parseHeader(b []byte) (header, error) {
	if len(b) < headerLen {
		return header{}, fmt.Errorf("%w: header of %d octets", ErrParse, len(b))
	}
	h := header{version: b[0], typ: pduType(b[1]), flags: b[2]}
	if h.version != 1 {
		return header{}, fmt.Errorf("%w: version %d", ErrParse, h.version)
	}
	o := h.order()
	h.sessionID = o.Uint32(b[4:])
	h.transactionID = o.Uint32(b[8:])
	h.packetID = o.Uint32(b[12:])
	h.payloadLen = o.Uint32(b[16:])
	if h.payloadLen%4 != 0 || h.payloadLen > maxPayload {
		return header{}, fmt.Errorf("%w: payload length %d", ErrParse, h.payloadLen)
	}
	return h, nil
}

// searchRange is a GetNext/GetBulk range; for Get only start matters.
type searchRange struct {
	start   mib.OID
	include bool
	end     mib.OID // nil: unbounded
}

// pdu is a decoded PDU: the header and the fields its type carries.
type pdu struct {
	header
	context []byte
	// Get, GetNext, GetBulk
	ranges                      []searchRange
	nonRepeaters, maxRepetition uint16
	// TestSet, Notify, Response
	varbinds []snmp.VarBind
	// Response
	sysUpTime uint32
	resError  uint16
	resIndex  uint16
	// Close
	reason uint8
	// Open (what a master reads; decoded for tests and the fuzzer)
	openTimeout uint8
	openID      mib.OID
	descr       string
	// Register, Unregister
	priority   uint8
	registered mib.OID
}

// decoder reads fields in one byte order, failing on the first short read.
type decoder struct {
	b     []byte
	order binary.ByteOrder
}

func (d *decoder) need(n int, what string) ([]byte, error) {
	if n < 0 || len(d.b) < n {
		return nil, fmt.Errorf("%w: %s truncated", ErrParse, what)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) u16(what string) (uint16, error) {
	b, err := d.need(2, what)
	if err != nil {
		return 0, err
	}
	return d.order.Uint16(b), nil
}

func (d *decoder) u32(what string) (uint32, error) {
	b, err := d.need(4, what)
	if err != nil {
		return 0, err
	}
	return d.order.Uint32(b), nil
}

func (d *decoder) octets(what string) ([]byte, error) {
	n, err := d.u32(what)
	if err != nil {
		return nil, err
	}
	if n > uint32(len(d.b)) {
		return nil, fmt.Errorf("%w: %s of %d octets overruns the PDU", ErrParse, what, n)
	}
	padded := (int(n) + 3) &^ 3
	b, err := d.need(padded, what)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b[:n]...), nil
}

// oid reads an Object Identifier; a null OID decodes as nil.
func (d *decoder) oid(what string) (mib.OID, bool, error) {
	h, err := d.need(4, what)
	if err != nil {
		return nil, false, err
	}
	n, prefix, include := int(h[0]), h[1], h[2]
	if n > maxSubIDs {
		return nil, false, fmt.Errorf("%w: %s of %d sub-identifiers", ErrParse, what, n)
	}
	if include > 1 {
		return nil, false, fmt.Errorf("%w: %s include %d", ErrParse, what, include)
	}
	var o mib.OID
	if prefix != 0 {
		o = mib.OID{1, 3, 6, 1, uint32(prefix)}
	}
	for range n {
		v, err := d.u32(what)
		if err != nil {
			return nil, false, err
		}
		o = append(o, v)
	}
	if len(o) > maxSubIDs {
		return nil, false, fmt.Errorf("%w: %s too long", ErrParse, what)
	}
	return o, include == 1, nil
}

func (d *decoder) varbind() (snmp.VarBind, error) {
	typ, err := d.u16("varbind type")
	if err != nil {
		return snmp.VarBind{}, err
	}
	if _, err := d.need(2, "varbind reserved"); err != nil {
		return snmp.VarBind{}, err
	}
	name, _, err := d.oid("varbind name")
	if err != nil {
		return snmp.VarBind{}, err
	}
	if len(name) == 0 {
		return snmp.VarBind{}, fmt.Errorf("%w: varbind with a null name", ErrParse)
	}
	v := snmp.Value{Type: gosnmp.Asn1BER(typ)}
	if typ > 0xff {
		return snmp.VarBind{}, fmt.Errorf("%w: varbind type %d", ErrParse, typ)
	}
	switch v.Type {
	case gosnmp.Integer:
		u, err := d.u32("integer")
		if err != nil {
			return snmp.VarBind{}, err
		}
		v.V = int(int32(u))
	case gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks:
		u, err := d.u32("unsigned")
		if err != nil {
			return snmp.VarBind{}, err
		}
		v.V = u
	case gosnmp.Counter64:
		hi, err := d.u32("counter64")
		if err != nil {
			return snmp.VarBind{}, err
		}
		lo, err := d.u32("counter64")
		if err != nil {
			return snmp.VarBind{}, err
		}
		v.V = uint64(hi)<<32 | uint64(lo)
	case gosnmp.OctetString, gosnmp.Opaque:
		if v.V, err = d.octets("octet string"); err != nil {
			return snmp.VarBind{}, err
		}
	case gosnmp.IPAddress:
		b, err := d.octets("ip address")
		if err != nil {
			return snmp.VarBind{}, err
		}
		if len(b) != 4 {
			return snmp.VarBind{}, fmt.Errorf("%w: ip address of %d octets", ErrParse, len(b))
		}
		v.V = fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])
	case gosnmp.ObjectIdentifier:
		o, _, err := d.oid("oid value")
		if err != nil {
			return snmp.VarBind{}, err
		}
		v.V = o
	case gosnmp.Null, gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView:
	default:
		return snmp.VarBind{}, fmt.Errorf("%w: varbind type %d", ErrParse, typ)
	}
	return snmp.VarBind{OID: name, Value: v}, nil
}

// hasContext lists the PDU types that carry a context when
// NON_DEFAULT_CONTEXT is set.
func hasContext(t pduType) bool {
	switch t {
	case typeRegister, typeUnregister, typeAddAgentCaps, typeRemoveAgentCaps, typeGet, typeGetNext, typeGetBulk,
		typeIndexAllocate, typeIndexDeallocate, typeNotify, typeTestSet, typePing:
		return true
	}
	return false
}

// decodePDU decodes one whole PDU (header and payload). It never panics
// and never allocates more than the input's size suggests.
func decodePDU(b []byte) (*pdu, error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if int(h.payloadLen) != len(b)-headerLen {
		return nil, fmt.Errorf("%w: payload length %d, got %d octets", ErrParse, h.payloadLen, len(b)-headerLen)
	}
	p := &pdu{header: h}
	d := &decoder{b: b[headerLen:], order: h.order()}
	if h.flags&flagNonDefaultContext != 0 && hasContext(h.typ) {
		if p.context, err = d.octets("context"); err != nil {
			return nil, err
		}
	}
	switch h.typ {
	case typeGet, typeGetNext, typeGetBulk:
		if h.typ == typeGetBulk {
			if p.nonRepeaters, err = d.u16("non_repeaters"); err != nil {
				return nil, err
			}
			if p.maxRepetition, err = d.u16("max_repetitions"); err != nil {
				return nil, err
			}
		}
		for len(d.b) > 0 {
			var r searchRange
			if r.start, r.include, err = d.oid("range start"); err != nil {
				return nil, err
			}
			if r.end, _, err = d.oid("range end"); err != nil {
				return nil, err
			}
			if len(r.start) == 0 {
				return nil, fmt.Errorf("%w: search range with a null start", ErrParse)
			}
			p.ranges = append(p.ranges, r)
		}
		if int(p.nonRepeaters) > len(p.ranges) {
			p.nonRepeaters = uint16(len(p.ranges))
		}
	case typeTestSet, typeNotify:
		for len(d.b) > 0 {
			vb, err := d.varbind()
			if err != nil {
				return nil, err
			}
			p.varbinds = append(p.varbinds, vb)
		}
	case typeResponse:
		if p.sysUpTime, err = d.u32("sysUpTime"); err != nil {
			return nil, err
		}
		if p.resError, err = d.u16("res.error"); err != nil {
			return nil, err
		}
		if p.resIndex, err = d.u16("res.index"); err != nil {
			return nil, err
		}
		for len(d.b) > 0 {
			vb, err := d.varbind()
			if err != nil {
				return nil, err
			}
			p.varbinds = append(p.varbinds, vb)
		}
	case typeClose:
		r, err := d.need(4, "close reason")
		if err != nil {
			return nil, err
		}
		p.reason = r[0]
	case typeOpen:
		b, err := d.need(4, "open timeout")
		if err != nil {
			return nil, err
		}
		p.openTimeout = b[0]
		if p.openID, _, err = d.oid("open id"); err != nil {
			return nil, err
		}
		descr, err := d.octets("open description")
		if err != nil {
			return nil, err
		}
		p.descr = string(descr)
	case typeRegister, typeUnregister:
		b, err := d.need(4, "register header")
		if err != nil {
			return nil, err
		}
		p.priority = b[1]
		if p.registered, _, err = d.oid("register subtree"); err != nil {
			return nil, err
		}
		if b[2] != 0 {
			if _, err := d.u32("upper bound"); err != nil {
				return nil, err
			}
		}
	case typeCommitSet, typeUndoSet, typeCleanupSet, typePing:
		// Header (and context) only.
	default:
		// Types a master does not send to a sub-agent are accepted as
		// headers; the session answers them with a parse error.
		d.b = nil
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d stray octets after %v", ErrParse, len(d.b), h.typ)
	}
	return p, nil
}

// encoder writes in network byte order, which every PDU of ours declares.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }

func (e *encoder) octets(v []byte) {
	e.u32(uint32(len(v)))
	e.b = append(e.b, v...)
	for len(e.b)%4 != 0 {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) oid(o mib.OID, include bool) {
	prefix := uint8(0)
	if len(o) >= 5 && o[0] == 1 && o[1] == 3 && o[2] == 6 && o[3] == 1 && o[4] > 0 && o[4] < 256 {
		prefix = uint8(o[4])
		o = o[5:]
	}
	inc := uint8(0)
	if include {
		inc = 1
	}
	e.b = append(e.b, uint8(len(o)), prefix, inc, 0)
	for _, s := range o {
		e.u32(s)
	}
}

// varbind encodes a varbind whose value came out of the tree (normalized
// as gosnmp wants it) or is an exception.
func (e *encoder) varbind(vb snmp.VarBind) error {
	v := vb.Value
	e.u16(uint16(v.Type))
	e.u16(0)
	e.oid(vb.OID, false)
	switch v.Type {
	case gosnmp.Integer:
		i, ok := v.V.(int)
		if !ok || i < math.MinInt32 || i > math.MaxInt32 {
			return fmt.Errorf("agentx: integer %v", v.V)
		}
		e.u32(uint32(int32(i)))
	case gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks, gosnmp.Uinteger32:
		u, ok := v.V.(uint32)
		if !ok {
			return fmt.Errorf("agentx: %v value %T", v.Type, v.V)
		}
		e.u32(u)
	case gosnmp.Counter64:
		u, ok := v.V.(uint64)
		if !ok {
			return fmt.Errorf("agentx: counter64 value %T", v.V)
		}
		e.u32(uint32(u >> 32))
		e.u32(uint32(u))
	case gosnmp.OctetString, gosnmp.Opaque, gosnmp.BitString, gosnmp.IPAddress:
		switch x := v.V.(type) {
		case []byte:
			e.octets(x)
		case string:
			e.octets([]byte(x))
		default:
			return fmt.Errorf("agentx: %v value %T", v.Type, v.V)
		}
	case gosnmp.ObjectIdentifier:
		var o mib.OID
		switch x := v.V.(type) {
		case mib.OID:
			o = x
		case string:
			var err error
			if o, err = mib.ParseOID(x); err != nil {
				return fmt.Errorf("agentx: oid value: %w", err)
			}
		default:
			return fmt.Errorf("agentx: oid value %T", v.V)
		}
		e.oid(o, false)
	case gosnmp.Null, gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView:
	default:
		return fmt.Errorf("agentx: cannot encode type %v", v.Type)
	}
	return nil
}

// frame returns the PDU with its header; payload is everything after it.
func frame(typ pduType, flags uint8, sessionID, transactionID, packetID uint32, payload []byte) []byte {
	e := &encoder{b: make([]byte, 0, headerLen+len(payload))}
	e.u8(1)
	e.u8(uint8(typ))
	e.u8(flags | flagNetworkByteOrder)
	e.u8(0)
	e.u32(sessionID)
	e.u32(transactionID)
	e.u32(packetID)
	e.u32(uint32(len(payload)))
	e.b = append(e.b, payload...)
	return e.b
}
