package agentx

import (
	"context"
	"fmt"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/mib"
)

// serve answers one request from the master. It runs on the read loop, so
// requests are handled one at a time, in order, each bounded by the
// session timeout the master applies to us.
func (s *session) serve(serve context.Context, p *pdu) {
	ctx, cancel := context.WithTimeout(serve, s.c.opts.Timeout)
	defer cancel()
	defer func() {
		// A handler panic is already turned into genErr by the tree; this
		// is for our own code facing the master's input.
		if r := recover(); r != nil {
			s.c.log.Error("agentx: recovered from panic serving the master", "type", p.typ.String(), "panic", fmt.Sprint(r))
			s.respond(p.header, errProcessingError, 0, nil)
		}
	}()
	if p.typ != typeClose && p.sessionID != s.id.Load() {
		s.respond(p.header, errNotOpen, 0, nil)
		return
	}
	if len(p.context) > 0 {
		s.respond(p.header, errUnsupportedContext, 0, nil)
		return
	}
	switch p.typ {
	case typeGet:
		s.get(ctx, p)
	case typeGetNext:
		vbs := make([]snmp.VarBind, len(p.ranges))
		for i, r := range p.ranges {
			vb, res := s.next(ctx, r)
			if res.Status != gosnmp.NoError {
				s.logFailure(p, res)
				s.respond(p.header, uint16(res.Status), uint16(i+1), nil)
				return
			}
			vbs[i] = vb
		}
		s.respond(p.header, 0, 0, vbs)
	case typeGetBulk:
		s.getBulk(ctx, p)
	case typeTestSet:
		s.testSet(ctx, p)
	case typeCommitSet:
		tx := s.tx
		if tx == nil || tx.id != p.transactionID {
			s.respond(p.header, uint16(gosnmp.CommitFailed), 0, nil)
			return
		}
		// The commit may start work that outlives this request.
		res := tx.set.Commit(serve)
		tx.committed = res.Status == gosnmp.NoError
		if !tx.committed {
			s.logFailure(p, res)
		}
		s.respond(p.header, uint16(res.Status), 0, nil)
	case typeUndoSet:
		tx := s.tx
		if tx != nil && tx.id == p.transactionID && tx.committed {
			// See the package doc: a commit cannot be taken back.
			s.c.log.Warn("agentx: UndoSet after a successful commit: the change stays", "transaction", p.transactionID)
			s.respond(p.header, uint16(gosnmp.UndoFailed), 0, nil)
			return
		}
		s.respond(p.header, 0, 0, nil)
	case typeCleanupSet:
		// No response to a CleanupSet (RFC 2741 section 7.2.4.4).
		if tx := s.tx; tx != nil {
			tx.set.Release()
			s.tx = nil
		}
	case typeClose:
		s.c.log.Info("agentx: the master closed the session", "reason", p.reason)
		s.fail(fmt.Errorf("agentx: closed by the master (reason %d)", p.reason))
	default:
		s.respond(p.header, errParseError, 0, nil)
	}
}

func (s *session) logFailure(p *pdu, res snmp.Result) {
	if res.Err != nil {
		s.c.log.Debug("agentx: request failed", "type", p.typ.String(), "status", res.Status.String(), "index", res.Index, "err", res.Err)
	}
}

func (s *session) get(ctx context.Context, p *pdu) {
	oids := make([]mib.OID, len(p.ranges))
	for i, r := range p.ranges {
		oids[i] = r.start
	}
	res := s.c.opts.Tree.Get(ctx, oids)
	if res.Status != gosnmp.NoError {
		s.logFailure(p, res)
		s.respond(p.header, uint16(res.Status), uint16(res.Index), nil)
		return
	}
	for i, o := range oids {
		if !s.c.registered(o) {
			res.VarBinds[i] = snmp.VarBind{OID: o, Value: snmp.Value{Type: gosnmp.NoSuchObject}}
		}
	}
	s.respond(p.header, 0, 0, res.VarBinds)
}

// next is RFC 2741 section 7.2.3.2 for one search range: the first
// instance at or after start (include) or after it, below end, in a
// registered subtree; else endOfMibView named start.
func (s *session) next(ctx context.Context, r searchRange) (snmp.VarBind, snmp.Result) {
	t := s.c.opts.Tree
	inRange := func(o mib.OID) bool {
		return s.c.registered(o) && (len(r.end) == 0 || o.Compare(r.end) < 0)
	}
	end := snmp.VarBind{OID: r.start, Value: snmp.Value{Type: gosnmp.EndOfMibView}}
	if r.include && inRange(r.start) {
		res := t.Get(ctx, []mib.OID{r.start})
		if res.Status != gosnmp.NoError {
			return snmp.VarBind{}, res
		}
		if vb := res.VarBinds[0]; !isException(vb.Value) {
			return vb, snmp.Result{}
		}
	}
	res := t.GetNext(ctx, []mib.OID{r.start})
	if res.Status != gosnmp.NoError {
		return snmp.VarBind{}, res
	}
	vb := res.VarBinds[0]
	if isException(vb.Value) || !inRange(vb.OID) {
		return end, snmp.Result{}
	}
	return vb, snmp.Result{}
}

func isException(v snmp.Value) bool {
	switch v.Type {
	case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView:
		return true
	}
	return false
}

// getBulk is RFC 2741 section 7.2.3.3: the non-repeaters once, then the
// repeaters max-repetitions times, each from where it got to, within its
// range.
func (s *session) getBulk(ctx context.Context, p *pdu) {
	n := int(p.nonRepeaters)
	reps := min(int(p.maxRepetition), snmp.MaxRepetitions)
	var out []snmp.VarBind
	for i := 0; i < n; i++ {
		vb, res := s.next(ctx, p.ranges[i])
		if res.Status != gosnmp.NoError {
			s.respond(p.header, uint16(res.Status), uint16(i+1), nil)
			return
		}
		out = append(out, vb)
	}
	rs := append([]searchRange(nil), p.ranges[n:]...)
	ended := make([]bool, len(rs))
	for rep := 0; rep < reps && len(rs) > 0; rep++ {
		all := true
		for j := range rs {
			if ended[j] {
				out = append(out, snmp.VarBind{OID: rs[j].start, Value: snmp.Value{Type: gosnmp.EndOfMibView}})
				continue
			}
			vb, res := s.next(ctx, rs[j])
			if res.Status != gosnmp.NoError {
				s.respond(p.header, uint16(res.Status), uint16(n+j+1), nil)
				return
			}
			if vb.Value.Type == gosnmp.EndOfMibView {
				ended[j] = true
			} else {
				all = false
				rs[j].start, rs[j].include = vb.OID, false
			}
			out = append(out, vb)
		}
		if all {
			break
		}
	}
	s.respond(p.header, 0, 0, out)
}

// testSet is phase 1: the tree checks every varbind and holds the SET
// until CommitSet or CleanupSet.
func (s *session) testSet(ctx context.Context, p *pdu) {
	if tx := s.tx; tx != nil {
		// The master moved on without cleaning up; never keep a SET
		// half-open.
		tx.set.Release()
		s.tx = nil
	}
	if s.c.noSets.Load() {
		s.respond(p.header, uint16(gosnmp.ResourceUnavailable), 1, nil)
		return
	}
	for i, vb := range p.varbinds {
		if !s.c.registered(vb.OID) {
			s.respond(p.header, uint16(gosnmp.NotWritable), uint16(i+1), nil)
			return
		}
	}
	set, res := s.c.opts.Tree.PrepareSet(ctx, p.varbinds)
	if set == nil {
		s.logFailure(p, res)
		s.respond(p.header, uint16(res.Status), uint16(res.Index), nil)
		return
	}
	s.tx = &transaction{id: p.transactionID, set: set}
	s.respond(p.header, 0, 0, nil)
}
