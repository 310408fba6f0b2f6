package snmp

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/iadsafe/iad-agent/mib"
)

const ent = "1.3.6.1.4.1.99999"

// fullWalk is every instance of the fixture in the order a walk must see
// them: system, snmp, then the enterprise subtrees, tables column-major.
var fullWalk = []string{
	"1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.4.0",
	"1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0", "1.3.6.1.2.1.1.7.0", "1.3.6.1.2.1.1.8.0",
	"1.3.6.1.2.1.11.1.0", "1.3.6.1.2.1.11.3.0", "1.3.6.1.2.1.11.4.0", "1.3.6.1.2.1.11.5.0",
	"1.3.6.1.2.1.11.6.0", "1.3.6.1.2.1.11.30.0", "1.3.6.1.2.1.11.31.0", "1.3.6.1.2.1.11.32.0",
	ent + ".1.1.0", ent + ".1.2.0", ent + ".1.3.0",
	ent + ".2.1.2.1", ent + ".2.1.2.1.5", ent + ".2.1.2.2", ent + ".2.1.2.3.7",
	ent + ".2.1.3.1", ent + ".2.1.3.3.7",
	ent + ".3.1.0",
}

func TestGetSystem(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		oid     string
		typ     gosnmp.Asn1BER
		want    any // nil: only the type is checked
		wantStr string
	}{
		{oid: "1.3.6.1.2.1.1.1.0", typ: gosnmp.OctetString, wantStr: "iad-agent test"},
		{oid: "1.3.6.1.2.1.1.2.0", typ: gosnmp.ObjectIdentifier, want: "." + ent + ".42"},
		{oid: "1.3.6.1.2.1.1.3.0", typ: gosnmp.TimeTicks},
		{oid: "1.3.6.1.2.1.1.4.0", typ: gosnmp.OctetString, wantStr: "ops@example.net"},
		{oid: "1.3.6.1.2.1.1.5.0", typ: gosnmp.OctetString, wantStr: "iad-1"},
		{oid: "1.3.6.1.2.1.1.6.0", typ: gosnmp.OctetString, wantStr: "lab"},
		{oid: "1.3.6.1.2.1.1.7.0", typ: gosnmp.Integer, want: 72},
		{oid: "1.3.6.1.2.1.1.8.0", typ: gosnmp.TimeTicks, want: uint32(0)},
		{oid: "1.3.6.1.2.1.11.30.0", typ: gosnmp.Integer, want: 2},
		{oid: "1.3.6.1.2.1.11.1.0", typ: gosnmp.Counter32},
		{oid: "1.3.6.1.2.1.1.1", typ: gosnmp.NoSuchInstance},     // the object, not its instance
		{oid: "1.3.6.1.2.1.1.1.0.0", typ: gosnmp.NoSuchInstance}, // below the instance
		{oid: "1.3.6.1.2.1.1.9.1.2.1", typ: gosnmp.NoSuchObject}, // sysORTable is not served
		{oid: "1.3.6.1.2.1.2.1.0", typ: gosnmp.NoSuchObject},     // no subtree at all
		{oid: "1.3", typ: gosnmp.NoSuchObject},
		{oid: ent + ".2.1.2.1.5", typ: gosnmp.OctetString, wantStr: "row 1.5"},
		{oid: ent + ".2.1.3.2", typ: gosnmp.NoSuchInstance}, // sparse cell
		{oid: ent + ".1.3.0", typ: gosnmp.Counter64, want: uint64(1) << 40},
	}
	for _, tt := range tests {
		t.Run(tt.oid, func(t *testing.T) {
			p := do(t, f.e, req{pdu: gosnmp.GetRequest, vbs: []vb{get(tt.oid)}})
			if p == nil {
				t.Fatal("got no response")
			}
			if p.Error != gosnmp.NoError || len(p.Variables) != 1 {
				t.Fatalf("got status %v with %d varbinds, want noError with 1", p.Error, len(p.Variables))
			}
			v := p.Variables[0]
			if v.Name != "."+tt.oid {
				t.Errorf("got name %s, want .%s", v.Name, tt.oid)
			}
			if v.Type != tt.typ {
				t.Fatalf("got type %v, want %v", v.Type, tt.typ)
			}
			if tt.wantStr != "" && string(v.Value.([]byte)) != tt.wantStr {
				t.Errorf("got %q, want %q", v.Value, tt.wantStr)
			}
			if tt.want != nil && v.Value != tt.want {
				t.Errorf("got %#v, want %#v", v.Value, tt.want)
			}
		})
	}
}

func TestGetMultipleKeepsOrder(t *testing.T) {
	f := newFixture(t, Options{})
	p := do(t, f.e, req{pdu: gosnmp.GetRequest, vbs: []vb{get("1.3.6.1.2.1.1.5.0"), get("1.3.6.1.9"), get("1.3.6.1.2.1.1.1.0")}})
	if got, want := names(p), "1.3.6.1.2.1.1.5.0 1.3.6.1.9 1.3.6.1.2.1.1.1.0"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if p.Variables[1].Type != gosnmp.NoSuchObject {
		t.Errorf("got %v for the unknown OID, want noSuchObject", p.Variables[1].Type)
	}
	if p.RequestID != 4242 {
		t.Errorf("got request id %d, want 4242", p.RequestID)
	}
}

func walk(t *testing.T, e *Engine, from string) []string {
	t.Helper()
	var got []string
	oid := from
	for range 200 {
		p := do(t, e, req{pdu: gosnmp.GetNextRequest, vbs: []vb{get(oid)}})
		if p == nil || p.Error != gosnmp.NoError || len(p.Variables) != 1 {
			t.Fatalf("getnext %s: bad response %+v", oid, p)
		}
		v := p.Variables[0]
		if v.Type == gosnmp.EndOfMibView {
			if v.Name != "."+oid {
				t.Errorf("endOfMibView named %s, want .%s", v.Name, oid)
			}
			return got
		}
		oid = strings.TrimPrefix(v.Name, ".")
		got = append(got, oid)
	}
	t.Fatal("walk did not end")
	return nil
}

func TestWalk(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		from string
		want []string
	}{
		{"1.3", fullWalk},
		{"0.0", fullWalk},
		{"1.3.6.1.2.1.1", fullWalk},
		{"1.3.6.1.2.1.1.3.0", fullWalk[3:]},
		{"1.3.6.1.2.1.1.8.0", fullWalk[8:]},        // across subtrees
		{"1.3.6.1.2.1.5", fullWalk[8:]},            // between subtrees
		{"1.3.6.1.2.1.11.2.0", fullWalk[9:]},       // a gap in the snmp group
		{"1.3.6.1.2.1.11.32.0", fullWalk[16:]},     // last of a subtree
		{ent + ".2.1.2.1.0", fullWalk[20:]},        // partial index
		{ent + ".2.1.2.3.7", fullWalk[23:]},        // last row: next column
		{ent + ".2.1.3.3.7", fullWalk[25:]},        // last cell: next subtree
		{ent + ".2.1.2.4294967295", fullWalk[23:]}, // past every row of column 2
		{ent + ".3.1.0", nil},
		{"2.0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.from, func(t *testing.T) {
			got := walk(t, f.e, tt.from)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("walk from %s:\n got  %v\n want %v", tt.from, got, tt.want)
			}
		})
	}
}

func TestGetBulk(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name    string
		nonRep  uint8
		maxReps uint32
		oids    []string
		want    string
	}{
		{
			name: "non-repeaters and repeaters", nonRep: 1, maxReps: 3,
			oids: []string{"1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1", ent + ".2"},
			want: "1.3.6.1.2.1.1.4.0 " +
				"1.3.6.1.2.1.1.1.0 " + ent + ".2.1.2.1 " +
				"1.3.6.1.2.1.1.2.0 " + ent + ".2.1.2.1.5 " +
				"1.3.6.1.2.1.1.3.0 " + ent + ".2.1.2.2",
		},
		{
			name: "end of view repeats and stops", nonRep: 0, maxReps: 10,
			oids: []string{ent + ".2.1.3.3.7", ent + ".3"},
			want: ent + ".3.1.0 " + ent + ".3.1.0 " +
				ent + ".3.1.0 " + ent + ".3.1.0",
		},
		{
			name: "non-repeaters beyond the list", nonRep: 5, maxReps: 10,
			oids: []string{"1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0"},
			want: "1.3.6.1.2.1.1.2.0 1.3.6.1.2.1.1.3.0",
		},
		{
			name: "zero repetitions", nonRep: 1, maxReps: 0,
			oids: []string{"1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0"},
			want: "1.3.6.1.2.1.1.2.0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req{pdu: gosnmp.GetBulkRequest, nonRepeaters: tt.nonRep, maxReps: tt.maxReps}
			for _, o := range tt.oids {
				r.vbs = append(r.vbs, get(o))
			}
			p := do(t, f.e, r)
			if p == nil || p.Error != gosnmp.NoError {
				t.Fatalf("got %+v, want a noError response", p)
			}
			if got := names(p); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}

	t.Run("end of view values", func(t *testing.T) {
		p := do(t, f.e, req{pdu: gosnmp.GetBulkRequest, maxReps: 3, vbs: []vb{get(ent + ".3.1.0")}})
		if len(p.Variables) != 1 || p.Variables[0].Type != gosnmp.EndOfMibView {
			t.Fatalf("got %v, want a single endOfMibView", p.Variables)
		}
	})
}

func TestGetBulkTruncatesToMessageSize(t *testing.T) {
	f := newFixture(t, Options{MaxMessageSize: 484})
	p := do(t, f.e, req{pdu: gosnmp.GetBulkRequest, maxReps: 1000, vbs: []vb{get("1.3")}})
	if p == nil || p.Error != gosnmp.NoError {
		t.Fatalf("got %+v, want a noError response", p)
	}
	n := len(p.Variables)
	if n == 0 || n >= len(fullWalk) {
		t.Fatalf("got %d varbinds, want a truncated, non-empty prefix of %d", n, len(fullWalk))
	}
	if got, want := names(p), strings.Join(fullWalk[:n], " "); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// One more varbind would not have fitted: the engine fills the message.
	more := do(t, f.e, req{pdu: gosnmp.GetBulkRequest, maxReps: uint32(n + 1), vbs: []vb{get("1.3")}})
	if len(more.Variables) != n {
		t.Errorf("max-repetitions %d: got %d varbinds, want %d", n+1, len(more.Variables), n)
	}
}

func TestGetTooBig(t *testing.T) {
	f := newFixture(t, Options{MaxMessageSize: 484})
	var vbs []vb
	for range 30 {
		vbs = append(vbs, get("1.3.6.1.2.1.1.1.0"))
	}
	for _, pdu := range []gosnmp.PDUType{gosnmp.GetRequest, gosnmp.GetNextRequest} {
		p := do(t, f.e, req{pdu: pdu, vbs: vbs})
		if p == nil {
			t.Fatalf("%v: got no response", pdu)
		}
		if p.Error != gosnmp.TooBig || p.ErrorIndex != 0 || len(p.Variables) != 0 {
			t.Errorf("%v: got status %v index %d with %d varbinds, want tooBig 0 with none", pdu, p.Error, p.ErrorIndex, len(p.Variables))
		}
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name       string
		vbs        []vb
		failCommit bool
		wantStatus gosnmp.SNMPError
		wantIndex  uint8
		wantLevel  int
		wantLabel  string
		wantFake   int
	}{
		{
			name:       "two handlers commit",
			vbs:        []vb{{ent + ".1.1.0", gosnmp.Integer, 5}, {ent + ".1.2.0", gosnmp.OctetString, "hello"}, {ent + ".3.1.0", gosnmp.Integer, 9}},
			wantStatus: gosnmp.NoError, wantLevel: 5, wantLabel: "hello", wantFake: 9,
		},
		{
			name:       "second handler refuses: nothing committed",
			vbs:        []vb{{ent + ".1.1.0", gosnmp.Integer, 5}, {ent + ".3.1.0", gosnmp.Integer, -1}},
			wantStatus: gosnmp.InconsistentValue, wantIndex: 2, wantFake: 7,
		},
		{
			name:       "second varbind of one handler refuses",
			vbs:        []vb{{ent + ".1.1.0", gosnmp.Integer, 5}, {ent + ".1.2.0", gosnmp.OctetString, strings.Repeat("x", 33)}},
			wantStatus: gosnmp.WrongLength, wantIndex: 2, wantFake: 7,
		},
		{
			name:       "wrong type",
			vbs:        []vb{{ent + ".1.1.0", gosnmp.OctetString, "five"}},
			wantStatus: gosnmp.WrongType, wantIndex: 1, wantFake: 7,
		},
		{
			name:       "wrong value",
			vbs:        []vb{{ent + ".3.1.0", gosnmp.Integer, 1}, {ent + ".1.1.0", gosnmp.Integer, 11}},
			wantStatus: gosnmp.WrongValue, wantIndex: 2, wantFake: 7,
		},
		{
			name:       "read-only scalar",
			vbs:        []vb{{ent + ".1.1.0", gosnmp.Integer, 5}, {ent + ".1.3.0", gosnmp.Counter64, uint64(1)}},
			wantStatus: gosnmp.NotWritable, wantIndex: 2, wantFake: 7,
		},
		{
			name:       "existing object of a read-only handler",
			vbs:        []vb{{"1.3.6.1.2.1.1.5.0", gosnmp.OctetString, "x"}},
			wantStatus: gosnmp.NotWritable, wantIndex: 1, wantFake: 7,
		},
		{
			name:       "missing instance of a read-only handler",
			vbs:        []vb{{ent + ".2.1.2.9", gosnmp.OctetString, "x"}},
			wantStatus: gosnmp.NoCreation, wantIndex: 1, wantFake: 7,
		},
		{
			name:       "no subtree",
			vbs:        []vb{{ent + ".1.1.0", gosnmp.Integer, 5}, {"1.3.6.1.4.1.77777.1.0", gosnmp.Integer, 1}},
			wantStatus: gosnmp.NoCreation, wantIndex: 2, wantFake: 7,
		},
		{
			name:       "scalar instance that cannot exist",
			vbs:        []vb{{ent + ".1.1.1", gosnmp.Integer, 5}},
			wantStatus: gosnmp.NoCreation, wantIndex: 1, wantFake: 7,
		},
		{
			name:       "first commit fails",
			vbs:        []vb{{ent + ".3.1.0", gosnmp.Integer, 3}},
			failCommit: true,
			wantStatus: gosnmp.CommitFailed, wantIndex: 1, wantFake: 7,
		},
		{
			name:       "later commit fails after an earlier one",
			vbs:        []vb{{ent + ".1.1.0", gosnmp.Integer, 4}, {ent + ".3.1.0", gosnmp.Integer, 3}},
			failCommit: true,
			wantStatus: gosnmp.UndoFailed, wantIndex: 0, wantLevel: 4, wantFake: 7,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			f.fake.failCommit = tt.failCommit
			p := do(t, f.e, req{community: "private", pdu: gosnmp.SetRequest, vbs: tt.vbs})
			if p == nil {
				t.Fatal("got no response")
			}
			if p.Error != tt.wantStatus || p.ErrorIndex != tt.wantIndex {
				t.Errorf("got status %v index %d, want %v index %d", p.Error, p.ErrorIndex, tt.wantStatus, tt.wantIndex)
			}
			// The response echoes the request's varbinds either way.
			if len(p.Variables) != len(tt.vbs) {
				t.Fatalf("got %d varbinds, want %d", len(p.Variables), len(tt.vbs))
			}
			for i, v := range p.Variables {
				if v.Name != "."+tt.vbs[i].oid || v.Type != tt.vbs[i].typ {
					t.Errorf("varbind %d: got %s %v, want .%s %v", i+1, v.Name, v.Type, tt.vbs[i].oid, tt.vbs[i].typ)
				}
			}
			level, label := f.state()
			_, _, fake := f.fake.counts()
			if level != tt.wantLevel || label != tt.wantLabel || fake != tt.wantFake {
				t.Errorf("got state level=%d label=%q fake=%d, want %d %q %d", level, label, fake, tt.wantLevel, tt.wantLabel, tt.wantFake)
			}
		})
	}
}

func TestSetThenGet(t *testing.T) {
	f := newFixture(t, Options{})
	if p := do(t, f.e, req{community: "private", pdu: gosnmp.SetRequest, vbs: []vb{{ent + ".1.2.0", gosnmp.OctetString, []byte("abc")}}}); p.Error != gosnmp.NoError {
		t.Fatalf("set: got %v, want noError", p.Error)
	}
	p := do(t, f.e, req{pdu: gosnmp.GetRequest, vbs: []vb{get(ent + ".1.2.0")}})
	if got := string(p.Variables[0].Value.([]byte)); got != "abc" {
		t.Errorf("got %q after set, want %q", got, "abc")
	}
}

func TestCommunities(t *testing.T) {
	getSys := []vb{get("1.3.6.1.2.1.1.5.0")}
	setFake := []vb{{ent + ".3.1.0", gosnmp.Integer, 1}}
	tests := []struct {
		name      string
		opts      Options
		community string
		pdu       gosnmp.PDUType
		vbs       []vb
		wantReply bool
		wantStats Stats
	}{
		{"read community reads", Options{}, "public", gosnmp.GetRequest, getSys, true, Stats{InPkts: 1}},
		{"write community reads", Options{}, "private", gosnmp.GetNextRequest, getSys, true, Stats{InPkts: 1}},
		{"write community writes", Options{}, "private", gosnmp.SetRequest, setFake, true, Stats{InPkts: 1}},
		{"wrong community", Options{}, "secret", gosnmp.GetRequest, getSys, false, Stats{InPkts: 1, InBadCommunityNames: 1}},
		{"community is case sensitive", Options{}, "Public", gosnmp.GetRequest, getSys, false, Stats{InPkts: 1, InBadCommunityNames: 1}},
		{"read community cannot set", Options{}, "public", gosnmp.SetRequest, setFake, false, Stats{InPkts: 1, InBadCommunityUses: 1}},
		{"empty community never matches", Options{ReadCommunity: "public"}, "", gosnmp.GetRequest, getSys, false, Stats{InPkts: 1, InBadCommunityNames: 1}},
		{"no write community disables set", Options{ReadCommunity: "public"}, "private", gosnmp.SetRequest, setFake, false, Stats{InPkts: 1, InBadCommunityNames: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts)
			p := encodeReq(t, req{community: tt.community, pdu: tt.pdu, vbs: tt.vbs})
			_, ok := f.e.HandlePacket(context.Background(), p)
			if ok != tt.wantReply {
				t.Errorf("got reply=%v, want %v", ok, tt.wantReply)
			}
			if got := f.e.Stats(); got != tt.wantStats {
				t.Errorf("got stats %+v, want %+v", got, tt.wantStats)
			}
			if _, commits, _ := f.fake.counts(); (commits == 1) != (tt.pdu == gosnmp.SetRequest && tt.wantReply) {
				t.Errorf("got %d commits, want one only for an accepted set", commits)
			}
		})
	}
}

func TestCountersAreServed(t *testing.T) {
	f := newFixture(t, Options{})
	f.e.HandlePacket(context.Background(), encodeReq(t, req{community: "nope", pdu: gosnmp.GetRequest, vbs: []vb{get("1.3.6.1.2.1.1.5.0")}}))
	f.e.HandlePacket(context.Background(), []byte{0x30, 0x03, 0x02, 0x01})
	p := do(t, f.e, req{pdu: gosnmp.GetRequest, vbs: []vb{get("1.3.6.1.2.1.11.1.0"), get("1.3.6.1.2.1.11.4.0"), get("1.3.6.1.2.1.11.6.0")}})
	want := []uint{3, 1, 1} // this request is the third packet in
	for i, v := range p.Variables {
		if v.Type != gosnmp.Counter32 || v.Value != want[i] {
			t.Errorf("%s: got %v %v, want Counter32 %d", v.Name, v.Type, v.Value, want[i])
		}
	}
}

func TestDropped(t *testing.T) {
	golden := readGolden(t, "netsnmp-v2c-get.bin")
	tests := []struct {
		name string
		pkt  []byte
		want Stats
	}{
		{"empty", nil, Stats{InPkts: 1, InASNParseErrs: 1}},
		{"garbage", []byte("hello, agent"), Stats{InPkts: 1, InASNParseErrs: 1}},
		{"truncated", golden[:len(golden)-3], Stats{InPkts: 1, InASNParseErrs: 1}},
		{"trailing bytes", append(append([]byte(nil), golden...), 0, 0), Stats{InPkts: 1, InASNParseErrs: 1}},
		{"indefinite length", []byte{0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00}, Stats{InPkts: 1, InASNParseErrs: 1}},
		{"snmpv3", readGolden(t, "netsnmp-v3-probe.bin"), Stats{InPkts: 1, InBadVersions: 1}},
		{"version 7", func() []byte { b := append([]byte(nil), golden...); b[4] = 7; return b }(), Stats{InPkts: 1, InBadVersions: 1}},
		{"getbulk in v1", encodeReq(t, req{v1: true, community: "public", pdu: gosnmp.GetBulkRequest, vbs: []vb{get("1.3")}}), Stats{InPkts: 1, InASNParseErrs: 1}},
		{"response pdu", encodeReq(t, req{community: "public", pdu: gosnmp.GetResponse, vbs: []vb{get("1.3")}}), Stats{InPkts: 1}},
		{"oid of 129 arcs", rawGet(append([]byte{0x2b}, bytes.Repeat([]byte{1}, 127)...)), Stats{InPkts: 1, InASNParseErrs: 1}},
		{"sub-identifier of 2^32", rawGet([]byte{0x2b, 0x90, 0x80, 0x80, 0x80, 0x00}), Stats{InPkts: 1, InASNParseErrs: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			if resp, ok := f.e.HandlePacket(context.Background(), tt.pkt); ok {
				t.Errorf("got a %d-byte reply, want none", len(resp))
			}
			if got := f.e.Stats(); got != tt.want {
				t.Errorf("got stats %+v, want %+v", got, tt.want)
			}
		})
	}
}

// tlv encodes one BER element with a short or long definite length.
func tlv(tag byte, content ...[]byte) []byte {
	body := bytes.Join(content, nil)
	out := []byte{tag}
	switch n := len(body); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, body...)
}

// rawGet builds a v2c GetRequest by hand, for OIDs gosnmp refuses to encode.
func rawGet(oid []byte) []byte {
	return tlv(0x30,
		tlv(0x02, []byte{1}),
		tlv(0x04, []byte("public")),
		tlv(0xa0,
			tlv(0x02, []byte{1}), tlv(0x02, []byte{0}), tlv(0x02, []byte{0}),
			tlv(0x30, tlv(0x30, tlv(0x06, oid), tlv(0x05)))))
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNetSNMPPackets replays requests captured from net-snmp's tools.
func TestNetSNMPPackets(t *testing.T) {
	tests := []struct {
		file       string
		wantStatus gosnmp.SNMPError
		wantNames  string
	}{
		{"netsnmp-v2c-get.bin", gosnmp.NoError, "1.3.6.1.2.1.1.1.0 1.3.6.1.2.1.1.3.0"},
		{"netsnmp-v2c-getnext.bin", gosnmp.NoError, "1.3.6.1.2.1.1.1.0"},
		{"netsnmp-v2c-getbulk.bin", gosnmp.NoError, "1.3.6.1.2.1.1.4.0 " +
			"1.3.6.1.2.1.1.1.0 1.3.6.1.2.1.11.1.0 1.3.6.1.2.1.1.2.0 1.3.6.1.2.1.11.3.0 " +
			"1.3.6.1.2.1.1.3.0 1.3.6.1.2.1.11.4.0 1.3.6.1.2.1.1.4.0 1.3.6.1.2.1.11.5.0 " +
			"1.3.6.1.2.1.1.5.0 1.3.6.1.2.1.11.6.0 1.3.6.1.2.1.1.6.0 1.3.6.1.2.1.11.30.0 " +
			"1.3.6.1.2.1.1.7.0 1.3.6.1.2.1.11.31.0 1.3.6.1.2.1.1.8.0 1.3.6.1.2.1.11.32.0 " +
			"1.3.6.1.2.1.11.1.0 " + ent + ".1.1.0 1.3.6.1.2.1.11.3.0 " + ent + ".1.2.0"},
		{"netsnmp-v2c-set.bin", gosnmp.NoError, ent + ".1.1.0 " + ent + ".1.2.0"},
		{"netsnmp-v1-get.bin", gosnmp.NoError, "1.3.6.1.2.1.1.5.0"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f := newFixture(t, Options{})
			p := send(t, f.e, readGolden(t, tt.file))
			if p == nil {
				t.Fatal("got no response")
			}
			if p.Error != tt.wantStatus {
				t.Errorf("got status %v, want %v", p.Error, tt.wantStatus)
			}
			if got := names(p); got != tt.wantNames {
				t.Errorf("got  %s\nwant %s", got, tt.wantNames)
			}
		})
	}
	t.Run("set applied", func(t *testing.T) {
		f := newFixture(t, Options{})
		send(t, f.e, readGolden(t, "netsnmp-v2c-set.bin"))
		if level, label := f.state(); level != 5 || label != "hello" {
			t.Errorf("got level=%d label=%q, want 5 %q", level, label, "hello")
		}
	})
}

func TestSNMPv1(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name       string
		pdu        gosnmp.PDUType
		vbs        []vb
		wantStatus gosnmp.SNMPError
		wantIndex  uint8
		wantNames  string
	}{
		{"get", gosnmp.GetRequest, []vb{get("1.3.6.1.2.1.1.5.0")}, gosnmp.NoError, 0, "1.3.6.1.2.1.1.5.0"},
		{"get unknown", gosnmp.GetRequest, []vb{get("1.3.6.1.2.1.1.5.0"), get("1.3.6.1.2.1.1.5.1")}, gosnmp.NoSuchName, 2, "1.3.6.1.2.1.1.5.0 1.3.6.1.2.1.1.5.1"},
		{"get counter64", gosnmp.GetRequest, []vb{get(ent + ".1.3.0")}, gosnmp.NoSuchName, 1, ent + ".1.3.0"},
		{"getnext skips counter64", gosnmp.GetNextRequest, []vb{get(ent + ".1.2.0")}, gosnmp.NoError, 0, ent + ".2.1.2.1"},
		{"getnext at end", gosnmp.GetNextRequest, []vb{get("1.3"), get(ent + ".3.1.0")}, gosnmp.NoSuchName, 2, "1.3 " + ent + ".3.1.0"},
		{"set wrong type", gosnmp.SetRequest, []vb{{ent + ".1.1.0", gosnmp.OctetString, "x"}}, gosnmp.BadValue, 1, ent + ".1.1.0"},
		{"set read-only", gosnmp.SetRequest, []vb{{"1.3.6.1.2.1.1.5.0", gosnmp.OctetString, "x"}}, gosnmp.NoSuchName, 1, "1.3.6.1.2.1.1.5.0"},
		{"set", gosnmp.SetRequest, []vb{{ent + ".1.1.0", gosnmp.Integer, 2}}, gosnmp.NoError, 0, ent + ".1.1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := do(t, f.e, req{v1: true, community: "private", pdu: tt.pdu, vbs: tt.vbs})
			if p == nil {
				t.Fatal("got no response")
			}
			if p.Version != gosnmp.Version1 {
				t.Errorf("got version %v, want v1", p.Version)
			}
			if p.Error != tt.wantStatus || p.ErrorIndex != tt.wantIndex {
				t.Errorf("got status %v index %d, want %v index %d", p.Error, p.ErrorIndex, tt.wantStatus, tt.wantIndex)
			}
			if got := names(p); got != tt.wantNames {
				t.Errorf("got %s, want %s", got, tt.wantNames)
			}
		})
	}
}

// badHandler breaks the Handler contract in the ways a buggy MIB module
// might.
type badHandler struct{ mode string }

func (h badHandler) Get(context.Context, mib.OID) (Value, error) {
	switch h.mode {
	case "panic":
		panic("boom")
	case "badvalue":
		return Value{gosnmp.IPAddress, "not an address"}, nil
	}
	return Value{gosnmp.Integer, uint64(1)}, nil
}

func (h badHandler) Next(_ context.Context, oid mib.OID) (mib.OID, Value, error) {
	switch h.mode {
	case "panic":
		panic("boom")
	case "backwards":
		return mib.MustParseOID("1.3.6.1.4.1.5.1"), Value{gosnmp.Integer, 1}, nil
	}
	return oid.Append(1), Value{gosnmp.OctetString, 42}, nil
}

func TestBadHandlerGivesGenErr(t *testing.T) {
	for _, mode := range []string{"panic", "badvalue", "badtype", "backwards"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, Options{})
			must(t, f.e.Register(mib.MustParseOID("1.3.6.1.4.1.5.2"), badHandler{mode}))
			for _, pdu := range []gosnmp.PDUType{gosnmp.GetRequest, gosnmp.GetNextRequest, gosnmp.GetBulkRequest} {
				p := do(t, f.e, req{pdu: pdu, maxReps: 2, vbs: []vb{get("1.3.6.1.2.1.1.5.0"), get("1.3.6.1.4.1.5.2.1.0")}})
				if mode == "backwards" && pdu == gosnmp.GetRequest {
					continue // Get is fine; only Next breaks the order
				}
				if p == nil {
					t.Fatalf("%v: got no response", pdu)
				}
				if p.Error != gosnmp.GenErr || p.ErrorIndex != 2 {
					t.Errorf("%v: got status %v index %d, want genErr index 2", pdu, p.Error, p.ErrorIndex)
				}
			}
			if got := f.e.Stats().Panics; got != 0 {
				t.Errorf("got %d packet-level panics, want 0 (handler panics are per varbind)", got)
			}
		})
	}
}

func TestRegisterOverlap(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		prefix  string
		wantErr bool
	}{
		{"1.3.6.1.2.1.1", true},
		{"1.3.6.1.2.1.1.9", true}, // inside system
		{"1.3.6.1.2.1", true},     // contains system
		{ent, true},
		{ent + ".4", false},
		{"1.3.6.1.2.1.2", false},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			err := f.e.Register(mib.MustParseOID(tt.prefix), badHandler{})
			if (err != nil) != tt.wantErr {
				t.Errorf("got err %v, want error=%v", err, tt.wantErr)
			}
		})
	}
}

func TestUptime(t *testing.T) {
	e := New(Options{Start: time.Now().Add(-90 * time.Second)})
	// At least 90 s have passed since Start: a lower bound only, no
	// assumption about how fast the test runs.
	if got := e.Uptime(); got < 9000 {
		t.Errorf("got uptime %d, want >= 9000", got)
	}
}

func TestServe(t *testing.T) {
	f := newFixture(t, Options{})
	conn := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.e.Serve(ctx, conn) }()

	client := gosnmp.GoSNMP{
		Target: "127.0.0.1", Port: uint16(conn.LocalAddr().(*net.UDPAddr).Port), //nolint:gosec
		Community: "public", Version: gosnmp.Version2c, Timeout: 2 * time.Second, Retries: 2,
	}
	must(t, client.Connect())
	defer client.Conn.Close()
	res, err := client.Get([]string{".1.3.6.1.2.1.1.5.0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Variables[0].Value.([]byte)); got != "iad-1" {
		t.Errorf("got sysName %q, want %q", got, "iad-1")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v after cancel, want nil", err)
	}
	// Serve leaves the connection to its owner.
	if _, err := conn.WriteTo([]byte{0}, conn.LocalAddr()); err != nil {
		t.Errorf("conn unusable after Serve: %v", err)
	}
	conn.Close()
}

func TestGoldenFilesAreRequests(t *testing.T) {
	// Guards the fuzz seeds: each must still decode as what its name says.
	for _, name := range []string{"netsnmp-v2c-get.bin", "netsnmp-v2c-getnext.bin", "netsnmp-v2c-getbulk.bin", "netsnmp-v2c-set.bin", "netsnmp-v1-get.bin"} {
		p, err := (&gosnmp.GoSNMP{}).SnmpDecodePacket(readGolden(t, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Contains([]byte(name), []byte(strings.ToLower(strings.TrimSuffix(p.PDUType.String(), "Request")))) {
			t.Errorf("%s: got PDU %v", name, p.PDUType)
		}
	}
}
