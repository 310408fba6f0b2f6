// Package snmp is the SNMP agent engine iad-agent owns: the UDP loop, the
// community check, dispatch over a tree of OID subtrees in numeric order,
// Get/GetNext/GetBulk and a two-phase Set with RFC 3416 error statuses.
//
// The dispatch core (Tree) knows nothing about transports or message
// versions, so SNMPv1/v2c, SNMPv3 and an AgentX sub-agent (package agentx)
// serve the same handlers. Engine wraps it for SNMPv1/v2c (engine.go) and
// SNMPv3 with the User-based Security Model (v3.go: the authoritative
// side, with the LocalEngine of local.go; package usm does the wire format
// and cryptography) over one UDP port, using gosnmp only as a PDU codec.
//
// It must never panic on a packet, never act on an SNMPv3 message before
// its HMAC checked out, and never block the packet loop on slow work:
// handlers answer from memory and Set commit functions hand long jobs (an
// upgrade, a backup) to a worker instead of doing them inline.
package snmp

import (
	"context"
	"errors"
	"fmt"

	"github.com/gosnmp/gosnmp"
	"github.com/iadsafe/iad-agent/mib"
)

var (
	// ErrNoSuchObject is returned by Handler.Get when the OID names no
	// object type the handler implements.
	ErrNoSuchObject = errors.New("snmp: no such object")
	// ErrNoSuchInstance is returned by Handler.Get when the object type
	// exists but this instance of it does not.
	ErrNoSuchInstance = errors.New("snmp: no such instance")
	// ErrEndOfSubtree is returned by Handler.Next when nothing follows the
	// OID inside the handler's subtree.
	ErrEndOfSubtree = errors.New("snmp: end of subtree")
	// ErrOverlap is returned by Register for a prefix that contains, or is
	// contained in, one already registered.
	ErrOverlap = errors.New("snmp: overlapping subtree")
	// ErrBadHandler reports a handler that broke its contract: a panic, a
	// value gosnmp cannot encode, or a Next result out of order. The request
	// is answered with genErr.
	ErrBadHandler = errors.New("snmp: handler broke its contract")
)

// Value is an SNMP value as gosnmp marshals it. Handlers may return V as:
//
//	OctetString, Opaque, BitString     string or []byte
//	Integer                            int (any Go integer type in int32 range)
//	Counter32, Gauge32, TimeTicks,
//	Uinteger32                         uint32 (or another unsigned/int type in range)
//	Counter64                          uint64 (or uint, uint32)
//	ObjectIdentifier                   mib.OID or dotted string
//	IPAddress                          "a.b.c.d", net.IP, netip.Addr or 4 bytes
//
// Values arriving in a SET are normalised: OctetString/Opaque/BitString
// []byte (a copy, safe to keep), Integer int, Counter32/Gauge32/TimeTicks/
// Uinteger32 uint32, Counter64 uint64, ObjectIdentifier mib.OID, IPAddress
// "a.b.c.d" string, Null nil.
type Value struct {
	Type gosnmp.Asn1BER
	V    any
}

// Handler serves one registered subtree. OIDs passed in and returned are
// full OIDs, not suffixes. Handlers are called from the packet loop and
// possibly from several goroutines at once; they must answer promptly from
// memory.
type Handler interface {
	// Get returns the value of one exact instance, or ErrNoSuchObject /
	// ErrNoSuchInstance. Any other error answers the request with genErr.
	Get(ctx context.Context, oid mib.OID) (Value, error)
	// Next returns the first instance strictly greater than oid inside the
	// handler's subtree, or ErrEndOfSubtree. The tree only passes OIDs that
	// lie inside the subtree or equal its prefix.
	Next(ctx context.Context, oid mib.OID) (mib.OID, Value, error)
}

// Setter is implemented by handlers with writable objects.
type Setter interface {
	// PrepareSet checks all varbinds of one SET PDU that fall in this
	// handler's subtree without changing anything (phase 1). On success it
	// returns a commit func (phase 2) that must not fail for reasons the
	// input could cause; a nil commit does nothing. A *SetError selects the
	// error status and index; any other error answers genErr.
	PrepareSet(ctx context.Context, vbs []SetVarBind) (commit func(ctx context.Context) error, err error)
}

// SetVarBind is one varbind of a SET PDU handed to a Setter.
type SetVarBind struct {
	Index int // 1-based position in the PDU, for SetError.Index
	OID   mib.OID
	Value Value
}

// SetError carries an RFC 3416 error status out of PrepareSet.
type SetError struct {
	Status gosnmp.SNMPError
	Index  int // 1-based varbind position; 0 means the handler's first varbind
	Err    error
}

func (e *SetError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("snmp: set failed: %v at varbind %d", e.Status, e.Index)
	}
	return fmt.Sprintf("snmp: set failed: %v at varbind %d: %v", e.Status, e.Index, e.Err)
}

func (e *SetError) Unwrap() error { return e.Err }

// VarBind is one variable binding of a request or response. In responses
// Value.Type may be gosnmp.NoSuchObject, NoSuchInstance or EndOfMibView.
type VarBind struct {
	OID   mib.OID
	Value Value
}

// Result is the outcome of one PDU, independent of version and transport.
// When Status is not NoError, VarBinds is nil and the transport answers with
// the request's own varbinds, as RFC 3416 asks.
type Result struct {
	Status   gosnmp.SNMPError
	Index    int // 1-based varbind position, 0 when none applies
	VarBinds []VarBind
	Err      error // why, for the log; never sent
}

// ExpectType returns a wrongType *SetError unless v is of type want; its
// Index is 0 so Scalars and the tree fill in the varbind's position.
func ExpectType(v Value, want gosnmp.Asn1BER) error {
	if v.Type == want {
		return nil
	}
	return &SetError{Status: gosnmp.WrongType, Err: fmt.Errorf("got %v, want %v", v.Type, want)}
}
