// Package notify sends the agent's SNMP notifications (v2c traps) to every
// configured destination.
//
// Sending never blocks the caller: each destination has a small bounded
// queue drained by its own goroutine, and when a queue is full the oldest
// notification is dropped and counted. It must never delay an operation or
// the SNMP packet loop because a trap receiver is slow or absent.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/mib"
)

// ErrBadTarget reports a destination that is not HOST:PORT.
var ErrBadTarget = errors.New("notify: bad destination")

// VarBind is one variable of a notification, after sysUpTime.0 and
// snmpTrapOID.0, which the sender adds itself.
type VarBind = gosnmp.SnmpPDU

// Options configure a Sender.
type Options struct {
	Targets   []string      // HOST:PORT destinations
	Community string        // default "public"
	Uptime    func() uint32 // sysUpTime in TimeTicks; required
	Logger    *slog.Logger
	QueueLen  int           // per destination; default 64
	Timeout   time.Duration // per send; default 2s
}

// Sender delivers notifications to every destination.
type Sender struct {
	opts    Options
	log     *slog.Logger
	dests   []*dest
	dropped atomic.Uint64
	sent    atomic.Uint64
	wg      sync.WaitGroup
}

type dest struct {
	target string
	mu     sync.Mutex
	queue  []gosnmp.SnmpTrap
	wake   chan struct{}
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
	if opts.Uptime == nil {
		return nil, errors.New("notify: Options.Uptime is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{opts: opts, log: log}
	for _, t := range opts.Targets {
		host, port, err := net.SplitHostPort(t)
		if err != nil || host == "" {
			return nil, fmt.Errorf("%w: %q: want HOST:PORT", ErrBadTarget, t)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("%w: %q: bad port", ErrBadTarget, t)
		}
		s.dests = append(s.dests, &dest{target: t, wake: make(chan struct{}, 1)})
	}
	return s, nil
}

// Run delivers queued notifications until ctx is done, then flushes what
// is queued (bounded by the send timeout) so a reset does not lose the
// notifications that announced it.
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

// Dropped is the number of notifications dropped because a queue was full.
func (s *Sender) Dropped() uint64 { return s.dropped.Load() }

// Sent is the number of notifications handed to the network.
func (s *Sender) Sent() uint64 { return s.sent.Load() }

// Notify queues the notification trapOID with vars for every destination.
func (s *Sender) Notify(trapOID mib.OID, vars ...VarBind) {
	vbs := make([]gosnmp.SnmpPDU, 0, len(vars)+2)
	vbs = append(vbs,
		gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: s.opts.Uptime()},
		gosnmp.SnmpPDU{Name: mib.SnmpTrapOID.Append(0).Dotted(), Type: gosnmp.ObjectIdentifier, Value: trapOID.Dotted()},
	)
	vbs = append(vbs, vars...)
	trap := gosnmp.SnmpTrap{Variables: vbs}
	for _, d := range s.dests {
		d.mu.Lock()
		if len(d.queue) >= s.opts.QueueLen {
			d.queue = d.queue[1:]
			s.dropped.Add(1)
		}
		d.queue = append(d.queue, trap)
		d.mu.Unlock()
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

func (s *Sender) deliver(ctx context.Context, d *dest) {
	host, port, _ := net.SplitHostPort(d.target)
	p, _ := strconv.ParseUint(port, 10, 16)
	g := &gosnmp.GoSNMP{
		Target:    host,
		Port:      uint16(p),
		Community: s.opts.Community,
		Version:   gosnmp.Version2c,
		Timeout:   s.opts.Timeout,
		Retries:   0,
	}
	connected := false
	for {
		d.mu.Lock()
		var next *gosnmp.SnmpTrap
		if len(d.queue) > 0 {
			t := d.queue[0]
			d.queue = d.queue[1:]
			next = &t
		}
		d.mu.Unlock()
		if next == nil {
			select {
			case <-ctx.Done():
				return
			case <-d.wake:
				continue
			}
		}
		if !connected {
			if err := g.Connect(); err != nil {
				s.log.Warn("notification destination unusable", "dest", d.target, "err", err)
				s.dropped.Add(1)
				continue
			}
			connected = true
		}
		if _, err := g.SendTrap(*next); err != nil {
			s.log.Warn("sending notification", "dest", d.target, "err", err)
			s.dropped.Add(1)
			continue
		}
		s.sent.Add(1)
	}
}
