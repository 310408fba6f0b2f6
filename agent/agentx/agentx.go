// Package agentx makes iad-agent an AgentX sub-agent (RFC 2741) of a
// master agent such as net-snmp's snmpd: it connects over a Unix socket or
// TCP, opens a session, registers the agent's subtrees, serves Get,
// GetNext and GetBulk and the TestSet/CommitSet/UndoSet/CleanupSet
// sequence from the same snmp.Tree the UDP engine serves, sends
// notifications as Notify PDUs, pings, and reconnects with back-off when
// the master goes away.
//
// Sets map onto the tree's two phases: TestSet runs every handler's check
// (Tree.PrepareSet) and changes nothing; CommitSet applies; CleanupSet
// releases a SET that was tested but not committed, so nothing is applied
// when any TestSet of the transaction (ours or another sub-agent's) failed.
// Our handlers cannot take a commit back: an UndoSet after our CommitSet
// succeeded is answered undoFailed, which the master passes on to the
// manager as the truth (the change stays); an UndoSet after our CommitSet
// failed has nothing to undo and is answered noError.
//
// It must never answer for an OID outside the subtrees it registered,
// never return a GetNext result outside the master's search range, never
// panic on what the master sends, and never block the caller of Notify
// beyond the session timeout.
package agentx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/mib"
)

var (
	// ErrNotConnected reports that there is no open session with the
	// master right now.
	ErrNotConnected = errors.New("agentx: no session with the master")
	// ErrTimeout reports a master that did not answer within the session
	// timeout.
	ErrTimeout = errors.New("agentx: master did not answer in time")
	// ErrRefused reports a master that answered an Open, Register or
	// Notify with an error.
	ErrRefused = errors.New("agentx: refused by the master")
	// ErrBadAddress reports an address that is not unix:PATH, /PATH or
	// tcp:HOST:PORT.
	ErrBadAddress = errors.New("agentx: bad master address")
)

// Options configure a Client.
type Options struct {
	// Address of the master's AgentX socket: "unix:/path", "/path" or
	// "tcp:HOST:PORT" (net-snmp's agentXSocket syntax).
	Address string
	// Tree serves the requests; Subtrees are the prefixes registered with
	// the master (nothing outside them is ever answered).
	Tree     *snmp.Tree
	Subtrees []mib.OID
	// Uptime is sysUpTime in TimeTicks, sent in every response.
	Uptime func() uint32
	// ID and Description identify the sub-agent in the Open PDU.
	ID          mib.OID
	Description string
	// Timeout is what the Open PDU asks the master to allow us per
	// request, how long we wait for the master's answers and how long one
	// request from the master may take here; default 5s.
	Timeout time.Duration
	// PingInterval is how often an idle session is checked; default 10s.
	PingInterval time.Duration
	// Priority of the registrations (lower wins); default 127.
	Priority uint8
	// MinBackoff and MaxBackoff bound the wait between reconnections;
	// defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// Client is a sub-agent that keeps a session with the master.
type Client struct {
	opts    Options
	network string
	addr    string
	log     *slog.Logger

	mu   sync.Mutex
	sess *session // the open, registered session; nil between sessions

	sessions atomic.Uint32 // sessions opened so far, for tests and logs
	noSets   atomic.Bool
}

// RefuseSets makes every later TestSet fail with resourceUnavailable: the
// agent is shutting down and must not start anything new.
func (c *Client) RefuseSets() { c.noSets.Store(true) }

// New checks the options.
func New(opts Options) (*Client, error) {
	network, addr, err := ParseAddress(opts.Address)
	if err != nil {
		return nil, err
	}
	if opts.Tree == nil || opts.Uptime == nil || len(opts.Subtrees) == 0 {
		return nil, errors.New("agentx: Options.Tree, Uptime and Subtrees are required")
	}
	for _, s := range opts.Subtrees {
		if len(s) == 0 || len(s) > maxSubIDs {
			return nil, fmt.Errorf("agentx: bad subtree %v", s)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Timeout > 255*time.Second {
		opts.Timeout = 255 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 10 * time.Second
	}
	if opts.Priority == 0 {
		opts.Priority = 127
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if len(opts.ID) == 0 {
		opts.ID = mib.OID{0, 0}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{opts: opts, network: network, addr: addr, log: log}, nil
}

// ParseAddress splits an AgentX address into a network and an address for
// net.Dial.
func ParseAddress(a string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(a, "unix:") && len(a) > len("unix:"):
		return "unix", strings.TrimPrefix(a, "unix:"), nil
	case strings.HasPrefix(a, "/"):
		return "unix", a, nil
	case strings.HasPrefix(a, "tcp:"):
		hp := strings.TrimPrefix(a, "tcp:")
		if host, port, err := net.SplitHostPort(hp); err == nil && host != "" && port != "" {
			return "tcp", hp, nil
		}
	}
	return "", "", fmt.Errorf("%w: %q (want unix:/PATH, /PATH or tcp:HOST:PORT)", ErrBadAddress, a)
}

// Sessions is how many sessions have been opened and registered.
func (c *Client) Sessions() uint32 { return c.sessions.Load() }

// Run keeps a session with the master until ctx is done, reconnecting
// with back-off whenever it is lost. It returns nil when ctx ends.
//
// Requests from the master are served with contexts derived from serve,
// and a CommitSet gets serve itself: work a commit hands to a worker (the
// agent's operations) lives as long as serve, not as long as one request.
// serve may end before ctx, so that notifications still leave through the
// master while the agent winds down.
func (c *Client) Run(ctx, serve context.Context) error {
	backoff := c.opts.MinBackoff
	for {
		registered, err := c.runSession(ctx, serve)
		if ctx.Err() != nil {
			return nil
		}
		if registered {
			backoff = c.opts.MinBackoff
		}
		c.log.Warn("agentx: session with the master ended; reconnecting", "master", c.opts.Address, "err", err, "after", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, c.opts.MaxBackoff)
	}
}

func (c *Client) current() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

func (c *Client) setCurrent(s *session) {
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
}

// runSession connects, opens, registers and serves one session; it
// reports whether registration completed.
func (c *Client) runSession(ctx, serve context.Context) (registered bool, err error) {
	d := net.Dialer{Timeout: c.opts.Timeout}
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return false, fmt.Errorf("agentx: connect %s: %w", c.opts.Address, err)
	}
	s := newSession(c, conn)
	defer s.shutdown()
	go s.readLoop(serve)

	open := &encoder{}
	open.u8(uint8(c.opts.Timeout / time.Second))
	open.b = append(open.b, 0, 0, 0)
	open.oid(c.opts.ID, false)
	open.octets([]byte(c.opts.Description))
	resp, err := s.request(ctx, typeOpen, 0, open.b)
	if err != nil {
		return false, fmt.Errorf("agentx: open: %w", err)
	}
	if resp.resError != 0 {
		return false, fmt.Errorf("%w: open: error %d", ErrRefused, resp.resError)
	}
	s.id.Store(resp.sessionID)
	for _, sub := range c.opts.Subtrees {
		reg := &encoder{}
		reg.b = append(reg.b, 0, c.opts.Priority, 0, 0) // timeout: the session's
		reg.oid(sub, false)
		resp, err := s.request(ctx, typeRegister, 0, reg.b)
		if err != nil {
			return false, fmt.Errorf("agentx: register %s: %w", sub, err)
		}
		if resp.resError != 0 {
			return false, fmt.Errorf("%w: register %s: error %d", ErrRefused, sub, resp.resError)
		}
	}
	c.sessions.Add(1)
	c.setCurrent(s)
	defer c.setCurrent(nil)
	c.log.Info("agentx: registered", "master", c.opts.Address, "session", s.id.Load(), "subtrees", fmt.Sprint(c.opts.Subtrees))

	ping := time.NewTicker(c.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			s.close(reasonShutdown)
			return true, nil
		case <-s.done:
			return true, s.err()
		case <-ping.C:
			if resp, err := s.request(ctx, typePing, 0, nil); err != nil {
				return true, fmt.Errorf("agentx: ping: %w", err)
			} else if resp.resError != 0 {
				return true, fmt.Errorf("%w: ping: error %d", ErrRefused, resp.resError)
			}
		}
	}
}

// Notify sends a notification through the master (sysUpTime.0 and
// snmpTrapOID.0 first, as the notify package builds them) and waits for
// the master's response. It implements notify.Master.
func (c *Client) Notify(ctx context.Context, vbs []gosnmp.SnmpPDU) error {
	s := c.current()
	if s == nil {
		return ErrNotConnected
	}
	e := &encoder{}
	for _, p := range vbs {
		o, err := mib.ParseOID(p.Name)
		if err != nil {
			return fmt.Errorf("agentx: notify: %w", err)
		}
		v, err := snmp.Normalize(snmp.Value{Type: p.Type, V: p.Value})
		if err != nil {
			return fmt.Errorf("agentx: notify %s: %w", p.Name, err)
		}
		if err := e.varbind(snmp.VarBind{OID: o, Value: v}); err != nil {
			return fmt.Errorf("agentx: notify %s: %w", p.Name, err)
		}
	}
	resp, err := s.request(ctx, typeNotify, 0, e.b)
	if err != nil {
		return err
	}
	if resp.resError != 0 {
		return fmt.Errorf("%w: notify: error %d", ErrRefused, resp.resError)
	}
	return nil
}

// registered reports whether o lies in a registered subtree.
func (c *Client) registered(o mib.OID) bool {
	for _, s := range c.opts.Subtrees {
		if o.HasPrefix(s) {
			return true
		}
	}
	return false
}

// session is one connection with its AgentX session state.
type session struct {
	c      *Client
	conn   net.Conn
	id     atomic.Uint32
	packet atomic.Uint32

	wmu sync.Mutex // one PDU written at a time

	pmu     sync.Mutex
	pending map[uint32]chan *pdu

	done     chan struct{}
	doneOnce sync.Once
	errMu    sync.Mutex
	failure  error

	// tx is the SET being processed; only the read loop touches it.
	tx *transaction
}

type transaction struct {
	id        uint32
	set       *snmp.PreparedSet
	committed bool
}

func newSession(c *Client, conn net.Conn) *session {
	return &session{c: c, conn: conn, pending: map[uint32]chan *pdu{}, done: make(chan struct{})}
}

func (s *session) fail(err error) {
	s.errMu.Lock()
	if s.failure == nil {
		s.failure = err
	}
	s.errMu.Unlock()
	s.doneOnce.Do(func() { close(s.done) })
}

func (s *session) err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.failure
}

// close sends a Close PDU (best effort) and ends the session.
func (s *session) close(reason uint8) {
	if s.id.Load() != 0 {
		_ = s.write(frame(typeClose, 0, s.id.Load(), 0, s.packet.Add(1), []byte{reason, 0, 0, 0}))
	}
	s.fail(fmt.Errorf("agentx: session closed (reason %d)", reason))
}

func (s *session) shutdown() {
	s.fail(errors.New("agentx: session shut down"))
	s.conn.Close()
}

func (s *session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.c.opts.Timeout))
	_, err := s.conn.Write(b)
	return err
}

// request sends a PDU to the master and waits for its Response.
func (s *session) request(ctx context.Context, typ pduType, flags uint8, payload []byte) (*pdu, error) {
	id := s.packet.Add(1)
	ch := make(chan *pdu, 1)
	s.pmu.Lock()
	s.pending[id] = ch
	s.pmu.Unlock()
	defer func() {
		s.pmu.Lock()
		delete(s.pending, id)
		s.pmu.Unlock()
	}()
	if err := s.write(frame(typ, flags, s.id.Load(), 0, id, payload)); err != nil {
		s.fail(err)
		return nil, fmt.Errorf("agentx: send %v: %w", typ, err)
	}
	t := time.NewTimer(s.c.opts.Timeout)
	defer t.Stop()
	select {
	case resp := <-ch:
		return resp, nil
	case <-s.done:
		return nil, ErrNotConnected
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		// A master that stops answering is as good as gone.
		s.fail(fmt.Errorf("%w: %v", ErrTimeout, typ))
		return nil, fmt.Errorf("%w: %v", ErrTimeout, typ)
	}
}

// readLoop reads PDUs until the connection fails: responses go to their
// waiting requests, requests from the master are served in order.
func (s *session) readLoop(ctx context.Context) {
	defer func() {
		if tx := s.tx; tx != nil {
			tx.set.Release()
			s.tx = nil
		}
	}()
	hdr := make([]byte, headerLen)
	for {
		if _, err := io.ReadFull(s.conn, hdr); err != nil {
			s.fail(fmt.Errorf("agentx: read: %w", err))
			return
		}
		h, err := parseHeader(hdr)
		if err != nil {
			// The stream cannot be re-synchronised after a bad header.
			s.close(reasonParseError)
			s.fail(err)
			return
		}
		buf := make([]byte, headerLen+int(h.payloadLen))
		copy(buf, hdr)
		if _, err := io.ReadFull(s.conn, buf[headerLen:]); err != nil {
			s.fail(fmt.Errorf("agentx: read: %w", err))
			return
		}
		p, err := decodePDU(buf)
		if err != nil {
			s.c.log.Debug("agentx: malformed PDU from the master", "type", h.typ.String(), "err", err)
			if h.typ != typeResponse && h.typ != typeCleanupSet {
				s.respond(h, errParseError, 0, nil)
			}
			continue
		}
		if p.typ == typeResponse {
			s.pmu.Lock()
			ch := s.pending[p.packetID]
			s.pmu.Unlock()
			if ch != nil {
				ch <- p
			}
			continue
		}
		s.serve(ctx, p)
	}
}

// respond answers the master's request h.
func (s *session) respond(h header, status uint16, index uint16, vbs []snmp.VarBind) {
	e := &encoder{}
	e.u32(s.c.opts.Uptime())
	e.u16(status)
	e.u16(index)
	for _, vb := range vbs {
		mark := len(e.b)
		if err := e.varbind(vb); err != nil {
			// The tree normalizes what it returns, so this is a bug; say
			// genErr rather than send something undecodable.
			s.c.log.Warn("agentx: cannot encode varbind", "oid", vb.OID.String(), "err", err)
			e.b = e.b[:mark]
			s.respond(h, uint16(gosnmp.GenErr), 0, nil)
			return
		}
	}
	if err := s.write(frame(typeResponse, 0, h.sessionID, h.transactionID, h.packetID, e.b)); err != nil {
		s.fail(err)
	}
}
