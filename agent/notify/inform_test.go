package notify

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/agent/snmp/usm"
	"github.com/iadsafe/iad-agent/mib"
)

// run starts s and stops it at the end of the test.
func run(t *testing.T, s *Sender) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// v2cInformReceiver acknowledges the informs answer accepts (by arrival
// number) and records every one it receives.
type v2cInformReceiver struct {
	conn   net.PacketConn
	answer func(n int) bool
	mu     sync.Mutex
	got    []*gosnmp.SnmpPacket
}

func newV2cInformReceiver(t *testing.T, answer func(n int) bool) *v2cInformReceiver {
	c, _ := receiver(t)
	r := &v2cInformReceiver{conn: c, answer: answer}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			p, err := snmp.Decode(buf[:n])
			if err != nil || p.PDUType != gosnmp.InformRequest {
				continue
			}
			r.mu.Lock()
			r.got = append(r.got, p)
			k := len(r.got)
			r.mu.Unlock()
			if !r.answer(k) {
				continue
			}
			resp := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: p.Community, PDUType: gosnmp.GetResponse, RequestID: p.RequestID, Variables: p.Variables}
			b, _ := resp.MarshalMsg()
			c.WriteTo(b, from)
		}
	}()
	return r
}

func (r *v2cInformReceiver) received() []*gosnmp.SnmpPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*gosnmp.SnmpPacket(nil), r.got...)
}

func TestV2cInformRetriedUntilAcknowledged(t *testing.T) {
	// The first two copies go unanswered.
	r := newV2cInformReceiver(t, func(n int) bool { return n > 2 })
	s, err := New(Options{Uptime: func() uint32 { return 5 }, Destinations: []Destination{
		{Addr: r.conn.LocalAddr().String(), Inform: true, Community: "informs", Timeout: 50 * time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	s.Notify(mib.IadOpCompletedNotify)
	waitFor(t, "the inform to be acknowledged", func() bool { return s.Sent() == 1 })
	got := r.received()
	if len(got) != 3 {
		t.Fatalf("receiver got %d copies, want 3", len(got))
	}
	for _, p := range got {
		if p.RequestID != got[0].RequestID || p.Community != "informs" {
			t.Errorf("retransmission: request-id %d community %q, want %d and informs", p.RequestID, p.Community, got[0].RequestID)
		}
	}
	if s.Dropped() != 0 {
		t.Errorf("Dropped: %d", s.Dropped())
	}
}

func TestV2cInformGivesUp(t *testing.T) {
	r := newV2cInformReceiver(t, func(int) bool { return false })
	s, err := New(Options{Uptime: func() uint32 { return 5 }, Destinations: []Destination{
		{Addr: r.conn.LocalAddr().String(), Inform: true, Retries: 2, Timeout: 20 * time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	s.Notify(mib.IadOpCompletedNotify)
	s.Notify(mib.IadOpProgressNotify)
	waitFor(t, "both informs to be given up", func() bool { return s.Dropped() == 2 })
	if n := len(r.received()); n != 6 {
		t.Errorf("receiver got %d copies, want 2 informs x 3 tries", n)
	}
}

// A receiver that is down (port closed) and comes back: the queued
// informs arrive, in order.
func TestInformsSurviveReceiverDowntime(t *testing.T) {
	onFreshPort(t, informsSurviveReceiverDowntime)
}

func informsSurviveReceiverDowntime(t *testing.T) (taken bool) {
	c, addr := receiver(t)
	c.Close() // down: the port refuses
	s, err := New(Options{Uptime: func() uint32 { return 5 }, MaxBackoff: 100 * time.Millisecond, Destinations: []Destination{
		{Addr: addr, Inform: true, Retries: 50, Timeout: 20 * time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	for i := range 3 {
		s.Notify(mib.IadOpProgressNotify, VarBind{Name: mib.IadOpProgress.Append(1).Dotted(), Type: gosnmp.Gauge32, Value: uint32(i)})
	}
	time.Sleep(200 * time.Millisecond)
	if s.Sent() != 0 {
		t.Fatal("delivered to a closed port")
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Logf("port %s taken meanwhile: %v", addr, err)
		return true
	}
	t.Cleanup(func() { pc.Close() })
	var order []uint32
	var mu sync.Mutex
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			p, err := snmp.Decode(buf[:n])
			if err != nil {
				continue
			}
			mu.Lock()
			v := uint32(gosnmp.ToBigInt(p.Variables[2].Value).Uint64())
			if len(order) == 0 || order[len(order)-1] != v {
				order = append(order, v)
			}
			mu.Unlock()
			resp := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: p.Community, PDUType: gosnmp.GetResponse, RequestID: p.RequestID}
			b, _ := resp.MarshalMsg()
			pc.WriteTo(b, from)
		}
	}()
	waitFor(t, "the queued informs", func() bool { return s.Sent() == 3 })
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 3 || order[0] != 0 || order[1] != 1 || order[2] != 2 {
		t.Errorf("arrival order %v, want [0 1 2]", order)
	}
	return false
}

// onFreshPort runs a scenario that closes a receiver's port to play a
// receiver that is down, then listens on it again. Another process may
// take the port in between; the scenario then reports it, and runs again
// on a new port, up to five times.
func onFreshPort(t *testing.T, scenario func(*testing.T) (taken bool)) {
	t.Helper()
	for range 5 {
		if !scenario(t) {
			return
		}
	}
	t.Fatal("the closed port was taken by another process five times running")
}

// fakeV3Receiver is an authoritative engine that acknowledges v3 informs
// like snmptrapd: it answers the discovery probe, reports notInTimeWindow
// for stale boots, and acknowledges good informs.
type fakeV3Receiver struct {
	conn  net.PacketConn
	id    []byte
	boots atomic.Uint32
	keys  *usm.Keys
	salt  *usm.Salt
	acked atomic.Int32
}

func newFakeV3Receiver(t *testing.T, cred *usm.Credentials) *fakeV3Receiver {
	c, _ := receiver(t)
	r := &fakeV3Receiver{conn: c, id: []byte{0x80, 0, 0x1f, 0x88, 4, 't', 'r', 'a', 'p', 'd'}}
	r.boots.Store(3)
	var err error
	if r.keys, err = cred.Localize(r.id); err != nil {
		t.Fatal(err)
	}
	r.salt, _ = usm.NewSalt()
	go r.serve()
	return r
}

func (r *fakeV3Receiver) reply(to net.Addr, m *usm.Message, level usm.Level, keys *usm.Keys, p *gosnmp.SnmpPacket) {
	pdu, _ := snmp.EncodePDU(p)
	b, err := usm.Build(usm.Header{MsgID: m.MsgID, Level: level, EngineID: r.id, Boots: r.boots.Load(), Time: 100, UserName: m.UserName},
		keys, r.salt, usm.ScopedPDU{ContextEngineID: r.id, PDU: pdu}.Append(nil))
	if err == nil {
		r.conn.WriteTo(b, to)
	}
}

func (r *fakeV3Receiver) serve() {
	buf := make([]byte, 65535)
	for {
		n, from, err := r.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := usm.Parse(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		report := func(oid string, level usm.Level, keys *usm.Keys) {
			r.reply(from, m, level, keys, &gosnmp.SnmpPacket{PDUType: gosnmp.Report, Variables: []gosnmp.SnmpPDU{{Name: oid, Type: gosnmp.Counter32, Value: uint32(1)}}})
		}
		if !bytes.Equal(m.EngineID, r.id) {
			report(oidUnknownEngineIDs, usm.NoAuthNoPriv, nil)
			continue
		}
		if !m.Verify(r.keys) {
			continue
		}
		if m.Boots != r.boots.Load() {
			report(oidNotInTimeWindows, usm.AuthNoPriv, r.keys)
			continue
		}
		plain, err := m.Decrypt(r.keys)
		if err != nil {
			continue
		}
		sc, err := usm.ParseScoped(plain)
		if err != nil {
			continue
		}
		p, err := snmp.DecodePDU(sc.PDU)
		if err != nil || p.PDUType != gosnmp.InformRequest {
			continue
		}
		r.acked.Add(1)
		r.reply(from, m, usm.AuthPriv, r.keys, &gosnmp.SnmpPacket{PDUType: gosnmp.GetResponse, RequestID: p.RequestID, Variables: p.Variables})
	}
}

func TestV3InformDiscoversAndResynchronises(t *testing.T) {
	cred, err := usm.CredentialsFromPasswords(usm.SHA256, "inform-auth-pass", usm.AES, "inform-priv-pass")
	if err != nil {
		t.Fatal(err)
	}
	r := newFakeV3Receiver(t, cred)
	s, err := New(Options{Uptime: func() uint32 { return 5 }, Destinations: []Destination{
		{Addr: r.conn.LocalAddr().String(), Version: V3, Inform: true, User: "informer", Credentials: cred, Timeout: 500 * time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	s.Notify(mib.ColdStart)
	waitFor(t, "the first inform", func() bool { return s.Sent() == 1 })
	r.boots.Add(1) // the receiver restarted
	s.Notify(mib.IadOpCompletedNotify)
	waitFor(t, "the inform after the receiver's restart", func() bool { return s.Sent() == 2 })
	if got := r.acked.Load(); got != 2 {
		t.Errorf("receiver acknowledged %d informs, want 2", got)
	}
	if s.Dropped() != 0 {
		t.Errorf("Dropped: %d", s.Dropped())
	}
}

func TestV3TrapSignedByLocalEngine(t *testing.T) {
	cred, _ := usm.CredentialsFromPasswords(usm.SHA512, "trap-auth-pass", usm.AES256, "trap-priv-pass")
	engineID := []byte{0x80, 0, 0x7e, 0xd9, 5, 9, 9, 9, 9, 9, 9, 9, 9}
	l, err := snmp.NewLocalEngine(snmp.LocalEngineOptions{EngineID: engineID, Boots: 4, Users: []snmp.User{{Name: "trapper", Credentials: cred}}})
	if err != nil {
		t.Fatal(err)
	}
	c, addr := receiver(t)
	s, err := New(Options{Uptime: func() uint32 { return 77 }, Local: l, Destinations: []Destination{{Addr: addr, Version: V3, User: "trapper"}}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	s.Notify(mib.ColdStart)
	buf := make([]byte, 65535)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	m, err := usm.Parse(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := l.UserKeys("trapper")
	if !bytes.Equal(m.EngineID, engineID) || m.Boots != 4 || m.Level() != usm.AuthPriv || m.Reportable() || !m.Verify(keys) {
		t.Fatalf("trap header: engine %x boots %d level %v reportable %v", m.EngineID, m.Boots, m.Level(), m.Reportable())
	}
	plain, err := m.Decrypt(keys)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := usm.ParseScoped(plain)
	p, err := snmp.DecodePDU(sc.PDU)
	if err != nil || p.PDUType != gosnmp.SNMPv2Trap || p.Variables[1].Value != mib.ColdStart.Dotted() {
		t.Fatalf("trap PDU: %+v %v", p, err)
	}
}

type fakeMaster struct {
	fail atomic.Int32 // fail this many calls first
	mu   sync.Mutex
	got  [][]gosnmp.SnmpPDU
}

func (m *fakeMaster) Notify(_ context.Context, vbs []gosnmp.SnmpPDU) error {
	if m.fail.Add(-1) >= 0 {
		return errors.New("agentx: not connected")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, vbs)
	return nil
}

func TestMasterRetriedWhileDown(t *testing.T) {
	m := &fakeMaster{}
	m.fail.Store(3)
	s, err := New(Options{Uptime: func() uint32 { return 5 }, Master: m, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	s.Notify(mib.ColdStart)
	s.Notify(mib.IadBootCommittedNotify)
	waitFor(t, "both notifications through the master", func() bool { return s.Sent() == 2 })
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.got[0][1].Value != mib.ColdStart.Dotted() || m.got[1][1].Value != mib.IadBootCommittedNotify.Dotted() {
		t.Errorf("order through the master: %v, %v", m.got[0][1].Value, m.got[1][1].Value)
	}
}

func TestAuthenticationFailureRateLimited(t *testing.T) {
	c, addr := receiver(t)
	s, err := New(Options{Targets: []string{addr}, Uptime: func() uint32 { return 1 }, AuthFailureInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		s.AuthenticationFailure()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(ctx)
	p := readTrap(t, c)
	if p.Variables[1].Value != mib.AuthenticationFailure.Dotted() {
		t.Errorf("got %v, want authenticationFailure", p.Variables[1].Value)
	}
	if s.Sent() != 1 {
		t.Errorf("Sent: got %d, want 1 (rate-limited)", s.Sent())
	}
}

func TestBadDestinations(t *testing.T) {
	cred, _ := usm.CredentialsFromPasswords(usm.SHA, "auth-pass-phrase", usm.NoPriv, "")
	for name, d := range map[string]Destination{
		"v3 trap without local engine": {Addr: "127.0.0.1:162", Version: V3, User: "u"},
		"v3 inform without priv":       {Addr: "127.0.0.1:162", Version: V3, Inform: true, User: "u", Credentials: cred},
		"version 1":                    {Addr: "127.0.0.1:162", Version: 1},
		"port 0":                       {Addr: "127.0.0.1:0"},
	} {
		if _, err := New(Options{Uptime: func() uint32 { return 0 }, Destinations: []Destination{d}}); !errors.Is(err, ErrBadTarget) {
			t.Errorf("%s: got %v, want ErrBadTarget", name, err)
		}
	}
}

// A trap sent while the receiver was down leaves a refusal pending on the
// socket; the next trap, sent once it is back, must still arrive.
func TestTrapAfterReceiverReturns(t *testing.T) {
	onFreshPort(t, trapAfterReceiverReturns)
}

func trapAfterReceiverReturns(t *testing.T) (taken bool) {
	c, addr := receiver(t)
	c.Close()
	s, err := New(Options{Targets: []string{addr}, Uptime: func() uint32 { return 1 }})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	s.Notify(mib.ColdStart)
	waitFor(t, "the first trap to be handled", func() bool { return s.Sent()+s.Dropped() == 1 })
	time.Sleep(50 * time.Millisecond) // let the ICMP error arrive
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Logf("port %s taken meanwhile: %v", addr, err)
		return true
	}
	t.Cleanup(func() { pc.Close() })
	s.Notify(mib.IadBootCommittedNotify)
	p := readTrap(t, pc)
	if p.Variables[1].Value != mib.IadBootCommittedNotify.Dotted() {
		t.Errorf("got %v, want iadBootCommittedNotify", p.Variables[1].Value)
	}
	return false
}
