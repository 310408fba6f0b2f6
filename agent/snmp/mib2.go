package snmp

import (
	"context"
	"sync/atomic"

	"github.com/gosnmp/gosnmp"
	"github.com/iadsafe/iad-agent/mib"
)

// The standard subtrees the engine serves itself. Kept private so this
// package does not depend on the generated constants in package mib.
var (
	oidSystem   = mib.MustParseOID("1.3.6.1.2.1.1")  // SNMPv2-MIB::system
	oidSNMP     = mib.MustParseOID("1.3.6.1.2.1.11") // SNMPv2-MIB::snmp
	zeroDotZero = mib.MustParseOID("0.0")
)

// sysServices: application (layer 7, 64) + end-to-end (layer 4, 8) — an
// agent that runs on the host, not a router or bridge.
const sysServices = 72

// SystemInfo is the content of the MIB-II system group.
type SystemInfo struct {
	Descr    string
	ObjectID mib.OID // sysObjectID; zeroDotZero when empty
	Contact  string
	Name     string
	Location string
}

func str(s string) func(context.Context) (Value, error) {
	return func(context.Context) (Value, error) { return Value{gosnmp.OctetString, s}, nil }
}

func (e *Engine) systemGroup(info SystemInfo) *Scalars {
	objectID := info.ObjectID
	if len(objectID) == 0 {
		objectID = zeroDotZero
	}
	return NewScalars(oidSystem, map[uint32]func(context.Context) (Value, error){
		1: str(info.Descr),
		2: func(context.Context) (Value, error) { return Value{gosnmp.ObjectIdentifier, objectID}, nil },
		3: func(context.Context) (Value, error) { return Value{gosnmp.TimeTicks, e.Uptime()}, nil },
		4: str(info.Contact),
		5: str(info.Name),
		6: str(info.Location),
		7: func(context.Context) (Value, error) { return Value{gosnmp.Integer, sysServices}, nil },
		// sysORLastChange: the sysORTable never changes after start.
		8: func(context.Context) (Value, error) { return Value{gosnmp.TimeTicks, uint32(0)}, nil },
	})
}

// counters are the SNMPv2-MIB snmp group. Counter32 wraps at 2^32, as
// atomic.Uint32 does.
type counters struct {
	inPkts, inBadVersions, inBadCommunityNames, inBadCommunityUses atomic.Uint32
	inASNParseErrs, silentDrops, proxyDrops, panics                atomic.Uint32
}

func counter(c *atomic.Uint32) func(context.Context) (Value, error) {
	return func(context.Context) (Value, error) { return Value{gosnmp.Counter32, c.Load()}, nil }
}

func (e *Engine) snmpGroup() *Scalars {
	c := &e.stats
	return NewScalars(oidSNMP, map[uint32]func(context.Context) (Value, error){
		1: counter(&c.inPkts),
		3: counter(&c.inBadVersions),
		4: counter(&c.inBadCommunityNames),
		5: counter(&c.inBadCommunityUses),
		6: counter(&c.inASNParseErrs),
		// snmpEnableAuthenTraps: enabled(1) or disabled(2), as configured;
		// read-only here because a SET would not survive a restart.
		30: func(context.Context) (Value, error) {
			if e.authTraps {
				return Value{gosnmp.Integer, 1}, nil
			}
			return Value{gosnmp.Integer, 2}, nil
		},
		31: counter(&c.silentDrops),
		32: counter(&c.proxyDrops),
	})
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	InPkts              uint32 // snmpInPkts
	InBadVersions       uint32 // snmpInBadVersions
	InBadCommunityNames uint32 // snmpInBadCommunityNames
	InBadCommunityUses  uint32 // snmpInBadCommunityUses
	InASNParseErrs      uint32 // snmpInASNParseErrs
	SilentDrops         uint32 // snmpSilentDrops
	ProxyDrops          uint32 // snmpProxyDrops
	Panics              uint32 // packets dropped by the last-resort recover; not in any MIB
}

// Stats returns the current counters.
func (e *Engine) Stats() Stats {
	c := &e.stats
	return Stats{
		InPkts:              c.inPkts.Load(),
		InBadVersions:       c.inBadVersions.Load(),
		InBadCommunityNames: c.inBadCommunityNames.Load(),
		InBadCommunityUses:  c.inBadCommunityUses.Load(),
		InASNParseErrs:      c.inASNParseErrs.Load(),
		SilentDrops:         c.silentDrops.Load(),
		ProxyDrops:          c.proxyDrops.Load(),
		Panics:              c.panics.Load(),
	}
}
