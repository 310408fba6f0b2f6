package snmp

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp/usm"
	"github.com/iadsafe/iad-agent/mib"
)

// handleV3 is the SNMPv3 front end: RFC 3412 message processing and RFC
// 3414 USM in the order section 3.2 gives, then the same dispatch as v2c.
// Nothing of a message is used before its HMAC has been checked with the
// named user's key, except what a Report needs.
func (e *Engine) handleV3(ctx context.Context, pkt []byte) ([]byte, bool) {
	l := e.local
	m, err := usm.Parse(pkt)
	switch {
	case errors.Is(err, usm.ErrSecurityModel):
		return e.drop(&l.stats.unknownSecurityModels, "unknown security model", "err", err)
	case errors.Is(err, usm.ErrInvalidFlags):
		return e.drop(&l.stats.invalidMsgs, "invalid msgFlags", "err", err)
	case err != nil:
		return e.drop(&e.stats.inASNParseErrs, "malformed snmpv3 message", "err", err)
	}
	if !bytes.Equal(m.EngineID, l.id) {
		// Also the discovery probe of RFC 3414 section 4: its Report
		// carries our engine ID, boots and time.
		return e.report(m, nil, usm.NoAuthNoPriv, oidUsmStatsDisc, &l.stats.unknownEngineIDs, "unknown engine ID")
	}
	u := l.users[string(m.UserName)]
	if u == nil {
		return e.report(m, nil, usm.NoAuthNoPriv, oidUsmStats.Append(3, 0), &l.stats.unknownUserNames, "unknown user")
	}
	level := m.Level()
	if level > u.keys.Level() || level < u.minLevel {
		return e.report(m, nil, usm.NoAuthNoPriv, oidUsmStats.Append(1, 0), &l.stats.unsupportedSecLevels, "unsupported security level",
			"level", level.String(), "user_min", u.minLevel.String())
	}
	var authKeys *usm.Keys
	if level >= usm.AuthNoPriv {
		if !m.Verify(u.keys) {
			e.authFailure()
			return e.report(m, nil, usm.NoAuthNoPriv, oidUsmStats.Append(5, 0), &l.stats.wrongDigests, "wrong digest")
		}
		authKeys = u.keys
		if !l.inTimeWindow(m.Boots, m.Time) {
			// Authenticated, so the manager may trust the boots and time
			// it carries and re-synchronise (RFC 3414 section 3.2 7b).
			return e.report(m, authKeys, usm.AuthNoPriv, oidUsmStats.Append(2, 0), &l.stats.notInTimeWindows, "not in time window",
				"boots", m.Boots, "time", m.Time)
		}
	}
	// Reports after authentication are authenticated too.
	reportLevel := min(level, usm.AuthNoPriv)
	plain, err := m.Decrypt(u.keys)
	if err != nil {
		return e.report(m, authKeys, reportLevel, oidUsmStats.Append(6, 0), &l.stats.decryptionErrors, "decryption error", "err", err)
	}
	scoped, err := usm.ParseScoped(plain)
	if err != nil {
		return e.drop(&e.stats.inASNParseErrs, "malformed scoped PDU", "err", err)
	}
	req, err := DecodePDU(scoped.PDU)
	if err != nil {
		return e.drop(&e.stats.inASNParseErrs, "malformed snmpv3 PDU", "err", err)
	}
	switch req.PDUType {
	case gosnmp.GetRequest, gosnmp.GetNextRequest, gosnmp.GetBulkRequest, gosnmp.SetRequest:
	default:
		// Responses, reports, traps and informs are not for an agent.
		return e.drop(&l.stats.unknownPDUHandlers, "not a request", "pdu", req.PDUType.String())
	}
	if len(scoped.ContextEngineID) > 0 && !bytes.Equal(scoped.ContextEngineID, l.id) {
		return e.reportFor(m, req.RequestID, authKeys, reportLevel, mib.MustParseOID("1.3.6.1.6.3.11.2.1.3.0"), &l.stats.unknownPDUHandlers, "unknown context engine ID")
	}
	if len(scoped.ContextName) > 0 {
		// Only the default context exists.
		return e.reportFor(m, req.RequestID, authKeys, reportLevel, oidTargetObjs.Append(5, 0), &l.stats.unknownContexts, "unknown context")
	}

	vbs := make([]VarBind, len(req.Variables))
	for i, p := range req.Variables {
		if vbs[i], err = fromPDU(p); err != nil {
			return e.drop(&e.stats.inASNParseErrs, "bad varbind", "err", err)
		}
	}
	limit := min(e.maxSize, int(min(m.MaxSize, maxUDPPayload)))
	var res Result
	switch {
	case req.PDUType == gosnmp.SetRequest && !u.write:
		// The user's view has nothing writable, as net-snmp says for a
		// read-only user.
		res = Result{Status: gosnmp.NoAccess, Index: 1, Err: errors.New("set by a read-only user")}
	case req.PDUType == gosnmp.SetRequest && level < u.writeLevel:
		res = Result{Status: gosnmp.AuthorizationError, Err: errors.New("set below the user's write security level")}
	default:
		res = e.dispatch(ctx, req, vbs, limit)
	}
	e.logResult(ctx, req, res)
	return e.encode(req, vbs, res, limit, func(p *gosnmp.SnmpPacket) ([]byte, error) {
		pdu, err := EncodePDU(p)
		if err != nil {
			return nil, err
		}
		out := usm.ScopedPDU{ContextEngineID: l.id, ContextName: scoped.ContextName, PDU: pdu}.Append(nil)
		return usm.Build(usm.Header{MsgID: m.MsgID, MaxSize: uint32(e.maxRequest), Level: level,
			EngineID: l.id, Boots: l.boots, Time: l.Time(), UserName: m.UserName}, u.keys, l.salt, out)
	})
}

// report counts an RFC 3414 error and, if the message is reportable,
// answers with a Report carrying the counter. The request-id is taken from
// a plaintext scoped PDU when there is one (managers match v3 Reports by
// msgID anyway).
func (e *Engine) report(m *usm.Message, keys *usm.Keys, level usm.Level, oid mib.OID, c *atomic.Uint32, reason string, args ...any) ([]byte, bool) {
	reqID := uint32(0)
	if !m.Encrypted {
		if s, err := usm.ParseScoped(m.Data); err == nil {
			if p, err := DecodePDU(s.PDU); err == nil {
				if !isRequest(p.PDUType) {
					// Never answer a response, report or trap (RFC 3412
					// section 7.2 step 12).
					c.Add(1)
					return nil, false
				}
				reqID = p.RequestID
			}
		}
	}
	return e.reportFor(m, reqID, keys, level, oid, c, reason, args...)
}

func isRequest(t gosnmp.PDUType) bool {
	switch t {
	case gosnmp.GetRequest, gosnmp.GetNextRequest, gosnmp.GetBulkRequest, gosnmp.SetRequest, gosnmp.InformRequest:
		return true
	}
	return false
}

func (e *Engine) reportFor(m *usm.Message, reqID uint32, keys *usm.Keys, level usm.Level, oid mib.OID, c *atomic.Uint32, reason string, args ...any) ([]byte, bool) {
	n := c.Add(1)
	e.log.Debug("snmp: snmpv3 report", append([]any{"reason", reason, "user", string(m.UserName), "reportable", m.Reportable()}, args...)...)
	if !m.Reportable() {
		return nil, false
	}
	l := e.local
	pdu, err := EncodePDU(&gosnmp.SnmpPacket{PDUType: gosnmp.Report, RequestID: reqID,
		Variables: []gosnmp.SnmpPDU{{Name: oid.Dotted(), Type: gosnmp.Counter32, Value: n}}})
	if err != nil {
		e.log.Warn("snmp: cannot encode report", "err", err)
		return nil, false
	}
	scoped := usm.ScopedPDU{ContextEngineID: l.id, PDU: pdu}.Append(nil)
	msg, err := usm.Build(usm.Header{MsgID: m.MsgID, MaxSize: uint32(e.maxRequest), Level: level,
		EngineID: l.id, Boots: l.boots, Time: l.Time(), UserName: m.UserName}, keys, l.salt, scoped)
	if err != nil {
		e.log.Warn("snmp: cannot build report", "err", err)
		return nil, false
	}
	return msg, true
}
