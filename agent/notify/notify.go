// Package notify sends the agent's SNMP notifications to every configured
// destination: v2c traps and informs, SNMPv3 authPriv traps and informs,
// and, in AgentX sub-agent mode, Notify PDUs through the master agent.
//
// Sending never blocks the caller: each destination has a small bounded
// queue drained by its own goroutine, and when a queue is full the oldest
// notification is dropped and counted. Informs are retransmitted with
// back-off until acknowledged or out of retries (then dropped and
// counted); the notifications behind one wait, so each destination sees
// them in order. It must never delay an operation or the SNMP packet loop
// because a receiver is slow or absent, and never log a community or key.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/agent/snmp/usm"
	"github.com/iadsafe/iad-agent/mib"
)

var (
	// ErrBadTarget reports a destination that is not HOST:PORT or cannot
	// be served as configured.
	ErrBadTarget = errors.New("notify: bad destination")
	// ErrNotAcknowledged reports an inform that got no acknowledgement.
	ErrNotAcknowledged = errors.New("notify: inform not acknowledged")
)

// VarBind is one variable of a notification, after sysUpTime.0 and
// snmpTrapOID.0, which the sender adds itself.
type VarBind = gosnmp.SnmpPDU

// Version is a notification's SNMP version.
type Version int

// Versions.
const (
	V2c Version = 2
	V3  Version = 3
)

// Destination is one receiver of notifications.
type Destination struct {
	Addr      string // HOST:PORT
	Version   Version
	Inform    bool   // acknowledged, retransmitted
	Community string // v2c; default Options.Community
	// User is the SNMPv3 user. Traps are signed with its keys localized
	// to our engine (Options.Local); informs localize Credentials to the
	// receiver's engine, which they discover.
	User        string
	Credentials *usm.Credentials
	// Informs: Retries after the first send (default 8), and the first
	// wait for the acknowledgement (default 1s), doubled after every
	// retry up to Options.MaxBackoff.
	Retries int
	Timeout time.Duration
}

// String never shows the community.
func (d Destination) String() string {
	kind := "trap"
	if d.Inform {
		kind = "inform"
	}
	if d.Version == V3 {
		return fmt.Sprintf("%s v3 %s (user %s)", d.Addr, kind, d.User)
	}
	return fmt.Sprintf("%s v2c %s", d.Addr, kind)
}

// Master forwards notifications through an AgentX master agent.
type Master interface {
	// Notify sends one notification (sysUpTime.0, snmpTrapOID.0, vars)
	// and waits for the master's response; it fails while the session is
	// down.
	Notify(ctx context.Context, vbs []gosnmp.SnmpPDU) error
}

// Options configure a Sender.
type Options struct {
	// Targets are HOST:PORT destinations of v2c traps with Community (the
	// -trap flag).
	Targets      []string
	Community    string // default "public"
	Destinations []Destination
	// Master, when set, also receives every notification (AgentX).
	Master Master
	// Local is our SNMPv3 engine, required for v3 traps.
	Local  *snmp.LocalEngine
	Uptime func() uint32 // sysUpTime in TimeTicks; required
	Logger *slog.Logger
	// QueueLen bounds each destination's queue; default 64.
	QueueLen int
	// Timeout bounds one send and, when stopping, the flush of what is
	// queued; default 2s.
	Timeout time.Duration
	// MaxBackoff caps the wait between inform retransmissions and between
	// tries to reach the master; default 16s.
	MaxBackoff time.Duration
	// AuthFailureInterval is the least time between two
	// authenticationFailure notifications; default 1s.
	AuthFailureInterval time.Duration
}

// Sender delivers notifications to every destination.
type Sender struct {
	opts    Options
	log     *slog.Logger
	dests   []*dest
	dropped atomic.Uint64
	sent    atomic.Uint64
	ids     atomic.Uint32 // request-ids and msgIDs
	salt    *usm.Salt
	wg      sync.WaitGroup

	authMu   sync.Mutex
	lastAuth time.Time
}

type dest struct {
	Destination
	master bool
	mu     sync.Mutex
	queue  []notification
	wake   chan struct{}
	peer   *informPeer // v3 informs: the receiver's engine, once discovered
}

type notification struct {
	vbs []gosnmp.SnmpPDU
}

// New validates the options; call Run to start delivering.
func New(opts Options) (*Sender, error) {
	if opts.Community == "" {
		opts.Community = "public"
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 64
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 16 * time.Second
	}
	if opts.AuthFailureInterval <= 0 {
		opts.AuthFailureInterval = time.Second
	}
	if opts.Uptime == nil {
		return nil, errors.New("notify: Options.Uptime is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	salt, err := usm.NewSalt()
	if err != nil {
		return nil, err
	}
	s := &Sender{opts: opts, log: log, salt: salt}
	// Request-ids start at random, so a restarted agent's informs are not
	// taken for retransmissions of the previous run's.
	var seed [4]byte
	if _, err := rand.Read(seed[:]); err == nil {
		s.ids.Store(binary.BigEndian.Uint32(seed[:]) >> 8)
	}
	all := make([]Destination, 0, len(opts.Targets)+len(opts.Destinations))
	for _, t := range opts.Targets {
		all = append(all, Destination{Addr: t, Version: V2c})
	}
	all = append(all, opts.Destinations...)
	for _, d := range all {
		if err := s.check(&d); err != nil {
			return nil, err
		}
		s.dests = append(s.dests, &dest{Destination: d, wake: make(chan struct{}, 1)})
	}
	if opts.Master != nil {
		s.dests = append(s.dests, &dest{Destination: Destination{Addr: "agentx-master"}, master: true, wake: make(chan struct{}, 1)})
	}
	return s, nil
}

func (s *Sender) check(d *Destination) error {
	host, port, err := net.SplitHostPort(d.Addr)
	if err != nil || host == "" {
		return fmt.Errorf("%w: %q: want HOST:PORT", ErrBadTarget, d.Addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%w: %q: bad port", ErrBadTarget, d.Addr)
	}
	if d.Version == 0 {
		d.Version = V2c
	}
	if d.Community == "" {
		d.Community = s.opts.Community
	}
	if d.Retries == 0 {
		d.Retries = 8
	}
	if d.Timeout <= 0 {
		d.Timeout = time.Second
	}
	switch d.Version {
	case V2c:
	case V3:
		if d.Inform {
			if d.Credentials == nil || d.Credentials.Auth <= usm.NoAuth || d.Credentials.Priv <= usm.NoPriv {
				return fmt.Errorf("%w: %v: v3 informs need the user's authentication and privacy pass phrases", ErrBadTarget, d)
			}
			break
		}
		if s.opts.Local == nil {
			return fmt.Errorf("%w: %v: v3 traps need the local SNMPv3 engine", ErrBadTarget, d)
		}
		k, ok := s.opts.Local.UserKeys(d.User)
		if !ok || k.Level() != usm.AuthPriv {
			return fmt.Errorf("%w: %v: no authPriv user %q on the local engine", ErrBadTarget, d, d.User)
		}
	default:
		return fmt.Errorf("%w: %v: version %d", ErrBadTarget, d, d.Version)
	}
	return nil
}

// Run delivers queued notifications until ctx is done, then flushes what
// is queued (traps are sent, informs get one short try, bounded by
// Options.Timeout) so a reset does not lose the notifications that
// announced it.
func (s *Sender) Run(ctx context.Context) {
	for _, d := range s.dests {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.deliver(ctx, d)
		}()
	}
	s.wg.Wait()
}

// Dropped is the number of notifications dropped: queue overflows, sends
// that failed, informs never acknowledged.
func (s *Sender) Dropped() uint64 { return s.dropped.Load() }

// Sent is the number of notifications delivered: traps handed to the
// network, informs acknowledged, Notify PDUs the master accepted.
func (s *Sender) Sent() uint64 { return s.sent.Load() }

// Notify queues the notification trapOID with vars for every destination.
func (s *Sender) Notify(trapOID mib.OID, vars ...VarBind) {
	vbs := make([]gosnmp.SnmpPDU, 0, len(vars)+2)
	vbs = append(vbs,
		gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: s.opts.Uptime()},
		gosnmp.SnmpPDU{Name: mib.SnmpTrapOID.Append(0).Dotted(), Type: gosnmp.ObjectIdentifier, Value: trapOID.Dotted()},
	)
	vbs = append(vbs, vars...)
	for _, d := range s.dests {
		d.mu.Lock()
		if len(d.queue) >= s.opts.QueueLen {
			d.queue = d.queue[1:]
			s.dropped.Add(1)
		}
		d.queue = append(d.queue, notification{vbs: vbs})
		d.mu.Unlock()
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// AuthenticationFailure sends the standard authenticationFailure
// notification, at most once per Options.AuthFailureInterval so a flood of
// bad packets cannot push the operation notifications out of the queues.
func (s *Sender) AuthenticationFailure() {
	s.authMu.Lock()
	now := time.Now()
	if !s.lastAuth.IsZero() && now.Sub(s.lastAuth) < s.opts.AuthFailureInterval {
		s.authMu.Unlock()
		return
	}
	s.lastAuth = now
	s.authMu.Unlock()
	s.Notify(mib.AuthenticationFailure)
}

func (d *dest) pop() (notification, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.queue) == 0 {
		return notification{}, false
	}
	n := d.queue[0]
	d.queue = d.queue[1:]
	return n, true
}

func (s *Sender) deliver(ctx context.Context, d *dest) {
	var conn *net.UDPConn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	var flushDeadline time.Time
	for {
		n, ok := d.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-d.wake:
				continue
			}
		}
		// Once stopping, everything left shares one deadline.
		sendCtx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			if flushDeadline.IsZero() {
				flushDeadline = time.Now().Add(s.opts.Timeout)
			}
			if time.Now().After(flushDeadline) {
				s.dropped.Add(1)
				continue
			}
			sendCtx, cancel = context.WithDeadline(context.WithoutCancel(ctx), flushDeadline)
		}
		var err error
		switch {
		case d.master:
			err = s.toMaster(sendCtx, ctx, n)
		default:
			if conn == nil {
				conn, err = dial(d.Addr)
			}
			if err == nil {
				err = s.send(sendCtx, ctx, d, conn, n)
			}
		}
		cancel()
		if err != nil {
			s.dropped.Add(1)
			s.log.Warn("notification not delivered", "dest", d.String(), "err", err)
			continue
		}
		s.sent.Add(1)
	}
}

func dial(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTarget, err)
	}
	return net.DialUDP("udp", nil, ua)
}

// send delivers one notification to a UDP destination. run is the
// sender's life: once it is done, informs get no more retries.
func (s *Sender) send(ctx, run context.Context, d *dest, conn *net.UDPConn, n notification) error {
	if !d.Inform {
		msg, err := s.trapMessage(d, n)
		if err != nil {
			return err
		}
		_, err = conn.Write(msg)
		if errors.Is(err, syscall.ECONNREFUSED) {
			// The refusal belongs to an earlier datagram (the receiver was
			// down then); reporting it consumed it, so this one can go.
			_, err = conn.Write(msg)
		}
		return err
	}
	reqID := s.nextID()
	wait := d.Timeout
	var last error
	for try := 0; try <= d.Retries; try++ {
		if try > 0 {
			if run.Err() != nil {
				break // stopping: one try only
			}
			s.log.Debug("inform: retrying", "dest", d.String(), "try", try, "after", wait, "err", last)
		}
		var acked bool
		if d.Version == V3 {
			acked, last = s.informV3(ctx, d, conn, reqID, n, wait)
		} else {
			acked, last = s.informV2c(ctx, d, conn, reqID, n, wait)
		}
		if acked {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		wait = min(2*wait, s.opts.MaxBackoff)
	}
	if last == nil {
		last = ErrNotAcknowledged
	}
	return fmt.Errorf("%w after %d tries: %v", ErrNotAcknowledged, d.Retries+1, last)
}

func (s *Sender) nextID() uint32 { return s.ids.Add(1) & 0x7fffffff }

// trapMessage encodes an unacknowledged notification.
func (s *Sender) trapMessage(d *dest, n notification) ([]byte, error) {
	p := &gosnmp.SnmpPacket{PDUType: gosnmp.SNMPv2Trap, RequestID: s.nextID(), Variables: n.vbs}
	if d.Version == V2c {
		p.Version, p.Community = gosnmp.Version2c, d.Community
		return p.MarshalMsg()
	}
	l := s.opts.Local
	keys, ok := l.UserKeys(d.User)
	if !ok {
		return nil, fmt.Errorf("%w: user %q gone", ErrBadTarget, d.User)
	}
	pdu, err := snmp.EncodePDU(p)
	if err != nil {
		return nil, err
	}
	scoped := usm.ScopedPDU{ContextEngineID: l.EngineID(), PDU: pdu}.Append(nil)
	// A trap's authoritative engine is its sender: us.
	return usm.Build(usm.Header{MsgID: s.nextID(), Level: usm.AuthPriv, EngineID: l.EngineID(), Boots: l.Boots(), Time: l.Time(),
		UserName: []byte(d.User)}, keys, s.salt, scoped)
}

// informV2c sends one InformRequest and waits up to wait for its
// Response.
func (s *Sender) informV2c(ctx context.Context, d *dest, conn *net.UDPConn, reqID uint32, n notification, wait time.Duration) (bool, error) {
	p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: d.Community, PDUType: gosnmp.InformRequest, RequestID: reqID, Variables: n.vbs}
	msg, err := p.MarshalMsg()
	if err != nil {
		return false, err
	}
	if _, err := conn.Write(msg); err != nil {
		sleepCtx(ctx, wait)
		return false, err
	}
	var got bool
	err = readUntil(ctx, conn, time.Now().Add(wait), func(b []byte) bool {
		r, err := snmp.Decode(b)
		got = err == nil && r.PDUType == gosnmp.GetResponse && r.RequestID == reqID && r.Community == d.Community
		return got
	})
	return got, err
}

// readUntil reads datagrams until match accepts one or the deadline
// passes. A refused port (the receiver is down) waits out the deadline
// instead of spinning.
func readUntil(ctx context.Context, conn *net.UDPConn, deadline time.Time, match func([]byte) bool) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 65535)
	var refused error
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := conn.SetReadDeadline(deadline); err != nil {
			return err
		}
		nr, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if refused != nil {
					return refused
				}
				return ErrNotAcknowledged
			}
			// ECONNREFUSED from an earlier datagram's ICMP error.
			refused = err
			if !sleepUntil(ctx, deadline) {
				return ctx.Err()
			}
			return refused
		}
		if match(buf[:nr]) {
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func sleepUntil(ctx context.Context, deadline time.Time) bool {
	return sleepCtx(ctx, time.Until(deadline))
}

// toMaster hands a notification to the AgentX master, retrying with
// back-off while the session is down.
func (s *Sender) toMaster(ctx, run context.Context, n notification) error {
	wait := 100 * time.Millisecond
	for {
		err := s.opts.Master.Notify(ctx, n.vbs)
		if err == nil {
			return nil
		}
		if run.Err() != nil || ctx.Err() != nil {
			return err
		}
		s.log.Debug("notify through the agentx master: retrying", "after", wait, "err", err)
		if !sleepCtx(ctx, wait) {
			return err
		}
		wait = min(2*wait, s.opts.MaxBackoff)
	}
}
