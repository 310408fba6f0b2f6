package agentx

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/mib"
)

var (
	oidOurs   = mib.MustParseOID("1.3.6.1.4.1.32473")
	oidLevel  = oidOurs.Append(1, 1, 1, 0) // writable Integer 0..10
	oidLabel  = oidOurs.Append(1, 1, 2, 0) // writable OctetString
	oidSystem = mib.MustParseOID("1.3.6.1.2.1.1")
	oidAfter  = mib.MustParseOID("1.3.6.1.6.3.99")
)

// testTree has our subtree with two writable scalars, and two subtrees
// around it that are never registered and must never leak.
type testTree struct {
	snmp.Tree
	mu    sync.Mutex
	level int
	label string
}

func newTestTree(t testing.TB) *testTree {
	tt := &testTree{level: 1, label: "one"}
	s := snmp.NewScalars(oidOurs.Append(1, 1), map[uint32]func(context.Context) (snmp.Value, error){
		1: func(context.Context) (snmp.Value, error) {
			tt.mu.Lock()
			defer tt.mu.Unlock()
			return snmp.Value{Type: gosnmp.Integer, V: tt.level}, nil
		},
		2: func(context.Context) (snmp.Value, error) {
			tt.mu.Lock()
			defer tt.mu.Unlock()
			return snmp.Value{Type: gosnmp.OctetString, V: tt.label}, nil
		},
	})
	s.SetWritable(1, func(_ context.Context, v snmp.Value) (func(context.Context) error, error) {
		if err := snmp.ExpectType(v, gosnmp.Integer); err != nil {
			return nil, err
		}
		n := v.V.(int)
		if n < 0 || n > 10 {
			return nil, &snmp.SetError{Status: gosnmp.WrongValue}
		}
		return func(context.Context) error { tt.mu.Lock(); tt.level = n; tt.mu.Unlock(); return nil }, nil
	})
	s.SetWritable(2, func(_ context.Context, v snmp.Value) (func(context.Context) error, error) {
		if err := snmp.ExpectType(v, gosnmp.OctetString); err != nil {
			return nil, err
		}
		b := v.V.([]byte)
		return func(context.Context) error { tt.mu.Lock(); tt.label = string(b); tt.mu.Unlock(); return nil }, nil
	})
	other := func(p mib.OID) *snmp.Scalars {
		return snmp.NewScalars(p, map[uint32]func(context.Context) (snmp.Value, error){
			1: func(context.Context) (snmp.Value, error) {
				return snmp.Value{Type: gosnmp.OctetString, V: "not yours"}, nil
			},
		})
	}
	for _, r := range []struct {
		p mib.OID
		h snmp.Handler
	}{{oidOurs.Append(1, 1), s}, {oidSystem, other(oidSystem)}, {oidAfter, other(oidAfter)}} {
		if err := tt.Register(r.p, r.h); err != nil {
			t.Fatal(err)
		}
	}
	return tt
}

func (tt *testTree) state() (int, string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.level, tt.label
}

// master is a scripted AgentX master on a Unix socket.
type master struct {
	t    *testing.T
	ln   net.Listener
	path string

	mu   sync.Mutex
	conn net.Conn
	sid  uint32
	pid  uint32
}

func newMaster(t *testing.T) *master {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agentx.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &master{t: t, ln: ln, path: path, sid: 41}
}

func readPDU(r io.Reader) (*pdu, error) {
	hdr := make([]byte, headerLen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, headerLen+int(h.payloadLen))
	copy(buf, hdr)
	if _, err := io.ReadFull(r, buf[headerLen:]); err != nil {
		return nil, err
	}
	return decodePDU(buf)
}

// accept takes the sub-agent's connection and answers its Open and
// Registers, returning the registered subtrees.
func (m *master) accept() []mib.OID {
	m.t.Helper()
	c, err := m.ln.Accept()
	if err != nil {
		m.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	m.mu.Lock()
	m.conn = c
	m.sid++
	m.mu.Unlock()
	p := m.expect(typeOpen)
	m.reply(p, 0)
	var subs []mib.OID
	for range 1 {
		p := m.expect(typeRegister)
		if p.sessionID != m.sid {
			m.t.Errorf("register in session %d, want %d", p.sessionID, m.sid)
		}
		subs = append(subs, p.registered)
		m.reply(p, 0)
	}
	return subs
}

func (m *master) expect(typ pduType) *pdu {
	m.t.Helper()
	p, err := readPDU(m.conn)
	if err != nil {
		m.t.Fatalf("master: waiting for %v: %v", typ, err)
	}
	if p.typ != typ {
		m.t.Fatalf("master: got %v, want %v", p.typ, typ)
	}
	return p
}

// reply answers a sub-agent's request.
func (m *master) reply(p *pdu, status uint16) {
	e := &encoder{}
	e.u32(0)
	e.u16(status)
	e.u16(0)
	m.conn.Write(frame(typeResponse, 0, m.sid, p.transactionID, p.packetID, e.b))
}

// ask sends a request to the sub-agent and returns its response.
func (m *master) ask(typ pduType, tid uint32, payload []byte) *pdu {
	m.t.Helper()
	m.pid++
	if _, err := m.conn.Write(frame(typ, 0, m.sid, tid, m.pid, payload)); err != nil {
		m.t.Fatal(err)
	}
	p := m.expect(typeResponse)
	if p.packetID != m.pid || p.transactionID != tid {
		m.t.Fatalf("response to packet %d/%d, want %d/%d", p.packetID, p.transactionID, m.pid, tid)
	}
	return p
}

func ranges(rs ...searchRange) []byte {
	e := &encoder{}
	for _, r := range rs {
		e.oid(r.start, r.include)
		e.oid(r.end, false)
	}
	return e.b
}

func varbinds(t *testing.T, vbs ...snmp.VarBind) []byte {
	e := &encoder{}
	for _, vb := range vbs {
		if err := e.varbind(vb); err != nil {
			t.Fatal(err)
		}
	}
	return e.b
}

func startClient(t *testing.T, m *master, tree *snmp.Tree, opts Options) *Client {
	t.Helper()
	opts.Address = "unix:" + m.path
	opts.Tree = tree
	opts.Subtrees = []mib.OID{oidOurs}
	opts.Uptime = func() uint32 { return 1234 }
	opts.Description = "test sub-agent"
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 50 * time.Millisecond
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func TestOpenRegister(t *testing.T) {
	m := newMaster(t)
	startClient(t, m, &newTestTree(t).Tree, Options{Timeout: 7 * time.Second})
	c, err := m.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	m.conn = c
	open := m.expect(typeOpen)
	if open.flags&flagNetworkByteOrder == 0 {
		t.Error("Open is not in network byte order")
	}
	if open.openTimeout != 7 || open.descr != "test sub-agent" {
		t.Errorf("Open: timeout %d descr %q, want 7 and test sub-agent", open.openTimeout, open.descr)
	}
	m.reply(open, 0)
	reg := m.expect(typeRegister)
	if !reg.registered.Equal(oidOurs) || reg.priority != 127 {
		t.Errorf("Register: subtree %v priority %d", reg.registered, reg.priority)
	}
}

func TestGetGetNextGetBulk(t *testing.T) {
	m := newMaster(t)
	startClient(t, m, &newTestTree(t).Tree, Options{})
	m.accept()
	end := oidOurs.Append(2) // the master's range ends before .2

	r := m.ask(typeGet, 0, ranges(searchRange{start: oidLevel}, searchRange{start: oidSystem.Append(1, 0)}, searchRange{start: oidOurs.Append(1, 1, 9, 0)}))
	if r.resError != 0 || len(r.varbinds) != 3 {
		t.Fatalf("Get: error %d, %d varbinds", r.resError, len(r.varbinds))
	}
	if v := r.varbinds[0]; !v.OID.Equal(oidLevel) || v.Value.V != 1 {
		t.Errorf("Get level: %v", v)
	}
	if r.varbinds[1].Value.Type != gosnmp.NoSuchObject {
		t.Errorf("Get outside the registration: %v, want noSuchObject", r.varbinds[1].Value.Type)
	}
	if r.varbinds[2].Value.Type != gosnmp.NoSuchObject {
		t.Errorf("Get of an unknown object: %v", r.varbinds[2].Value.Type)
	}

	for _, tt := range []struct {
		name string
		r    searchRange
		want mib.OID // nil: endOfMibView
	}{
		{"from the registration", searchRange{start: oidOurs, end: end}, oidLevel},
		{"include existing", searchRange{start: oidLevel, include: true, end: end}, oidLevel},
		{"exclude", searchRange{start: oidLevel, end: end}, oidLabel},
		{"past the last", searchRange{start: oidLabel, end: end}, nil},
		{"end bounds", searchRange{start: oidOurs, end: oidLabel}, oidLevel},
		{"end excludes", searchRange{start: oidLevel, end: oidLabel}, nil},
		{"unbounded stays inside", searchRange{start: oidLabel}, nil},
	} {
		r := m.ask(typeGetNext, 0, ranges(tt.r))
		if r.resError != 0 || len(r.varbinds) != 1 {
			t.Fatalf("%s: error %d, %d varbinds", tt.name, r.resError, len(r.varbinds))
		}
		vb := r.varbinds[0]
		if tt.want == nil {
			if vb.Value.Type != gosnmp.EndOfMibView || !vb.OID.Equal(tt.r.start) {
				t.Errorf("%s: got %v %v, want endOfMibView at %v", tt.name, vb.OID, vb.Value.Type, tt.r.start)
			}
		} else if !vb.OID.Equal(tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, vb.OID, tt.want)
		}
	}

	e := &encoder{}
	e.u16(1) // non-repeaters
	e.u16(5) // max-repetitions
	e.b = append(e.b, ranges(searchRange{start: oidOurs, end: end}, searchRange{start: oidOurs, end: end})...)
	r = m.ask(typeGetBulk, 0, e.b)
	var got []string
	for _, vb := range r.varbinds {
		got = append(got, fmt.Sprintf("%v:%v", vb.OID, vb.Value.Type))
	}
	want := []string{
		oidLevel.String() + ":Integer",
		oidLevel.String() + ":Integer", oidLabel.String() + ":OctetString", oidLabel.String() + ":EndOfMibView",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("GetBulk: got %v, want %v", got, want)
	}
}

func TestSetPhases(t *testing.T) {
	m := newMaster(t)
	tree := newTestTree(t)
	startClient(t, m, &tree.Tree, Options{})
	m.accept()
	level := func(n int) snmp.VarBind {
		return snmp.VarBind{OID: oidLevel, Value: snmp.Value{Type: gosnmp.Integer, V: n}}
	}
	label := snmp.VarBind{OID: oidLabel, Value: snmp.Value{Type: gosnmp.OctetString, V: []byte("two")}}

	// A TestSet that fails changes nothing and names the varbind.
	r := m.ask(typeTestSet, 1, varbinds(t, label, level(99)))
	if r.resError != uint16(gosnmp.WrongValue) || r.resIndex != 2 {
		t.Errorf("TestSet with a bad value: error %d index %d, want wrongValue at 2", r.resError, r.resIndex)
	}
	m.conn.Write(frame(typeCleanupSet, 0, m.sid, 1, 100, nil))
	if l, s := tree.state(); l != 1 || s != "one" {
		t.Fatalf("after a failed TestSet: %d %q", l, s)
	}

	// TestSet passes, then another sub-agent fails: CleanupSet, nothing
	// applied.
	if r := m.ask(typeTestSet, 2, varbinds(t, label, level(5))); r.resError != 0 {
		t.Fatalf("TestSet: error %d", r.resError)
	}
	m.conn.Write(frame(typeCleanupSet, 0, m.sid, 2, 101, nil))
	if l, s := tree.state(); l != 1 || s != "one" {
		t.Fatalf("after TestSet and CleanupSet: %d %q", l, s)
	}

	// TestSet, CommitSet: applied; an UndoSet then cannot take it back.
	if r := m.ask(typeTestSet, 3, varbinds(t, label, level(5))); r.resError != 0 {
		t.Fatalf("TestSet: error %d", r.resError)
	}
	if r := m.ask(typeCommitSet, 3, nil); r.resError != 0 {
		t.Fatalf("CommitSet: error %d", r.resError)
	}
	if l, s := tree.state(); l != 5 || s != "two" {
		t.Fatalf("after CommitSet: %d %q", l, s)
	}
	if r := m.ask(typeUndoSet, 3, nil); r.resError != uint16(gosnmp.UndoFailed) {
		t.Errorf("UndoSet after a commit: error %d, want undoFailed", r.resError)
	}
	m.conn.Write(frame(typeCleanupSet, 0, m.sid, 3, 102, nil))

	// Outside the registration nothing is writable; the next SET is not
	// blocked by the ones before.
	r = m.ask(typeTestSet, 4, varbinds(t, snmp.VarBind{OID: oidSystem.Append(1, 0), Value: snmp.Value{Type: gosnmp.OctetString, V: []byte("x")}}))
	if r.resError != uint16(gosnmp.NotWritable) || r.resIndex != 1 {
		t.Errorf("TestSet outside the registration: error %d index %d", r.resError, r.resIndex)
	}
	if r := m.ask(typeTestSet, 5, varbinds(t, level(7))); r.resError != 0 {
		t.Fatalf("TestSet after cleanups: error %d", r.resError)
	}
	// A new TestSet without cleanup of the previous one releases it.
	if r := m.ask(typeTestSet, 6, varbinds(t, level(8))); r.resError != 0 {
		t.Fatalf("TestSet replacing an abandoned one: error %d", r.resError)
	}
	m.ask(typeCommitSet, 6, nil)
	if l, _ := tree.state(); l != 8 {
		t.Errorf("level after the second transaction: %d, want 8", l)
	}
}

// The master may speak little-endian; the sub-agent must read it and
// answer in the same session.
func TestLittleEndianRequest(t *testing.T) {
	m := newMaster(t)
	startClient(t, m, &newTestTree(t).Tree, Options{})
	m.accept()
	// Build a Get by hand in little-endian order.
	payload := []byte{uint8(len(oidLevel) - 5), 4, 0, 0}
	for _, s := range oidLevel[5:] {
		payload = binary.LittleEndian.AppendUint32(payload, s)
	}
	payload = append(payload, 0, 0, 0, 0) // null end
	hdr := []byte{1, byte(typeGet), 0, 0}
	for _, v := range []uint32{m.sid, 0, 999, uint32(len(payload))} {
		hdr = binary.LittleEndian.AppendUint32(hdr, v)
	}
	m.conn.Write(append(hdr, payload...))
	r := m.expect(typeResponse)
	if r.packetID != 999 || len(r.varbinds) != 1 || r.varbinds[0].Value.V != 1 {
		t.Fatalf("little-endian Get: %+v", r)
	}
}

func TestNotifyAndReconnect(t *testing.T) {
	m := newMaster(t)
	c := startClient(t, m, &newTestTree(t).Tree, Options{PingInterval: time.Hour})
	if err := c.Notify(context.Background(), nil); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Notify before the session: %v, want ErrNotConnected", err)
	}
	m.accept()
	vbs := []gosnmp.SnmpPDU{
		{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uint32(5)},
		{Name: ".1.3.6.1.6.3.1.1.4.1.0", Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.6.3.1.1.5.1"},
		{Name: oidLabel.Dotted(), Type: gosnmp.OctetString, Value: []byte("hello")},
	}
	errc := make(chan error, 1)
	waitConnected(t, c)
	go func() { errc <- c.Notify(context.Background(), vbs) }()
	n := m.expect(typeNotify)
	if len(n.varbinds) != 3 || n.varbinds[1].Value.V.(mib.OID).String() != "1.3.6.1.6.3.1.1.5.1" || string(n.varbinds[2].Value.V.([]byte)) != "hello" {
		t.Errorf("Notify varbinds: %+v", n.varbinds)
	}
	m.reply(n, 0)
	if err := <-errc; err != nil {
		t.Errorf("Notify: %v", err)
	}

	// The master goes away; the sub-agent comes back and registers again.
	m.conn.Close()
	subs := m.accept()
	if len(subs) != 1 || !subs[0].Equal(oidOurs) {
		t.Errorf("re-registered %v", subs)
	}
	waitConnected(t, c)
	if c.Sessions() != 2 {
		t.Errorf("Sessions: %d, want 2", c.Sessions())
	}
}

func waitConnected(t *testing.T, c *Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.current() == nil {
		if time.Now().After(deadline) {
			t.Fatal("sub-agent never registered")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A master that stops answering pings is given up and reconnected.
func TestPingTimeout(t *testing.T) {
	m := newMaster(t)
	c := startClient(t, m, &newTestTree(t).Tree, Options{PingInterval: 20 * time.Millisecond, Timeout: time.Second})
	m.accept()
	m.expect(typePing) // and never answer it
	m.accept()         // the sub-agent reconnects
	waitConnected(t, c)
}

func TestParseAddress(t *testing.T) {
	for _, tt := range []struct{ in, network, addr string }{
		{"unix:/var/agentx/master", "unix", "/var/agentx/master"},
		{"/var/agentx/master", "unix", "/var/agentx/master"},
		{"tcp:127.0.0.1:705", "tcp", "127.0.0.1:705"},
		{"tcp:[::1]:705", "tcp", "[::1]:705"},
	} {
		n, a, err := ParseAddress(tt.in)
		if err != nil || n != tt.network || a != tt.addr {
			t.Errorf("ParseAddress(%q): %q %q %v", tt.in, n, a, err)
		}
	}
	for _, bad := range []string{"", "unix:", "tcp:705", "udp:127.0.0.1:705", "master"} {
		if _, _, err := ParseAddress(bad); !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q): %v, want ErrBadAddress", bad, err)
		}
	}
}
