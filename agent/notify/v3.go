package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/agent/snmp/usm"
)

// Report varbinds an inform may get back (SNMP-USER-BASED-SM-MIB usmStats).
const (
	oidNotInTimeWindows = ".1.3.6.1.6.3.15.1.1.2.0"
	oidUnknownEngineIDs = ".1.3.6.1.6.3.15.1.1.4.0"
)

var errRediscover = errors.New("notify: receiver's engine changed")

// informPeer is what an inform originator knows of the receiver's
// authoritative engine (RFC 3414 section 4): its ID, boots and clock, and
// the user's keys localized to it.
type informPeer struct {
	engineID []byte
	boots    uint32
	time     uint32
	at       time.Time // when boots and time were learnt
	keys     *usm.Keys
}

func (p *informPeer) now() uint32 {
	return p.time + uint32(min(time.Since(p.at)/time.Second, 1<<31-1))
}

// informV3 sends one authPriv InformRequest within wait: it discovers the
// receiver's engine first if needed, and re-synchronises once on an
// authenticated notInTimeWindow report (the receiver restarted).
func (s *Sender) informV3(ctx context.Context, d *dest, conn *net.UDPConn, reqID uint32, n notification, wait time.Duration) (bool, error) {
	deadline := time.Now().Add(wait)
	var last error
	for range 3 {
		if d.peer == nil {
			if err := s.discover(ctx, d, conn, deadline); err != nil {
				return false, err
			}
		}
		acked, err := s.informOnce(ctx, d, conn, reqID, n, deadline)
		switch {
		case acked:
			return true, nil
		case errors.Is(err, errRediscover):
			s.log.Debug("inform: receiver's engine unknown again; rediscovering", "dest", d.String(), "err", err)
			d.peer = nil
		case errors.Is(err, errResync):
			s.log.Debug("inform: re-synchronised with the receiver's clock", "dest", d.String(), "boots", d.peer.boots)
		default:
			return false, err
		}
		last = err
	}
	return false, last
}

var errResync = errors.New("notify: re-synchronised with the receiver's clock")

// discover sends the RFC 3414 discovery probe and learns the receiver's
// engine ID, boots and time from its Report.
func (s *Sender) discover(ctx context.Context, d *dest, conn *net.UDPConn, deadline time.Time) error {
	pdu, err := snmp.EncodePDU(&gosnmp.SnmpPacket{PDUType: gosnmp.GetRequest, RequestID: s.nextID()})
	if err != nil {
		return err
	}
	msgID := s.nextID()
	probe, err := usm.Build(usm.Header{MsgID: msgID, Level: usm.NoAuthNoPriv, Reportable: true}, nil, nil, usm.ScopedPDU{PDU: pdu}.Append(nil))
	if err != nil {
		return err
	}
	if _, err := conn.Write(probe); err != nil {
		sleepUntil(ctx, deadline)
		return fmt.Errorf("discovery probe: %w", err)
	}
	var peer *informPeer
	err = readUntil(ctx, conn, deadline, func(b []byte) bool {
		m, err := usm.Parse(b)
		if err != nil || m.MsgID != msgID || len(m.EngineID) < 5 {
			return false
		}
		keys, err := d.Credentials.Localize(m.EngineID)
		if err != nil {
			return false
		}
		peer = &informPeer{engineID: bytes.Clone(m.EngineID), boots: m.Boots, time: m.Time, at: time.Now(), keys: keys}
		return true
	})
	if err != nil {
		return fmt.Errorf("discovering the receiver's engine: %w", err)
	}
	d.peer = peer
	s.log.Debug("inform: discovered receiver engine", "dest", d.String(), "engine_id", fmt.Sprintf("%x", peer.engineID), "boots", peer.boots)
	return nil
}

// informOnce sends the inform with what is known of the receiver and
// reads the outcome: acknowledged, errResync, errRediscover, or another
// error.
func (s *Sender) informOnce(ctx context.Context, d *dest, conn *net.UDPConn, reqID uint32, n notification, deadline time.Time) (bool, error) {
	p := d.peer
	pdu, err := snmp.EncodePDU(&gosnmp.SnmpPacket{PDUType: gosnmp.InformRequest, RequestID: reqID, Variables: n.vbs})
	if err != nil {
		return false, err
	}
	msgID := s.nextID()
	// The receiver is the authoritative engine of an inform.
	msg, err := usm.Build(usm.Header{MsgID: msgID, Level: usm.AuthPriv, Reportable: true, EngineID: p.engineID, Boots: p.boots, Time: p.now(),
		UserName: []byte(d.User)}, p.keys, s.salt, usm.ScopedPDU{ContextEngineID: p.engineID, PDU: pdu}.Append(nil))
	if err != nil {
		return false, err
	}
	if _, err := conn.Write(msg); err != nil {
		sleepUntil(ctx, deadline)
		return false, err
	}
	var outcome error
	acked := false
	err = readUntil(ctx, conn, deadline, func(b []byte) bool {
		m, err := usm.Parse(b)
		if err != nil || m.MsgID != msgID {
			return false
		}
		authentic := bytes.Equal(m.EngineID, p.engineID) && m.Verify(p.keys)
		var r *gosnmp.SnmpPacket
		if plain, err := m.Decrypt(p.keys); err == nil {
			if sc, err := usm.ParseScoped(plain); err == nil {
				r, _ = snmp.DecodePDU(sc.PDU)
			}
		}
		if r == nil {
			return false
		}
		switch {
		case r.PDUType == gosnmp.GetResponse && authentic && m.Level() == usm.AuthPriv && r.RequestID == reqID:
			acked = true
		case r.PDUType == gosnmp.Report && len(r.Variables) > 0 && r.Variables[0].Name == oidNotInTimeWindows && authentic:
			p.boots, p.time, p.at = m.Boots, m.Time, time.Now()
			outcome = errResync
		case r.PDUType == gosnmp.Report && len(r.Variables) > 0 && r.Variables[0].Name == oidUnknownEngineIDs:
			outcome = errRediscover
		case r.PDUType == gosnmp.Report && len(r.Variables) > 0:
			// Unauthenticated, so only a hint: try the whole exchange
			// again next time.
			outcome = fmt.Errorf("%w: receiver reported %s", errRediscover, r.Variables[0].Name)
		default:
			return false
		}
		return true
	})
	if acked {
		return true, nil
	}
	if outcome != nil {
		return false, outcome
	}
	return false, err
}
