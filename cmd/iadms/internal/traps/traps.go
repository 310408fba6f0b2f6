// Package traps receives the SNMPv2c notifications devices send to iadms
// and routes each to the procedures that care about it.
//
// Notifications are UDP and may be lost, duplicated or forged (v2c has no
// authentication), so they are hints: an operation's failure is taken as
// reported, everything else only makes the procedure poll the device at
// once. A notification is routed by what it carries first (the iadOpTable
// index of an operation row, which iadms chooses at random per run) and
// by its source address second; several devices behind one address (a NAT,
// or loopback in tests) all get the address-routed hints.
//
// The package must never block the receive loop on a slow subscriber (a
// full subscriber queue drops the event and counts it) and never act on a
// notification itself.
package traps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/mib"
)

// ErrListen reports a listening address that cannot be bound.
var ErrListen = errors.New("traps: cannot listen")

// Kind classifies a notification.
type Kind int

const (
	Other Kind = iota
	OpProgress
	OpCompleted
	ColdStart
	WarmStart
	BootCommitted
	BootReverted
)

var kindNames = map[Kind]string{
	Other: "other", OpProgress: "iadOpProgressNotify", OpCompleted: "iadOpCompletedNotify",
	ColdStart: "coldStart", WarmStart: "warmStart",
	BootCommitted: "iadBootCommittedNotify", BootReverted: "iadBootRevertedNotify",
}

func (k Kind) String() string { return kindNames[k] }

// Event is one decoded notification.
type Event struct {
	Kind     Kind
	TrapOID  mib.OID
	From     netip.Addr
	Received time.Time
	Uptime   uint32
	// Exact is set when the event surely concerns its subscriber: it
	// names a row the subscriber watches, or its source address belongs
	// to that subscriber alone. Other events are hints (several devices
	// share the address).
	Exact bool

	// Operation notifications: the row and the columns they carry.
	Index     uint32
	OpType    mib.OpType
	State     mib.OpState
	Progress  uint32
	Bytes     uint64
	FailCause mib.FailCause
	FailText  string

	// Boot notifications: the running software, and for a revert the
	// bank that failed and the version it held.
	Version       string
	Bank          mib.Bank
	FailedBank    mib.Bank
	FailedVersion string
}

func (e Event) String() string {
	s := fmt.Sprintf("%s from %s", e.Kind, e.From)
	switch e.Kind {
	case OpProgress, OpCompleted:
		s += fmt.Sprintf(" op %d %s %s", e.Index, e.OpType, e.State)
		if e.State == mib.OpFailed {
			s += fmt.Sprintf(" (%s: %s)", e.FailCause, e.FailText)
		} else if e.Kind == OpProgress {
			s += fmt.Sprintf(" %d%%", e.Progress)
		}
	case BootCommitted:
		s += fmt.Sprintf(" %s on %s", e.Version, e.Bank)
	case BootReverted:
		s += fmt.Sprintf(" back to %s on %s; %s failed", e.Version, e.Bank, e.FailedVersion)
	}
	if e.Kind == Other {
		s = fmt.Sprintf("notification %s from %s", e.TrapOID, e.From)
	}
	return s
}

// Decode turns a notification packet into an Event. Only v2c traps and
// informs are accepted.
func Decode(buf []byte, from netip.Addr, now time.Time) (Event, error) {
	ev, _, err := decode(buf, from, now)
	return ev, err
}

// decode is Decode that also returns the acknowledgement an inform needs
// (nil for a trap).
func decode(buf []byte, from netip.Addr, now time.Time) (Event, []byte, error) {
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Logger: gosnmp.NewLogger(nil)}
	p, err := g.UnmarshalTrap(buf, false)
	if err != nil {
		return Event{}, nil, fmt.Errorf("traps: undecodable packet from %s: %w", from, err)
	}
	ev, err := eventOf(p, from, now)
	if err != nil || p.PDUType != gosnmp.InformRequest {
		return ev, nil, err
	}
	// RFC 3416 4.2.7: the response to an inform echoes its variables.
	ack, err := (&gosnmp.SnmpPacket{Version: p.Version, Community: p.Community, PDUType: gosnmp.GetResponse,
		RequestID: p.RequestID, Variables: p.Variables}).MarshalMsg()
	if err != nil {
		return ev, nil, fmt.Errorf("traps: acknowledging an inform from %s: %w", from, err)
	}
	return ev, ack, nil
}

func eventOf(p *gosnmp.SnmpPacket, from netip.Addr, now time.Time) (Event, error) {
	if p.Version != gosnmp.Version2c || (p.PDUType != gosnmp.SNMPv2Trap && p.PDUType != gosnmp.InformRequest) {
		return Event{}, fmt.Errorf("traps: %v %v from %s is not a v2c notification", p.Version, p.PDUType, from)
	}
	ev := Event{From: from.Unmap(), Received: now}
	for _, v := range p.Variables {
		o, err := mib.ParseOID(v.Name)
		if err != nil {
			continue
		}
		switch {
		case o.Equal(mib.SysUpTime.Append(0)):
			n, _ := number(v)
			ev.Uptime = uint32(n)
		case o.Equal(mib.SnmpTrapOID.Append(0)):
			s, _ := v.Value.(string)
			ev.TrapOID, _ = mib.ParseOID(s)
		default:
			ev.take(o, v)
		}
	}
	if ev.TrapOID == nil {
		return Event{}, fmt.Errorf("traps: notification from %s without snmpTrapOID.0", from)
	}
	switch {
	case ev.TrapOID.Equal(mib.IadOpProgressNotify):
		ev.Kind = OpProgress
	case ev.TrapOID.Equal(mib.IadOpCompletedNotify):
		ev.Kind = OpCompleted
	case ev.TrapOID.Equal(mib.ColdStart):
		ev.Kind = ColdStart
	case ev.TrapOID.Equal(mib.WarmStart):
		ev.Kind = WarmStart
	case ev.TrapOID.Equal(mib.IadBootCommittedNotify):
		ev.Kind = BootCommitted
	case ev.TrapOID.Equal(mib.IadBootRevertedNotify):
		ev.Kind = BootReverted
	}
	if (ev.Kind == OpProgress || ev.Kind == OpCompleted) && ev.Index == 0 {
		return Event{}, fmt.Errorf("traps: %s from %s names no operation row", ev.Kind, from)
	}
	return ev, nil
}

// take records one varbind the IAD notifications carry.
func (ev *Event) take(o mib.OID, v gosnmp.SnmpPDU) {
	n, _ := number(v)
	str := func() string { b, _ := v.Value.([]byte); return string(b) }
	inCol := func(col mib.OID) (uint32, bool) {
		if len(o) == len(col)+1 && o.HasPrefix(col) {
			return o[len(o)-1], true
		}
		return 0, false
	}
	for _, c := range []mib.OID{mib.IadOpType, mib.IadOpState, mib.IadOpProgress, mib.IadOpBytes, mib.IadOpFailCause, mib.IadOpFailText} {
		idx, ok := inCol(c)
		if !ok {
			continue
		}
		ev.Index = idx
		switch {
		case c.Equal(mib.IadOpType):
			ev.OpType = mib.OpType(n)
		case c.Equal(mib.IadOpState):
			ev.State = mib.OpState(n)
		case c.Equal(mib.IadOpProgress):
			ev.Progress = uint32(n)
		case c.Equal(mib.IadOpBytes):
			ev.Bytes = uint64(n)
		case c.Equal(mib.IadOpFailCause):
			ev.FailCause = mib.FailCause(n)
		case c.Equal(mib.IadOpFailText):
			ev.FailText = str()
		}
		return
	}
	switch {
	case o.Equal(mib.IadSwCurrentVersion.Append(0)):
		ev.Version = str()
	case o.Equal(mib.IadSwActiveBank.Append(0)):
		ev.Bank = mib.Bank(n)
	}
	if b, ok := inCol(mib.IadBankVersion); ok {
		ev.FailedBank, ev.FailedVersion = mib.Bank(b), str()
	}
}

func number(v gosnmp.SnmpPDU) (int64, bool) {
	switch n := v.Value.(type) {
	case int:
		return int64(n), true
	case uint:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// Options configure a Listener.
type Options struct {
	// Addr is the UDP address to listen on, e.g. "127.0.0.1:16162" (the
	// devices' -trap destination).
	Addr   string
	Logger *slog.Logger
	// QueueLen is each subscription's buffer (default 64).
	QueueLen int
}

// Listener receives notifications and fans them out to subscriptions.
type Listener struct {
	conn *net.UDPConn
	log  *slog.Logger
	qlen int

	mu      sync.Mutex
	byAddr  map[netip.Addr]map[*Sub]struct{}
	byIndex map[uint32]*Sub
	taps    map[*Sub]struct{}

	received, dropped, bad atomic.Uint64
}

// Listen binds the address; call Serve to receive.
func Listen(opts Options) (*Listener, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 64
	}
	ua, err := net.ResolveUDPAddr("udp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrListen, opts.Addr, err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrListen, opts.Addr, err)
	}
	return &Listener{
		conn: c, log: opts.Logger, qlen: opts.QueueLen,
		byAddr: map[netip.Addr]map[*Sub]struct{}{}, byIndex: map[uint32]*Sub{}, taps: map[*Sub]struct{}{},
	}, nil
}

// Addr is the bound address.
func (l *Listener) Addr() netip.AddrPort {
	return l.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Stats are the counters since Listen: notifications decoded, events a
// full subscriber queue dropped, packets that were not notifications.
func (l *Listener) Stats() (received, dropped, bad uint64) {
	return l.received.Load(), l.dropped.Load(), l.bad.Load()
}

// Serve receives until ctx is done; it closes the socket on return.
func (l *Listener) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { l.conn.Close() })
	defer stop()
	defer l.conn.Close()
	buf := make([]byte, 65535)
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("traps: receive: %w", err)
		}
		ev, ack, err := decode(buf[:n], from.Addr(), time.Now())
		if err != nil {
			l.bad.Add(1)
			l.log.Debug("ignored packet", "from", from, "err", err)
			continue
		}
		if ack != nil {
			if _, err := l.conn.WriteToUDPAddrPort(ack, from); err != nil {
				l.log.Warn("inform not acknowledged", "from", from, "err", err)
			}
		}
		l.received.Add(1)
		l.route(ev)
	}
}

// route delivers ev to the subscription watching its row, else to every
// subscription of its source address; taps get everything.
func (l *Listener) route(ev Event) {
	l.mu.Lock()
	var to []*Sub
	if s, ok := l.byIndex[ev.Index]; ok && ev.Index != 0 {
		to = append(to, s)
	} else {
		for s := range l.byAddr[ev.From] {
			to = append(to, s)
		}
	}
	exact := len(to) == 1
	for s := range l.taps {
		to = append(to, s)
	}
	l.mu.Unlock()
	for _, s := range to {
		e := ev
		e.Exact = exact || s.tap
		select {
		case s.ch <- e:
		default:
			l.dropped.Add(1)
		}
	}
}

// Sub is one subscriber's feed.
type Sub struct {
	l       *Listener
	addr    netip.Addr
	tap     bool
	ch      chan Event
	indexes []uint32
}

// Subscribe returns a feed of the notifications from addr and of those
// naming a row the subscriber watches.
func (l *Listener) Subscribe(addr netip.Addr) *Sub {
	s := &Sub{l: l, addr: addr.Unmap(), ch: make(chan Event, l.qlen)}
	l.mu.Lock()
	m := l.byAddr[s.addr]
	if m == nil {
		m = map[*Sub]struct{}{}
		l.byAddr[s.addr] = m
	}
	m[s] = struct{}{}
	l.mu.Unlock()
	return s
}

// Tap returns a feed of every notification (for iadms watch).
func (l *Listener) Tap() *Sub {
	s := &Sub{l: l, tap: true, ch: make(chan Event, l.qlen*16)}
	l.mu.Lock()
	l.taps[s] = struct{}{}
	l.mu.Unlock()
	return s
}

// C is the feed.
func (s *Sub) C() <-chan Event { return s.ch }

// Watch routes the notifications of row idx to s, whatever their source.
func (s *Sub) Watch(idx uint32) {
	s.l.mu.Lock()
	s.l.byIndex[idx] = s
	s.indexes = append(s.indexes, idx)
	s.l.mu.Unlock()
}

// Close ends the subscription.
func (s *Sub) Close() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.tap {
		delete(s.l.taps, s)
		return
	}
	delete(s.l.byAddr[s.addr], s)
	if len(s.l.byAddr[s.addr]) == 0 {
		delete(s.l.byAddr, s.addr)
	}
	for _, idx := range s.indexes {
		if s.l.byIndex[idx] == s {
			delete(s.l.byIndex, idx)
		}
	}
}
