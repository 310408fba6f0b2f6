package traps

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/mib"
)

var from = netip.MustParseAddr("127.0.0.1")

func packet(t *testing.T, pdu gosnmp.PDUType, vars ...gosnmp.SnmpPDU) []byte {
	t.Helper()
	p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: pdu, RequestID: 7, Variables: vars}
	b, err := p.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func trapVars(oid mib.OID, vars ...gosnmp.SnmpPDU) []gosnmp.SnmpPDU {
	return append([]gosnmp.SnmpPDU{
		{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uint32(1234)},
		{Name: mib.SnmpTrapOID.Append(0).Dotted(), Type: gosnmp.ObjectIdentifier, Value: oid.Dotted()},
	}, vars...)
}

func col(c mib.OID, idx uint32, typ gosnmp.Asn1BER, v any) gosnmp.SnmpPDU {
	return gosnmp.SnmpPDU{Name: c.Append(idx).Dotted(), Type: typ, Value: v}
}

func TestDecode(t *testing.T) {
	failed := trapVars(mib.IadOpCompletedNotify,
		col(mib.IadOpType, 42, gosnmp.Integer, int(mib.OpUpgrade)),
		col(mib.IadOpState, 42, gosnmp.Integer, int(mib.OpFailed)),
		col(mib.IadOpFailCause, 42, gosnmp.Integer, int(mib.FailImageCorrupt)),
		col(mib.IadOpFailText, 42, gosnmp.OctetString, []byte("image: payload hash mismatch")))
	progress := trapVars(mib.IadOpProgressNotify,
		col(mib.IadOpType, 9, gosnmp.Integer, int(mib.OpUpgrade)),
		col(mib.IadOpState, 9, gosnmp.Integer, int(mib.OpRunning)),
		col(mib.IadOpProgress, 9, gosnmp.Gauge32, uint(40)),
		col(mib.IadOpBytes, 9, gosnmp.Gauge32, uint(4096)))
	reverted := trapVars(mib.IadBootRevertedNotify,
		gosnmp.SnmpPDU{Name: mib.IadSwActiveBank.Append(0).Dotted(), Type: gosnmp.Integer, Value: 1},
		gosnmp.SnmpPDU{Name: mib.IadSwCurrentVersion.Append(0).Dotted(), Type: gosnmp.OctetString, Value: []byte("1.0.0")},
		col(mib.IadBankVersion, 2, gosnmp.OctetString, []byte("2.0.0")),
		col(mib.IadBankState, 2, gosnmp.Integer, int(mib.BankBad)))
	for _, tc := range []struct {
		name string
		pkt  []byte
		want string // Event.String, or the error text
	}{
		{"failed", packet(t, gosnmp.SNMPv2Trap, failed...), "iadOpCompletedNotify from 127.0.0.1 op 42 upgrade failed (imageCorrupt: image: payload hash mismatch)"},
		{"progress", packet(t, gosnmp.SNMPv2Trap, progress...), "iadOpProgressNotify from 127.0.0.1 op 9 upgrade running 40%"},
		{"inform", packet(t, gosnmp.InformRequest, trapVars(mib.ColdStart)...), "coldStart from 127.0.0.1"},
		{"reverted", packet(t, gosnmp.SNMPv2Trap, reverted...), "iadBootRevertedNotify from 127.0.0.1 back to 1.0.0 on bankA; 2.0.0 failed"},
		{"committed", packet(t, gosnmp.SNMPv2Trap, trapVars(mib.IadBootCommittedNotify,
			gosnmp.SnmpPDU{Name: mib.IadSwActiveBank.Append(0).Dotted(), Type: gosnmp.Integer, Value: 2},
			gosnmp.SnmpPDU{Name: mib.IadSwCurrentVersion.Append(0).Dotted(), Type: gosnmp.OctetString, Value: []byte("2.0.0")})...),
			"iadBootCommittedNotify from 127.0.0.1 2.0.0 on bankB"},
		{"other", packet(t, gosnmp.SNMPv2Trap, trapVars(mib.MustParseOID("1.3.6.1.4.1.99.1"))...), "notification 1.3.6.1.4.1.99.1 from 127.0.0.1"},
		{"get request", packet(t, gosnmp.GetRequest, gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.Null}), "is not a v2c notification"},
		{"no trap oid", packet(t, gosnmp.SNMPv2Trap, gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uint32(1)}), "without snmpTrapOID.0"},
		{"op without row", packet(t, gosnmp.SNMPv2Trap, trapVars(mib.IadOpCompletedNotify)...), "names no operation row"},
		{"garbage", []byte("\x30\x03\x02\x01"), "undecodable"},
		{"empty", nil, "undecodable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Decode(tc.pkt, from, time.Now())
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = ev.String()
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func listen(t *testing.T) (*Listener, context.CancelFunc) {
	t.Helper()
	l, err := Listen(Options{Addr: "127.0.0.1:0", QueueLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l, cancel
}

func send(t *testing.T, src string, to netip.AddrPort, b []byte) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, s *Sub) Event {
	t.Helper()
	select {
	case ev := <-s.C():
		return ev
	case <-time.After(5 * time.Second):
		t.Fatalf("no event")
	}
	return Event{}
}

func none(t *testing.T, s *Sub) {
	t.Helper()
	select {
	case ev := <-s.C():
		t.Fatalf("unexpected event %v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestRouting: an operation's notification goes to whoever watches its
// row, whatever its source; others go by source address; taps get all.
func TestRouting(t *testing.T) {
	l, _ := listen(t)
	a := l.Subscribe(netip.MustParseAddr("127.0.0.2"))
	b := l.Subscribe(netip.MustParseAddr("127.0.0.3"))
	tap := l.Tap()
	defer a.Close()
	defer b.Close()
	defer tap.Close()
	b.Watch(77)
	done := packet(t, gosnmp.SNMPv2Trap, trapVars(mib.IadOpCompletedNotify,
		col(mib.IadOpState, 77, gosnmp.Integer, int(mib.OpSuccessful)))...)
	send(t, "127.0.0.2", l.Addr(), done) // from a's address, but b's row
	if ev := recv(t, b); ev.Index != 77 || ev.State != mib.OpSuccessful || ev.From.String() != "127.0.0.2" || !ev.Exact {
		t.Errorf("b got %+v", ev)
	}
	none(t, a)
	recv(t, tap)
	send(t, "127.0.0.2", l.Addr(), packet(t, gosnmp.SNMPv2Trap, trapVars(mib.ColdStart)...))
	if ev := recv(t, a); ev.Kind != ColdStart || !ev.Exact {
		t.Errorf("a got %+v", ev)
	}
	none(t, b)
	recv(t, tap)
	// Two devices behind one address: both get the hint, neither for sure.
	a2 := l.Subscribe(netip.MustParseAddr("127.0.0.2"))
	send(t, "127.0.0.2", l.Addr(), packet(t, gosnmp.SNMPv2Trap, trapVars(mib.ColdStart)...))
	if ev1, ev2 := recv(t, a), recv(t, a2); ev1.Exact || ev2.Exact {
		t.Errorf("shared address: exact %v %v, want hints", ev1.Exact, ev2.Exact)
	}
	a2.Close()
	recv(t, tap)
	// A full queue drops, never blocks.
	for i := 0; i < 5; i++ {
		send(t, "127.0.0.3", l.Addr(), packet(t, gosnmp.SNMPv2Trap, trapVars(mib.ColdStart)...))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rcv, drop, _ := l.Stats()
		if rcv >= 7 && drop >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats: received %d dropped %d, want 7 and >= 3", rcv, drop)
		}
		time.Sleep(10 * time.Millisecond)
	}
	send(t, "127.0.0.3", l.Addr(), []byte("junk"))
	deadline = time.Now().Add(5 * time.Second)
	for _, _, bad := l.Stats(); bad != 1; _, _, bad = l.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("junk not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Close()
	a.Close()
	send(t, "127.0.0.2", l.Addr(), done) // nobody subscribed: no panic, tap only
	recv(t, tap)
}

// TestFromNetSNMP: notifications sent by net-snmp's snmptrap decode.
func TestFromNetSNMP(t *testing.T) {
	itest.RequireTool(t, "snmptrap")
	l, _ := listen(t)
	s := l.Subscribe(from)
	defer s.Close()
	s.Watch(5)
	idx := ".5"
	_, err := itest.SNMP{}.Run(t, "snmptrap", "-v2c", "-c", "public", l.Addr().String(), "",
		mib.IadOpCompletedNotify.Dotted(),
		mib.IadOpType.Dotted()+idx, "i", strconv.Itoa(int(mib.OpBackupConfig)),
		mib.IadOpState.Dotted()+idx, "i", strconv.Itoa(int(mib.OpFailed)),
		mib.IadOpFailCause.Dotted()+idx, "i", strconv.Itoa(int(mib.FailServerUnreachable)),
		mib.IadOpFailText.Dotted()+idx, "s", "transfer: server unreachable")
	if err != nil {
		t.Fatal(err)
	}
	ev := recv(t, s)
	if ev.Kind != OpCompleted || ev.Index != 5 || ev.OpType != mib.OpBackupConfig || ev.State != mib.OpFailed ||
		ev.FailCause != mib.FailServerUnreachable || ev.FailText != "transfer: server unreachable" {
		t.Fatalf("got %+v", ev)
	}
}

// TestInformAcknowledged: net-snmp's snmpinform waits for the answer and
// fails without one.
func TestInformAcknowledged(t *testing.T) {
	itest.RequireTool(t, "snmpinform")
	l, _ := listen(t)
	s := l.Subscribe(from)
	defer s.Close()
	out, err := itest.SNMP{Timeout: 2 * time.Second, Retries: 1}.Run(t, "snmpinform", "-v2c", "-c", "public", "-t", "2", "-r", "1",
		l.Addr().String(), "", mib.ColdStart.Dotted())
	if err != nil {
		t.Fatalf("snmpinform: %v\n%s", err, out)
	}
	if ev := recv(t, s); ev.Kind != ColdStart {
		t.Errorf("got %+v", ev)
	}
}
