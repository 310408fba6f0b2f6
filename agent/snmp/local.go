package snmp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp/usm"
	"github.com/iadsafe/iad-agent/mib"
)

// ErrBadUser reports a user definition the USM cannot serve.
var ErrBadUser = errors.New("snmp: bad user")

// MaxEngineBoots is the largest snmpEngineBoots; an engine that reaches it
// answers every authenticated message with notInTimeWindow (RFC 3414
// section 2.2.2) until it is given new keys and a new engine ID.
const MaxEngineBoots = 2147483647

// timeWindow is RFC 3414's 150-second window.
const timeWindow = 150

// User is one SNMPv3 user of the local engine.
type User struct {
	Name string
	// Credentials hold master keys (from pass phrases) to localize to the
	// engine ID; alternatively Keys are already localized to it.
	Credentials *usm.Credentials
	Keys        *usm.Keys
	// Write allows SET; WriteLevel is the lowest security level a SET is
	// accepted at (default: MinLevel).
	Write      bool
	WriteLevel usm.Level
	// MinLevel is the lowest security level the user is served at
	// (default: the strongest its keys support, so a user configured for
	// authPriv is never served in the clear).
	MinLevel usm.Level
}

// String never shows keys.
func (u User) String() string { return "user " + u.Name }

type localUser struct {
	name       []byte
	keys       *usm.Keys
	write      bool
	minLevel   usm.Level
	writeLevel usm.Level
}

// LocalEngineOptions configure the local SNMPv3 engine.
type LocalEngineOptions struct {
	// EngineID is snmpEngineID (5..32 octets); see NewEngineID.
	EngineID []byte
	// Boots is snmpEngineBoots, already incremented for this start.
	Boots uint32
	// Start is when snmpEngineTime was 0; zero means now.
	Start time.Time
	Users []User
}

// LocalEngine is the authoritative SNMPv3 engine of the agent: identity,
// clock, users with keys localized to it, and the usmStats counters. The
// Engine answers SNMPv3 requests with it, and notify signs traps with it.
type LocalEngine struct {
	id    []byte
	boots uint32
	start time.Time
	users map[string]*localUser
	salt  *usm.Salt
	stats usmCounters
}

type usmCounters struct {
	unsupportedSecLevels, notInTimeWindows, unknownUserNames atomic.Uint32
	unknownEngineIDs, wrongDigests, decryptionErrors         atomic.Uint32
	// SNMP-MPD-MIB and SNMP-TARGET-MIB counters of the v3 dispatcher.
	unknownSecurityModels, invalidMsgs, unknownPDUHandlers atomic.Uint32
	unavailableContexts, unknownContexts                   atomic.Uint32
}

// NewEngineID returns a fresh RFC 3411 snmpEngineID: the enterprise
// number with the top bit set, format 5 (octets, administratively
// assigned) and 8 random octets.
func NewEngineID(enterprise uint32) ([]byte, error) {
	id := make([]byte, 13)
	binary.BigEndian.PutUint32(id, enterprise|0x80000000)
	id[4] = 5
	if _, err := rand.Read(id[5:]); err != nil {
		return nil, fmt.Errorf("snmp: engine ID: %w", err)
	}
	return id, nil
}

// NewLocalEngine localizes every user's keys to the engine ID.
func NewLocalEngine(o LocalEngineOptions) (*LocalEngine, error) {
	if len(o.EngineID) < 5 || len(o.EngineID) > 32 {
		return nil, fmt.Errorf("snmp: engine ID of %d octets, want 5..32", len(o.EngineID))
	}
	if o.Start.IsZero() {
		o.Start = time.Now()
	}
	salt, err := usm.NewSalt()
	if err != nil {
		return nil, err
	}
	l := &LocalEngine{id: bytes.Clone(o.EngineID), boots: min(o.Boots, MaxEngineBoots), start: o.Start, users: map[string]*localUser{}, salt: salt}
	for _, u := range o.Users {
		lu, err := l.localize(u)
		if err != nil {
			return nil, err
		}
		if _, dup := l.users[u.Name]; dup {
			return nil, fmt.Errorf("%w: %q defined twice", ErrBadUser, u.Name)
		}
		l.users[u.Name] = lu
	}
	return l, nil
}

func (l *LocalEngine) localize(u User) (*localUser, error) {
	if u.Name == "" || len(u.Name) > 32 {
		return nil, fmt.Errorf("%w: name %q must be 1..32 octets", ErrBadUser, u.Name)
	}
	var keys *usm.Keys
	switch {
	case u.Keys != nil && u.Credentials != nil:
		return nil, fmt.Errorf("%w: %q has both pass phrases and localized keys", ErrBadUser, u.Name)
	case u.Keys != nil:
		k := *u.Keys
		keys = &k
	case u.Credentials != nil:
		var err error
		if keys, err = u.Credentials.Localize(l.id); err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrBadUser, u.Name, err)
		}
	default:
		keys = &usm.Keys{Auth: usm.NoAuth, Priv: usm.NoPriv}
	}
	if keys.Auth == 0 {
		keys.Auth = usm.NoAuth
	}
	if keys.Priv == 0 {
		keys.Priv = usm.NoPriv
	}
	if err := keys.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadUser, u.Name, err)
	}
	lu := &localUser{name: []byte(u.Name), keys: keys, write: u.Write, minLevel: u.MinLevel, writeLevel: u.WriteLevel}
	if lu.minLevel == 0 {
		lu.minLevel = keys.Level()
	}
	if lu.minLevel > keys.Level() {
		return nil, fmt.Errorf("%w: %q: minimum level %v needs keys the user does not have", ErrBadUser, u.Name, lu.minLevel)
	}
	if lu.writeLevel == 0 {
		lu.writeLevel = lu.minLevel
	}
	if u.Write && (lu.writeLevel > keys.Level() || lu.writeLevel < lu.minLevel) {
		return nil, fmt.Errorf("%w: %q: write level %v outside %v..%v", ErrBadUser, u.Name, lu.writeLevel, lu.minLevel, keys.Level())
	}
	return lu, nil
}

// EngineID returns snmpEngineID.
func (l *LocalEngine) EngineID() []byte { return bytes.Clone(l.id) }

// Boots returns snmpEngineBoots.
func (l *LocalEngine) Boots() uint32 { return l.boots }

// Time returns snmpEngineTime: seconds since Start, in 0..2147483647.
func (l *LocalEngine) Time() uint32 {
	s := time.Since(l.start) / time.Second
	return uint32(min(max(s, 0), MaxEngineBoots))
}

// UserKeys returns the keys of a user, localized to this engine, as a
// copy; ok is false for an unknown user.
func (l *LocalEngine) UserKeys(name string) (*usm.Keys, bool) {
	u, ok := l.users[name]
	if !ok {
		return nil, false
	}
	k := *u.keys
	return &k, true
}

// Salt is the engine's privacy salt for everything it encrypts.
func (l *LocalEngine) Salt() *usm.Salt { return l.salt }

// inTimeWindow is RFC 3414 section 3.2 step 7a for an authoritative
// receiver.
func (l *LocalEngine) inTimeWindow(boots, t uint32) bool {
	if l.boots >= MaxEngineBoots || boots != l.boots {
		return false
	}
	now := int64(l.Time())
	d := now - int64(t)
	return d <= timeWindow && d >= -timeWindow
}

// USMStats is a snapshot of the usmStats counters.
type USMStats struct {
	UnsupportedSecLevels, NotInTimeWindows, UnknownUserNames uint32
	UnknownEngineIDs, WrongDigests, DecryptionErrors         uint32
}

// Stats returns the usmStats counters.
func (l *LocalEngine) Stats() USMStats {
	c := &l.stats
	return USMStats{
		UnsupportedSecLevels: c.unsupportedSecLevels.Load(), NotInTimeWindows: c.notInTimeWindows.Load(),
		UnknownUserNames: c.unknownUserNames.Load(), UnknownEngineIDs: c.unknownEngineIDs.Load(),
		WrongDigests: c.wrongDigests.Load(), DecryptionErrors: c.decryptionErrors.Load(),
	}
}

// Standard SNMPv3 subtrees the engine serves when it has a LocalEngine.
var (
	oidSnmpEngine   = mib.MustParseOID("1.3.6.1.6.3.10.2.1") // SNMP-FRAMEWORK-MIB::snmpEngine
	oidMPDStats     = mib.MustParseOID("1.3.6.1.6.3.11.2.1") // SNMP-MPD-MIB::snmpMPDStats
	oidTargetObjs   = mib.MustParseOID("1.3.6.1.6.3.12.1")   // SNMP-TARGET-MIB::snmpTargetObjects
	oidUsmStats     = mib.MustParseOID("1.3.6.1.6.3.15.1.1") // SNMP-USER-BASED-SM-MIB::usmStats
	oidUsmStatsDisc = oidUsmStats.Append(4, 0)               // usmStatsUnknownEngineIDs.0
)

// V3Names maps the SNMPv3 objects the engine serves, by module-qualified
// name, to their OIDs; a test checks them against snmptranslate. Treat it
// as read-only.
var V3Names = map[string]mib.OID{
	"SNMP-FRAMEWORK-MIB::snmpEngineID":                     oidSnmpEngine.Append(1),
	"SNMP-FRAMEWORK-MIB::snmpEngineBoots":                  oidSnmpEngine.Append(2),
	"SNMP-FRAMEWORK-MIB::snmpEngineTime":                   oidSnmpEngine.Append(3),
	"SNMP-FRAMEWORK-MIB::snmpEngineMaxMessageSize":         oidSnmpEngine.Append(4),
	"SNMP-MPD-MIB::snmpUnknownSecurityModels":              oidMPDStats.Append(1),
	"SNMP-MPD-MIB::snmpInvalidMsgs":                        oidMPDStats.Append(2),
	"SNMP-MPD-MIB::snmpUnknownPDUHandlers":                 oidMPDStats.Append(3),
	"SNMP-TARGET-MIB::snmpUnavailableContexts":             oidTargetObjs.Append(4),
	"SNMP-TARGET-MIB::snmpUnknownContexts":                 oidTargetObjs.Append(5),
	"SNMP-USER-BASED-SM-MIB::usmStatsUnsupportedSecLevels": oidUsmStats.Append(1),
	"SNMP-USER-BASED-SM-MIB::usmStatsNotInTimeWindows":     oidUsmStats.Append(2),
	"SNMP-USER-BASED-SM-MIB::usmStatsUnknownUserNames":     oidUsmStats.Append(3),
	"SNMP-USER-BASED-SM-MIB::usmStatsUnknownEngineIDs":     oidUsmStats.Append(4),
	"SNMP-USER-BASED-SM-MIB::usmStatsWrongDigests":         oidUsmStats.Append(5),
	"SNMP-USER-BASED-SM-MIB::usmStatsDecryptionErrors":     oidUsmStats.Append(6),
}

// registerV3 serves snmpEngine, snmpMPDStats, the two SNMP-TARGET-MIB
// counters and usmStats.
func (e *Engine) registerV3() error {
	l := e.local
	c := &l.stats
	integer := func(f func() int) func(context.Context) (Value, error) {
		return func(context.Context) (Value, error) { return Value{gosnmp.Integer, f()}, nil }
	}
	groups := []struct {
		prefix mib.OID
		h      Handler
	}{
		{oidSnmpEngine, NewScalars(oidSnmpEngine, map[uint32]func(context.Context) (Value, error){
			1: func(context.Context) (Value, error) { return Value{gosnmp.OctetString, bytes.Clone(l.id)}, nil },
			2: integer(func() int { return int(l.boots) }),
			3: integer(func() int { return int(l.Time()) }),
			4: integer(func() int { return e.maxRequest }),
		})},
		{oidMPDStats, NewScalars(oidMPDStats, map[uint32]func(context.Context) (Value, error){
			1: counter(&c.unknownSecurityModels), 2: counter(&c.invalidMsgs), 3: counter(&c.unknownPDUHandlers),
		})},
		{oidTargetObjs, NewScalars(oidTargetObjs, map[uint32]func(context.Context) (Value, error){
			4: counter(&c.unavailableContexts), 5: counter(&c.unknownContexts),
		})},
		{oidUsmStats, NewScalars(oidUsmStats, map[uint32]func(context.Context) (Value, error){
			1: counter(&c.unsupportedSecLevels), 2: counter(&c.notInTimeWindows), 3: counter(&c.unknownUserNames),
			4: counter(&c.unknownEngineIDs), 5: counter(&c.wrongDigests), 6: counter(&c.decryptionErrors),
		})},
	}
	for _, g := range groups {
		if err := e.tree.Register(g.prefix, g.h); err != nil {
			return err
		}
	}
	return nil
}
