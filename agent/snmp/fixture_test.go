package snmp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gosnmp/gosnmp"
	"github.com/iadsafe/iad-agent/mib"
)

// The test MIB under a private enterprise number:
//
//	ent.1.1.0  level   Integer 0..10, writable
//	ent.1.2.0  label   OctetString <= 32 bytes, writable
//	ent.1.3.0  octets  Counter64, read-only
//	ent.2.1    table entry: columns 2 (name) and 3 (sparse: rows 1 and 3.7 only)
//	ent.3.1.0  fake    Integer, writable through fakeSetter
var (
	oidEnt      = mib.MustParseOID("1.3.6.1.4.1.99999")
	oidScalars  = oidEnt.Append(1)
	oidTable    = oidEnt.Append(2)
	oidEntry    = oidTable.Append(1)
	oidFake     = oidEnt.Append(3)
	oidFakeInst = oidFake.Append(1, 0)
	tableRows   = []mib.OID{{1}, {1, 5}, {2}, {3, 7}} // mixed index lengths on purpose
)

type fixture struct {
	e    *Engine
	fake *fakeSetter

	mu    sync.Mutex
	level int
	label string
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	if opts.ReadCommunity == "" && opts.WriteCommunity == "" {
		opts.ReadCommunity, opts.WriteCommunity = "public", "private"
	}
	if opts.System.Descr == "" {
		opts.System = SystemInfo{
			Descr:    "iad-agent test",
			ObjectID: oidEnt.Append(42),
			Contact:  "ops@example.net",
			Name:     "iad-1",
			Location: "lab",
		}
	}
	f := &fixture{e: New(opts), fake: &fakeSetter{value: 7}}
	s := NewScalars(oidScalars, map[uint32]func(context.Context) (Value, error){
		1: func(context.Context) (Value, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return Value{gosnmp.Integer, f.level}, nil
		},
		2: func(context.Context) (Value, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return Value{gosnmp.OctetString, f.label}, nil
		},
		3: func(context.Context) (Value, error) { return Value{gosnmp.Counter64, uint64(1) << 40}, nil },
	})
	must(t, s.SetWritable(1, func(_ context.Context, v Value) (func(context.Context) error, error) {
		if err := ExpectType(v, gosnmp.Integer); err != nil {
			return nil, err
		}
		n := v.V.(int)
		if n < 0 || n > 10 {
			return nil, &SetError{Status: gosnmp.WrongValue, Err: fmt.Errorf("level %d out of range", n)}
		}
		return func(context.Context) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.level = n
			return nil
		}, nil
	}))
	must(t, s.SetWritable(2, func(_ context.Context, v Value) (func(context.Context) error, error) {
		if err := ExpectType(v, gosnmp.OctetString); err != nil {
			return nil, err
		}
		b := v.V.([]byte)
		if len(b) > 32 {
			return nil, &SetError{Status: gosnmp.WrongLength}
		}
		return func(context.Context) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.label = string(b)
			return nil
		}, nil
	}))
	must(t, f.e.Register(oidScalars, s))
	must(t, f.e.Register(oidTable, NewTable(oidEntry, []uint32{3, 2},
		func() []mib.OID { return tableRows },
		func(col uint32, idx mib.OID) (Value, bool) {
			switch col {
			case 2:
				for _, r := range tableRows {
					if r.Equal(idx) {
						return Value{gosnmp.OctetString, "row " + idx.String()}, true
					}
				}
			case 3:
				if idx.Equal(mib.OID{1}) || idx.Equal(mib.OID{3, 7}) {
					return Value{gosnmp.Gauge32, uint32(idx[0])}, true
				}
			}
			return Value{}, false
		})))
	must(t, f.e.Register(oidFake, f.fake))
	return f
}

func (f *fixture) state() (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.level, f.label
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fakeSetter owns one writable Integer, records every call and injects
// faults: negative values fail PrepareSet, failCommit fails the commit.
type fakeSetter struct {
	mu         sync.Mutex
	value      int
	prepared   [][]SetVarBind
	commits    int
	failCommit bool
}

func (s *fakeSetter) Get(_ context.Context, oid mib.OID) (Value, error) {
	if !oid.Equal(oidFakeInst) {
		return Value{}, ErrNoSuchObject
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return Value{gosnmp.Integer, s.value}, nil
}

func (s *fakeSetter) Next(ctx context.Context, oid mib.OID) (mib.OID, Value, error) {
	if oid.Compare(oidFakeInst) >= 0 {
		return nil, Value{}, ErrEndOfSubtree
	}
	v, err := s.Get(ctx, oidFakeInst)
	return oidFakeInst, v, err
}

func (s *fakeSetter) PrepareSet(_ context.Context, vbs []SetVarBind) (func(context.Context) error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prepared = append(s.prepared, vbs)
	vb := vbs[0]
	if !vb.OID.Equal(oidFakeInst) {
		return nil, &SetError{Status: gosnmp.NoCreation, Index: vb.Index}
	}
	n, ok := vb.Value.V.(int)
	if !ok {
		return nil, &SetError{Status: gosnmp.WrongType, Index: vb.Index}
	}
	if n < 0 {
		return nil, &SetError{Status: gosnmp.InconsistentValue, Index: vb.Index, Err: errors.New("negative")}
	}
	return func(context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.failCommit {
			return errors.New("disk full")
		}
		s.commits++
		s.value = n
		return nil
	}, nil
}

func (s *fakeSetter) counts() (prepares, commits, value int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.prepared), s.commits, s.value
}

// vb is a request varbind for the packet builders.
type vb struct {
	oid string
	typ gosnmp.Asn1BER
	val any
}

func get(oid string) vb { return vb{oid: oid, typ: gosnmp.Null} }

type req struct {
	v1           bool // SNMPv1 instead of v2c
	community    string
	pdu          gosnmp.PDUType
	vbs          []vb
	nonRepeaters uint8
	maxReps      uint32
}

func encodeReq(t testing.TB, r req) []byte {
	t.Helper()
	p := &gosnmp.SnmpPacket{
		Version:        gosnmp.Version2c,
		Community:      r.community,
		PDUType:        r.pdu,
		RequestID:      4242,
		NonRepeaters:   r.nonRepeaters,
		MaxRepetitions: r.maxReps,
	}
	if r.v1 {
		p.Version = gosnmp.Version1
	}
	for _, v := range r.vbs {
		p.Variables = append(p.Variables, gosnmp.SnmpPDU{Name: v.oid, Type: v.typ, Value: v.val})
	}
	b, err := p.MarshalMsg()
	if err != nil {
		t.Fatalf("encode request: %v", err)
	}
	return b
}

// do sends a v2c request (community "public" unless set) and decodes the
// reply; it returns nil when the engine stays silent.
func do(t *testing.T, e *Engine, r req) *gosnmp.SnmpPacket {
	t.Helper()
	if r.community == "" {
		r.community = "public"
	}
	return send(t, e, encodeReq(t, r))
}

func send(t *testing.T, e *Engine, pkt []byte) *gosnmp.SnmpPacket {
	t.Helper()
	resp, ok := e.HandlePacket(context.Background(), pkt)
	if !ok {
		return nil
	}
	p, err := (&gosnmp.GoSNMP{}).SnmpDecodePacket(resp)
	if err != nil {
		t.Fatalf("decode response: %v", err)
	}
	if p.PDUType != gosnmp.GetResponse {
		t.Fatalf("response PDU type %v, want GetResponse", p.PDUType)
	}
	if len(resp) > e.maxSize {
		t.Fatalf("response of %d bytes exceeds max %d", len(resp), e.maxSize)
	}
	return p
}

func names(p *gosnmp.SnmpPacket) string {
	var s []string
	for _, v := range p.Variables {
		s = append(s, strings.TrimPrefix(v.Name, "."))
	}
	return strings.Join(s, " ")
}
