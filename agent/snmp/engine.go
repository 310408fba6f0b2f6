package snmp

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp/usm"
	"github.com/iadsafe/iad-agent/mib"
)

const (
	// DefaultMaxMessageSize keeps responses inside one Ethernet frame
	// (1500 - IPv4 - UDP headers), so nothing depends on fragmentation.
	DefaultMaxMessageSize = 1472
	// minMaxMessageSize is the size every SNMP entity must accept
	// (RFC 3417 section 3.2).
	minMaxMessageSize = 484
	maxUDPPayload     = 65507
	// DefaultMaxRequestSize bounds an incoming message; anything longer is
	// dropped unread and counted in snmpInASNParseErrs.
	DefaultMaxRequestSize = 8192
)

// Community is an SNMPv1/v2c community with its access.
type Community struct {
	Name  string
	Write bool // read-write; otherwise read-only
}

// String never shows the community, which is a password.
func (c Community) String() string {
	if c.Write {
		return "community (read-write)"
	}
	return "community (read-only)"
}

// Options configure an Engine. The zero value is valid but answers nobody:
// an empty community never matches.
type Options struct {
	// ReadCommunity is accepted for Get, GetNext and GetBulk.
	ReadCommunity string
	// WriteCommunity is accepted for everything, Set included. Empty
	// disables Set.
	WriteCommunity string
	// Communities are further v1/v2c communities, with their access.
	Communities []Community
	// Local is the SNMPv3 engine (identity, clock, users). Nil answers no
	// SNMPv3: such messages count as bad versions.
	Local *LocalEngine
	// AuthenTraps is snmpEnableAuthenTraps. When true, OnAuthFailure is
	// called for every message with an unknown community and every SNMPv3
	// message that fails authentication; it must not block.
	AuthenTraps   bool
	OnAuthFailure func()
	// System is served as the MIB-II system group.
	System SystemInfo
	// Start is the moment sysUpTime counts from; zero means New's time.
	Start time.Time
	// MaxMessageSize bounds a response in bytes; default
	// DefaultMaxMessageSize, clamped to [484, 65507]. An SNMPv3 manager's
	// smaller msgMaxSize lowers it further.
	MaxMessageSize int
	// MaxRequestSize bounds a request in bytes; default
	// DefaultMaxRequestSize, clamped to [484, 65507].
	MaxRequestSize int
	// Logger receives per-packet diagnostics at debug level and handler
	// failures at warn; nil discards.
	Logger *slog.Logger
}

// Engine is an SNMPv1/v2c/v3 agent over a Tree. It serves the system and
// snmp groups of SNMPv2-MIB itself, and with a LocalEngine the snmpEngine,
// snmpMPDStats and usmStats groups; everything else comes from Register.
type Engine struct {
	tree        Tree
	communities []community
	local       *LocalEngine
	authTraps   bool
	onAuthFail  func()
	start       time.Time
	maxSize     int
	maxRequest  int
	log         *slog.Logger
	stats       counters
}

type community struct {
	name  []byte
	write bool
}

// New builds an engine from opts with the built-in groups registered.
func New(opts Options) *Engine {
	e := &Engine{
		local:      opts.Local,
		authTraps:  opts.AuthenTraps,
		onAuthFail: opts.OnAuthFailure,
		start:      opts.Start,
		maxSize:    opts.MaxMessageSize,
		maxRequest: opts.MaxRequestSize,
		log:        opts.Logger,
	}
	comms := opts.Communities
	if opts.ReadCommunity != "" {
		comms = append([]Community{{Name: opts.ReadCommunity}}, comms...)
	}
	if opts.WriteCommunity != "" {
		comms = append([]Community{{Name: opts.WriteCommunity, Write: true}}, comms...)
	}
	for _, c := range comms {
		// An empty community never matches: it would let anyone in.
		if c.Name != "" {
			e.communities = append(e.communities, community{name: []byte(c.Name), write: c.Write})
		}
	}
	if e.start.IsZero() {
		e.start = time.Now()
	}
	if e.maxSize == 0 {
		e.maxSize = DefaultMaxMessageSize
	}
	e.maxSize = min(max(e.maxSize, minMaxMessageSize), maxUDPPayload)
	if e.maxRequest == 0 {
		e.maxRequest = DefaultMaxRequestSize
	}
	e.maxRequest = min(max(e.maxRequest, minMaxMessageSize), maxUDPPayload)
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	// The tree is empty and the two prefixes are disjoint, so these
	// cannot fail.
	_ = e.tree.Register(oidSystem, e.systemGroup(opts.System))
	_ = e.tree.Register(oidSNMP, e.snmpGroup())
	if e.local != nil {
		// Disjoint from the two above and from each other.
		_ = e.registerV3()
	}
	return e
}

// Register adds a handler for the subtree under prefix; see Tree.Register.
// 1.3.6.1.2.1.1 (system) and 1.3.6.1.2.1.11 (snmp) are taken.
func (e *Engine) Register(prefix mib.OID, h Handler) error {
	return e.tree.Register(prefix, h)
}

// Tree returns the dispatch core, for other transports (AgentX, SNMPv3)
// that serve the same handlers.
func (e *Engine) Tree() *Tree { return &e.tree }

// Uptime returns sysUpTime: hundredths of a second since Options.Start,
// wrapping at 2^32 like TimeTicks. Notifications use it so their
// sysUpTime.0 matches what a GET returns.
func (e *Engine) Uptime() uint32 {
	return uint32(time.Since(e.start) / (10 * time.Millisecond)) //nolint:gosec // TimeTicks wrap by definition
}

// Serve answers requests arriving on conn until ctx is done, then returns
// nil. Requests are handled one at a time on this goroutine, which is why
// handlers must not block. Serve does not close conn (the caller opened
// it); it unblocks its read by setting a read deadline when ctx ends. A
// read error other than that is returned.
func (e *Engine) Serve(ctx context.Context, conn net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 65535)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return fmt.Errorf("snmp: read: %w", err)
		}
		resp, ok := e.HandlePacket(ctx, buf[:n])
		if !ok {
			continue
		}
		if _, err := conn.WriteTo(resp, addr); err != nil {
			e.log.Debug("snmp: send response", "peer", addr.String(), "err", err)
		}
	}
}

// HandlePacket processes one request message and returns the encoded
// response, or ok=false when the message is to be dropped (malformed, bad
// version or community, not a request, or a response that cannot fit). It
// does not keep pkt. It never panics: a last-resort recover drops the packet
// and counts it in Stats().Panics.
func (e *Engine) HandlePacket(ctx context.Context, pkt []byte) (resp []byte, ok bool) {
	e.stats.inPkts.Add(1)
	defer func() {
		if r := recover(); r != nil {
			e.stats.panics.Add(1)
			e.log.Error("snmp: recovered from panic handling packet", "panic", fmt.Sprint(r))
			resp, ok = nil, false
		}
	}()

	if len(pkt) > e.maxRequest {
		return e.drop(&e.stats.inASNParseErrs, "message too long", "size", len(pkt), "max", e.maxRequest)
	}
	version, good := peekVersion(pkt)
	switch {
	case !good:
		return e.drop(&e.stats.inASNParseErrs, "unparsable header")
	case version == usm.Version3 && e.local != nil:
		return e.handleV3(ctx, pkt)
	case version != int(gosnmp.Version1) && version != int(gosnmp.Version2c):
		return e.drop(&e.stats.inBadVersions, "unsupported version", "version", version)
	}
	req, err := decode(pkt)
	if err != nil {
		return e.drop(&e.stats.inASNParseErrs, "malformed message", "err", err)
	}

	readOK, writeOK := e.community(req.Community)
	if !readOK {
		// Never log the community itself: it is a password.
		e.authFailure()
		return e.drop(&e.stats.inBadCommunityNames, "unknown community")
	}

	switch req.PDUType {
	case gosnmp.GetRequest, gosnmp.GetNextRequest, gosnmp.SetRequest:
	case gosnmp.GetBulkRequest:
		if req.Version == gosnmp.Version1 {
			return e.drop(&e.stats.inASNParseErrs, "getbulk in snmpv1")
		}
	default:
		// Responses, traps, informs and reports are not for an agent.
		e.log.Debug("snmp: dropped packet", "reason", "not a request", "pdu", req.PDUType.String())
		return nil, false
	}
	if req.PDUType == gosnmp.SetRequest && !writeOK {
		return e.drop(&e.stats.inBadCommunityUses, "set with read-only community")
	}

	vbs := make([]VarBind, len(req.Variables))
	for i, p := range req.Variables {
		if vbs[i], err = fromPDU(p); err != nil {
			return e.drop(&e.stats.inASNParseErrs, "bad varbind", "err", err)
		}
	}

	res := e.dispatch(ctx, req, vbs, e.maxSize)
	e.logResult(ctx, req, res)
	return e.encode(req, vbs, res, e.maxSize, func(p *gosnmp.SnmpPacket) ([]byte, error) { return p.MarshalMsg() })
}

// community checks c against every configured community without an early
// exit, so the time taken says nothing about which one nearly matched.
func (e *Engine) community(c string) (read, write bool) {
	for _, k := range e.communities {
		if subtle.ConstantTimeCompare([]byte(c), k.name) == 1 {
			read = true
			write = write || k.write
		}
	}
	return read, write
}

// authFailure reports an authentication failure when
// snmpEnableAuthenTraps is on.
func (e *Engine) authFailure() {
	if e.authTraps && e.onAuthFail != nil {
		e.onAuthFail()
	}
}

func (e *Engine) logResult(ctx context.Context, req *gosnmp.SnmpPacket, res Result) {
	if res.Err == nil {
		return
	}
	level := slog.LevelDebug
	if errors.Is(res.Err, ErrBadHandler) || res.Status == gosnmp.GenErr || res.Status == gosnmp.CommitFailed || res.Status == gosnmp.UndoFailed {
		level = slog.LevelWarn
	}
	e.log.Log(ctx, level, "snmp: request failed", "pdu", req.PDUType.String(), "status", res.Status.String(), "index", res.Index, "err", res.Err)
}

func (e *Engine) drop(c interface{ Add(uint32) uint32 }, reason string, args ...any) ([]byte, bool) {
	c.Add(1)
	e.log.Debug("snmp: dropped packet", append([]any{"reason", reason}, args...)...)
	return nil, false
}

// dispatch runs one request PDU on the tree; limit is the response size
// the transport allows.
func (e *Engine) dispatch(ctx context.Context, req *gosnmp.SnmpPacket, vbs []VarBind, limit int) Result {
	oids := make([]mib.OID, len(vbs))
	for i, vb := range vbs {
		oids[i] = vb.OID
	}
	v1 := req.Version == gosnmp.Version1
	var res Result
	switch req.PDUType {
	case gosnmp.GetRequest:
		res = e.tree.Get(ctx, oids)
	case gosnmp.GetNextRequest:
		res = e.tree.getNext(ctx, oids, v1)
	case gosnmp.GetBulkRequest:
		// Even the smallest varbind takes several bytes, so more than this
		// many could never fit.
		maxVarBinds := limit / 8
		res = e.tree.GetBulk(ctx, oids, int(req.NonRepeaters), int(min(req.MaxRepetitions, MaxRepetitions)), maxVarBinds)
	case gosnmp.SetRequest:
		res = e.tree.Set(ctx, vbs)
	}
	if v1 {
		res = toV1(req.PDUType, res)
	}
	return res
}

// toV1 maps a v2 result onto SNMPv1 (RFC 3584 section 4.4): exceptions and
// Counter64 become noSuchName, v2-only statuses their v1 counterparts.
func toV1(pdu gosnmp.PDUType, res Result) Result {
	if res.Status != gosnmp.NoError {
		res.Status = v1Status(res.Status)
		return res
	}
	for i, vb := range res.VarBinds {
		if isException(vb.Value) || (pdu == gosnmp.GetRequest && vb.Value.Type == gosnmp.Counter64) {
			return Result{Status: gosnmp.NoSuchName, Index: i + 1}
		}
	}
	return res
}

func v1Status(s gosnmp.SNMPError) gosnmp.SNMPError {
	switch s {
	case gosnmp.NoError, gosnmp.TooBig, gosnmp.NoSuchName, gosnmp.BadValue, gosnmp.ReadOnly, gosnmp.GenErr:
		return s
	case gosnmp.WrongValue, gosnmp.WrongEncoding, gosnmp.WrongType, gosnmp.WrongLength, gosnmp.InconsistentValue:
		return gosnmp.BadValue
	case gosnmp.NoAccess, gosnmp.NotWritable, gosnmp.NoCreation, gosnmp.InconsistentName, gosnmp.AuthorizationError:
		return gosnmp.NoSuchName
	}
	return gosnmp.GenErr
}

// encode builds the response message with build (which wraps the PDU for
// its version), applying RFC 3416's size rules against limit: GetBulk drops
// trailing varbinds, anything else becomes tooBig with no varbinds, and a
// tooBig that still does not fit is dropped.
func (e *Engine) encode(req *gosnmp.SnmpPacket, reqVBs []VarBind, res Result, limit int, build func(*gosnmp.SnmpPacket) ([]byte, error)) ([]byte, bool) {
	marshal := func(p *gosnmp.SnmpPacket, vbs []VarBind) ([]byte, error) {
		p.Variables = make([]gosnmp.SnmpPDU, len(vbs))
		for i, vb := range vbs {
			p.Variables[i] = toPDU(vb)
		}
		return build(p)
	}
	out := &gosnmp.SnmpPacket{
		Version:   req.Version,
		Community: req.Community,
		PDUType:   gosnmp.GetResponse,
		RequestID: req.RequestID,
		Error:     res.Status,
	}
	// ErrorIndex is one byte in gosnmp; a position it cannot express is
	// reported as 0 rather than as a wrong varbind.
	if res.Index > 0 && res.Index <= 255 {
		out.ErrorIndex = uint8(res.Index)
	}
	vbs := res.VarBinds
	if res.Status != gosnmp.NoError || req.PDUType == gosnmp.SetRequest {
		vbs = echo(reqVBs)
	}
	msg, err := marshal(out, vbs)
	if err != nil {
		e.log.Warn("snmp: cannot encode response", "err", err)
		return nil, false
	}
	if len(msg) <= limit {
		return msg, true
	}
	if req.PDUType == gosnmp.GetBulkRequest && res.Status == gosnmp.NoError {
		// Largest prefix that fits; 0 varbinds always does.
		lo, hi := 0, len(vbs)-1
		var best []byte
		for lo <= hi {
			mid := (lo + hi) / 2
			m, err := marshal(out, vbs[:mid])
			if err == nil && len(m) <= limit {
				best, lo = m, mid+1
			} else {
				hi = mid - 1
			}
		}
		if best != nil {
			return best, true
		}
	}
	out.Error, out.ErrorIndex = gosnmp.TooBig, 0
	msg, err = marshal(out, nil)
	if err != nil || len(msg) > limit {
		return e.drop(&e.stats.silentDrops, "tooBig response does not fit")
	}
	return msg, true
}

// echo returns the request's varbinds in a form gosnmp can encode; a value
// it cannot (an unknown type in a SET) is echoed as NULL.
func echo(vbs []VarBind) []VarBind {
	out := make([]VarBind, len(vbs))
	for i, vb := range vbs {
		v, err := normalize(vb.Value)
		if err != nil {
			v = Value{Type: gosnmp.Null}
		}
		out[i] = VarBind{OID: vb.OID, Value: v}
	}
	return out
}

// decode runs gosnmp's decoder behind a recover: it is third-party code
// facing hostile input.
func decode(pkt []byte) (p *gosnmp.SnmpPacket, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("snmp: decoder panic: %v", r)
		}
	}()
	// A fresh decoder per packet: SnmpDecodePacket writes to its receiver.
	return (&gosnmp.GoSNMP{}).SnmpDecodePacket(pkt)
}

// peekVersion reads msgVersion without gosnmp, so that a v3 message is
// counted as a bad version instead of being half-decoded as v3.
func peekVersion(pkt []byte) (int, bool) {
	if len(pkt) < 2 || pkt[0] != 0x30 {
		return 0, false
	}
	n, ok := berLengthSize(pkt[1:])
	if !ok {
		return 0, false
	}
	rest := pkt[1+n:]
	if len(rest) < 3 || rest[0] != 0x02 {
		return 0, false
	}
	l := int(rest[1])
	if l < 1 || l > 4 || len(rest) < 2+l {
		return 0, false
	}
	v := int32(int8(rest[2])) // sign-extend the first octet
	for _, b := range rest[3 : 2+l] {
		v = v<<8 | int32(b)
	}
	return int(v), true
}

// berLengthSize returns how many octets a BER definite length occupies.
func berLengthSize(b []byte) (int, bool) {
	if len(b) == 0 || b[0] == 0x80 {
		return 0, false
	}
	if b[0] < 0x80 {
		return 1, true
	}
	n := int(b[0] & 0x7f)
	if n > 4 || len(b) < 1+n {
		return 0, false
	}
	return 1 + n, true
}
