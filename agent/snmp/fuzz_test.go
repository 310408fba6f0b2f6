package snmp

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp/usm"
)

// FuzzHandlePacket feeds arbitrary messages to a full engine: it must never
// panic (not even into its own last-resort recover), and any reply must be
// a response that fits the size limit.
func FuzzHandlePacket(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed packets in testdata: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	fx := newFixture(f, Options{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		resp, ok := fx.e.HandlePacket(context.Background(), pkt)
		if got := fx.e.Stats().Panics; got != 0 {
			t.Fatalf("handling panicked (%d recovered)", got)
		}
		if !ok {
			return
		}
		if len(resp) > fx.e.maxSize {
			t.Fatalf("reply of %d bytes exceeds %d", len(resp), fx.e.maxSize)
		}
		p, err := (&gosnmp.GoSNMP{}).SnmpDecodePacket(resp)
		if err != nil {
			t.Fatalf("reply does not decode: %v", err)
		}
		if p.PDUType != gosnmp.GetResponse {
			t.Fatalf("reply is %v, want GetResponse", p.PDUType)
		}
	})
}

// FuzzHandlePacketV3 feeds arbitrary messages to an engine with SNMPv3
// users (the golden packets were captured from net-snmp against the same
// engine ID and users): it must never panic, and any reply must be an
// SNMPv3 Response or Report that fits the size limit.
func FuzzHandlePacketV3(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "netsnmp-v3-*.bin"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no SNMPv3 seed packets in testdata: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	fx := v3Fixture(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		resp, ok := fx.e.HandlePacket(context.Background(), pkt)
		if got := fx.e.Stats().Panics; got != 0 {
			t.Fatalf("handling panicked (%d recovered)", got)
		}
		if !ok {
			return
		}
		if len(resp) > fx.e.maxSize {
			t.Fatalf("reply of %d bytes exceeds %d", len(resp), fx.e.maxSize)
		}
		m, err := usm.Parse(resp)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if m.Reportable() {
			t.Fatal("reply is marked reportable")
		}
		if m.Level() == usm.AuthPriv {
			return // encrypted for a user the fuzzer named; no key here
		}
		s, err := usm.ParseScoped(m.Data)
		if err != nil {
			t.Fatalf("reply's scoped PDU: %v", err)
		}
		p, err := DecodePDU(s.PDU)
		if err != nil {
			t.Fatalf("reply's PDU: %v", err)
		}
		if p.PDUType != gosnmp.GetResponse && p.PDUType != gosnmp.Report {
			t.Fatalf("reply is %v, want Response or Report", p.PDUType)
		}
	})
}
