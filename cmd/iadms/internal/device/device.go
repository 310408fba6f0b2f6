// Package device is iadms's SNMP client for one device running iad-agent:
// it reads the software and bank state, reads and creates iadOpTable rows,
// and nothing else. It speaks SNMPv2c or SNMPv3 through gosnmp, with the
// credentials of a creds.Entry.
//
// It must never log or return a secret (communities, passwords and keys
// stay inside the gosnmp session), and never retry a SET on its own: a SET
// whose answer is lost may still have created the row, so the caller
// decides (by reading the row) what happened.
package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/creds"
	"github.com/iadsafe/iad-agent/mib"
)

// Errors. Every error of the package wraps one of these.
var (
	// ErrUnreachable means no answer (timeout, refused): the device may
	// be restarting.
	ErrUnreachable = errors.New("device: no answer")
	// ErrRefused means the device answered with an SNMP error status.
	ErrRefused = errors.New("device: request refused")
	// ErrNoSuchOp means the iadOpTable row does not exist.
	ErrNoSuchOp = errors.New("device: no such operation row")
	// ErrNotIAD means the device does not implement IAD-UPGRADE-MIB.
	ErrNotIAD = errors.New("device: IAD-UPGRADE-MIB not implemented")
	// ErrBadAnswer means an answer of the wrong type or shape.
	ErrBadAnswer = errors.New("device: malformed answer")
	// ErrConfig means the address or credentials cannot be used.
	ErrConfig = errors.New("device: bad configuration")
)

// DefaultPort is the SNMP port used when an address has none.
const DefaultPort = 161

// Options tune a Client. Zero values get defaults.
type Options struct {
	// Timeout is the wait for one answer (default 2s); Retries the
	// retransmissions after it (default 1).
	Timeout time.Duration
	Retries int
	Logger  *slog.Logger
}

// Client talks to one device. Its methods are safe for concurrent use;
// requests are serialised.
type Client struct {
	addr netip.AddrPort
	log  *slog.Logger

	mu        sync.Mutex
	g         *gosnmp.GoSNMP
	connected bool
}

// ParseAddr reads "HOST[:PORT]" ("192.0.2.1", "192.0.2.1:1161",
// "[2001:db8::1]:161", "::1"); the port defaults to 161. Only IP literals
// are accepted: a device is named by its management address.
func ParseAddr(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, DefaultPort), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		a, aerr := netip.ParseAddr(host)
		p, perr := strconv.ParseUint(port, 10, 16)
		if aerr == nil && perr == nil && p > 0 {
			return netip.AddrPortFrom(a, uint16(p)), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%w: address %q: want IP[:PORT] or [IPv6]:PORT", ErrConfig, s)
}

// New prepares a client; nothing is sent until the first request.
func New(addr netip.AddrPort, c creds.Entry, opts Options) (*Client, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	g := &gosnmp.GoSNMP{
		Target:             addr.Addr().Unmap().String(),
		Port:               addr.Port(),
		Transport:          "udp",
		Timeout:            opts.Timeout,
		Retries:            opts.Retries,
		MaxOids:            gosnmp.MaxOids,
		MaxRepetitions:     25,
		ExponentialTimeout: false,
		Logger:             gosnmp.NewLogger(nil),
	}
	if err := applyCreds(g, c); err != nil {
		return nil, err
	}
	return &Client{addr: addr, log: opts.Logger.With("device", addr.String()), g: g}, nil
}

func applyCreds(g *gosnmp.GoSNMP, c creds.Entry) error {
	switch c.Kind {
	case creds.KindV2c:
		g.Version = gosnmp.Version2c
		g.Community = c.Community.Reveal()
		return nil
	case creds.KindV3:
	default:
		return fmt.Errorf("%w: credentials %s are not SNMP credentials", ErrConfig, c)
	}
	g.Version = gosnmp.Version3
	g.SecurityModel = gosnmp.UserSecurityModel
	g.ContextName = c.Context
	usm := &gosnmp.UsmSecurityParameters{UserName: c.User}
	switch c.Level {
	case creds.NoAuthNoPriv:
		g.MsgFlags = gosnmp.NoAuthNoPriv
	case creds.AuthNoPriv:
		g.MsgFlags = gosnmp.AuthNoPriv
	case creds.AuthPriv:
		g.MsgFlags = gosnmp.AuthPriv
	default:
		return fmt.Errorf("%w: credentials %s: level %q", ErrConfig, c, c.Level)
	}
	if c.Level != creds.NoAuthNoPriv {
		p, ok := authProtocols[c.Auth]
		if !ok {
			return fmt.Errorf("%w: credentials %s: auth %q", ErrConfig, c, c.Auth)
		}
		usm.AuthenticationProtocol, usm.AuthenticationPassphrase = p, c.AuthPass.Reveal()
	}
	if c.Level == creds.AuthPriv {
		p, ok := privProtocols[c.Priv]
		if !ok {
			return fmt.Errorf("%w: credentials %s: priv %q", ErrConfig, c, c.Priv)
		}
		usm.PrivacyProtocol, usm.PrivacyPassphrase = p, c.PrivPass.Reveal()
	}
	g.SecurityParameters = usm
	return nil
}

var authProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
	"MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA-224": gosnmp.SHA224,
	"SHA-256": gosnmp.SHA256, "SHA-384": gosnmp.SHA384, "SHA-512": gosnmp.SHA512,
}

var privProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
	"DES": gosnmp.DES, "AES": gosnmp.AES, "AES-192": gosnmp.AES192, "AES-256": gosnmp.AES256,
	"AES-192C": gosnmp.AES192C, "AES-256C": gosnmp.AES256C,
}

// Close releases the socket.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected && c.g.Conn != nil {
		c.connected = false
		return c.g.Conn.Close()
	}
	return nil
}

// do runs one request with ctx, connecting first if needed.
func (c *Client) do(ctx context.Context, what string, f func(g *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error)) (*gosnmp.SnmpPacket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.connected {
		if err := c.g.Connect(); err != nil {
			return nil, fmt.Errorf("%w: %s: connect %s: %w", ErrUnreachable, what, c.addr, err)
		}
		c.connected = true
	}
	c.g.Context = ctx
	defer func() { c.g.Context = nil }()
	p, err := f(c.g)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("%w: %s from %s: %w", ErrUnreachable, what, c.addr, err)
	}
	if p.Error != gosnmp.NoError {
		return p, fmt.Errorf("%w: %s to %s: %s (varbind %d)", ErrRefused, what, c.addr, p.Error, p.ErrorIndex)
	}
	return p, nil
}

// Get reads the given OIDs (with instance suffix). Each returned PDU has
// the type the agent answered, NoSuchObject and NoSuchInstance included.
func (c *Client) Get(ctx context.Context, oids ...mib.OID) ([]gosnmp.SnmpPDU, error) {
	names := make([]string, len(oids))
	for i, o := range oids {
		names[i] = o.Dotted()
	}
	p, err := c.do(ctx, "get", func(g *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error) { return g.Get(names) })
	if err != nil {
		return nil, err
	}
	if len(p.Variables) != len(oids) {
		return nil, fmt.Errorf("%w: %d values for %d objects", ErrBadAnswer, len(p.Variables), len(oids))
	}
	return p.Variables, nil
}

// Uptime reads sysUpTime.0.
func (c *Client) Uptime(ctx context.Context) (time.Duration, error) {
	v, err := c.Get(ctx, mib.SysUpTime.Append(0))
	if err != nil {
		return 0, err
	}
	ticks, err := asUint(v[0])
	if err != nil {
		return 0, err
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// Bank is one row of iadBankTable.
type Bank struct {
	Version string
	State   mib.BankState
}

// Software is the device's software state, read in one request.
type Software struct {
	Uptime     time.Duration
	Version    string
	Active     mib.Bank
	Next       mib.Bank
	TriesLeft  uint32
	BootLimit  uint32
	Hardware   string
	Banks      [3]Bank // indexed by mib.Bank (1, 2)
	ReadAt     time.Time
	BootedNear time.Time // ReadAt - Uptime: when the running agent started
}

// Other returns the bank that is not b.
func Other(b mib.Bank) mib.Bank {
	if b == mib.BankA {
		return mib.BankB
	}
	return mib.BankA
}

// Software reads sysUpTime, the iadSw scalars and both banks.
func (c *Client) Software(ctx context.Context) (Software, error) {
	oids := []mib.OID{
		mib.SysUpTime.Append(0),
		mib.IadSwCurrentVersion.Append(0),
		mib.IadSwActiveBank.Append(0),
		mib.IadSwNextBank.Append(0),
		mib.IadSwTrialTriesLeft.Append(0),
		mib.IadSwBootLimit.Append(0),
		mib.IadSwHardware.Append(0),
		mib.IadBankVersion.Append(1),
		mib.IadBankState.Append(1),
		mib.IadBankVersion.Append(2),
		mib.IadBankState.Append(2),
	}
	v, err := c.Get(ctx, oids...)
	if err != nil {
		return Software{}, err
	}
	for _, pdu := range v[1:] {
		if pdu.Type == gosnmp.NoSuchObject || pdu.Type == gosnmp.NoSuchInstance {
			return Software{}, fmt.Errorf("%w: %s has no %s", ErrNotIAD, c.addr, pdu.Name)
		}
	}
	var s Software
	var errs []error
	ticks, err := asUint(v[0])
	errs = append(errs, err)
	s.Uptime = time.Duration(ticks) * 10 * time.Millisecond
	s.ReadAt = time.Now()
	s.BootedNear = s.ReadAt.Add(-s.Uptime)
	s.Version, err = asString(v[1])
	errs = append(errs, err)
	active, err := asInt(v[2])
	errs = append(errs, err)
	next, err := asInt(v[3])
	errs = append(errs, err)
	s.Active, s.Next = mib.Bank(active), mib.Bank(next)
	s.TriesLeft, err = asUint(v[4])
	errs = append(errs, err)
	s.BootLimit, err = asUint(v[5])
	errs = append(errs, err)
	s.Hardware, err = asString(v[6])
	errs = append(errs, err)
	for i, b := range []mib.Bank{mib.BankA, mib.BankB} {
		s.Banks[b].Version, err = asString(v[7+2*i])
		errs = append(errs, err)
		st, err := asInt(v[8+2*i])
		errs = append(errs, err)
		s.Banks[b].State = mib.BankState(st)
	}
	if err := errors.Join(errs...); err != nil {
		return Software{}, err
	}
	if !s.Active.Valid() || !s.Next.Valid() {
		return Software{}, fmt.Errorf("%w: active bank %d, next bank %d", ErrBadAnswer, s.Active, s.Next)
	}
	return s, nil
}

// truthTrue is TruthValue true(1) of SNMPv2-TC.
const truthTrue = 1

// ConfigFormat reads iadConfigFormat.0, the configuration format of the
// running software. known is false when the agent does not have the
// object: it predates configuration formats and does not convert a
// restored configuration itself.
func (c *Client) ConfigFormat(ctx context.Context) (format uint32, known bool, err error) {
	v, err := c.Get(ctx, mib.IadConfigFormat.Append(0))
	if err != nil {
		return 0, false, err
	}
	if v[0].Type == gosnmp.NoSuchObject || v[0].Type == gosnmp.NoSuchInstance {
		return 0, false, nil
	}
	f, err := asUint(v[0])
	return f, err == nil, err
}

// CheckWrite proves that the credentials may write: it sets
// iadSwBootLimit.0 to the value it has (limit, as read), which changes
// nothing. An agent drops a SET with a read-only community without an
// answer, so a wrong community shows here as ErrUnreachable instead of as
// every operation timing out.
func (c *Client) CheckWrite(ctx context.Context, limit uint32) error {
	pdu := gosnmp.SnmpPDU{Name: mib.IadSwBootLimit.Append(0).Dotted(), Type: gosnmp.Gauge32, Value: uint(limit)}
	_, err := c.do(ctx, "set iadSwBootLimit", func(g *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error) {
		return g.Set([]gosnmp.SnmpPDU{pdu})
	})
	return err
}

// Request is what an operation row is created with. Server fields are
// ignored for reset and revert.
type Request struct {
	Type     mib.OpType
	Protocol mib.Protocol
	Server   netip.AddrPort
	File     string
	User     string
	Password creds.Secret
	// Timeout is iadOpTimeout; 0 lets the agent choose.
	Timeout time.Duration
	// Force sets iadOpForce (a restore converts across a major
	// configuration format version). It is sent only when true, so
	// agents without the column take the other requests.
	Force bool
}

// StartOp creates row idx with createAndGo in one SET carrying the whole
// request. On ErrUnreachable the row may or may not exist: read it.
func (c *Client) StartOp(ctx context.Context, idx uint32, r Request) error {
	if idx == 0 || idx > 1<<31-1 {
		return fmt.Errorf("%w: operation index %d out of range", ErrConfig, idx)
	}
	col := func(o mib.OID) string { return o.Append(idx).Dotted() }
	pdus := []gosnmp.SnmpPDU{{Name: col(mib.IadOpType), Type: gosnmp.Integer, Value: int(r.Type)}}
	switch r.Type {
	case mib.OpBackupConfig, mib.OpUpgrade, mib.OpRestoreConfig:
		a := r.Server.Addr().Unmap()
		at, raw := mib.InetIPv4, a.AsSlice()
		if a.Is6() {
			at = mib.InetIPv6
		}
		proto := r.Protocol
		if proto == 0 {
			proto = mib.ProtocolTFTP
		}
		pdus = append(pdus,
			gosnmp.SnmpPDU{Name: col(mib.IadOpProtocol), Type: gosnmp.Integer, Value: int(proto)},
			gosnmp.SnmpPDU{Name: col(mib.IadOpServerAddressType), Type: gosnmp.Integer, Value: int(at)},
			gosnmp.SnmpPDU{Name: col(mib.IadOpServerAddress), Type: gosnmp.OctetString, Value: raw},
			gosnmp.SnmpPDU{Name: col(mib.IadOpServerPort), Type: gosnmp.Gauge32, Value: uint(r.Server.Port())},
			gosnmp.SnmpPDU{Name: col(mib.IadOpFileName), Type: gosnmp.OctetString, Value: []byte(r.File)},
		)
		if r.User != "" {
			pdus = append(pdus,
				gosnmp.SnmpPDU{Name: col(mib.IadOpUserName), Type: gosnmp.OctetString, Value: []byte(r.User)},
				gosnmp.SnmpPDU{Name: col(mib.IadOpPassword), Type: gosnmp.OctetString, Value: []byte(r.Password.Reveal())},
			)
		}
	case mib.OpReset, mib.OpRevert:
	default:
		return fmt.Errorf("%w: operation type %d", ErrConfig, r.Type)
	}
	if r.Force {
		pdus = append(pdus, gosnmp.SnmpPDU{Name: col(mib.IadOpForce), Type: gosnmp.Integer, Value: truthTrue})
	}
	if r.Timeout > 0 {
		secs := uint((r.Timeout + time.Second - 1) / time.Second)
		pdus = append(pdus, gosnmp.SnmpPDU{Name: col(mib.IadOpTimeout), Type: gosnmp.Gauge32, Value: min(secs, 86400)})
	}
	pdus = append(pdus, gosnmp.SnmpPDU{Name: col(mib.IadOpRowStatus), Type: gosnmp.Integer, Value: int(mib.RowCreateAndGo)})
	_, err := c.do(ctx, "set "+r.Type.String(), func(g *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error) { return g.Set(pdus) })
	return err
}

// Op is one iadOpTable row as read.
type Op struct {
	Index     uint32
	Type      mib.OpType
	File      string
	State     mib.OpState
	Progress  uint32
	Bytes     uint64
	FailCause mib.FailCause
	FailText  string
}

// Done reports whether the operation has ended.
func (o Op) Done() bool { return o.State == mib.OpSuccessful || o.State == mib.OpFailed }

// opColumns are the columns Op and Ops read, in Op's order.
var opColumns = []mib.OID{mib.IadOpType, mib.IadOpFileName, mib.IadOpState, mib.IadOpProgress, mib.IadOpBytes, mib.IadOpFailCause, mib.IadOpFailText}

// Op reads row idx; ErrNoSuchOp if it does not exist.
func (c *Client) Op(ctx context.Context, idx uint32) (Op, error) {
	oids := make([]mib.OID, len(opColumns))
	for i, col := range opColumns {
		oids[i] = col.Append(idx)
	}
	v, err := c.Get(ctx, oids...)
	if err != nil {
		return Op{}, err
	}
	if v[2].Type == gosnmp.NoSuchInstance || v[2].Type == gosnmp.NoSuchObject {
		return Op{}, fmt.Errorf("%w: %d on %s", ErrNoSuchOp, idx, c.addr)
	}
	op := Op{Index: idx}
	for i, col := range opColumns {
		if err := op.set(col, v[i]); err != nil {
			return Op{}, err
		}
	}
	return op, nil
}

func (o *Op) set(col mib.OID, pdu gosnmp.SnmpPDU) error {
	if pdu.Type == gosnmp.NoSuchInstance || pdu.Type == gosnmp.NoSuchObject {
		return nil
	}
	var err error
	var n int64
	var u uint32
	switch {
	case col.Equal(mib.IadOpType):
		n, err = asInt(pdu)
		o.Type = mib.OpType(n)
	case col.Equal(mib.IadOpFileName):
		o.File, err = asString(pdu)
	case col.Equal(mib.IadOpState):
		n, err = asInt(pdu)
		o.State = mib.OpState(n)
	case col.Equal(mib.IadOpProgress):
		o.Progress, err = asUint(pdu)
	case col.Equal(mib.IadOpBytes):
		u, err = asUint(pdu)
		o.Bytes = uint64(u)
	case col.Equal(mib.IadOpFailCause):
		n, err = asInt(pdu)
		o.FailCause = mib.FailCause(n)
	case col.Equal(mib.IadOpFailText):
		o.FailText, err = asString(pdu)
	}
	return err
}

// Ops walks iadOpTable and returns every row, by index order.
func (c *Client) Ops(ctx context.Context) ([]Op, error) {
	var pdus []gosnmp.SnmpPDU
	_, err := c.do(ctx, "walk iadOpTable", func(g *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error) {
		var err error
		pdus, err = g.BulkWalkAll(mib.IadOpEntry.Dotted())
		return &gosnmp.SnmpPacket{}, err
	})
	if err != nil {
		return nil, err
	}
	rows := map[uint32]*Op{}
	var order []uint32
	for _, pdu := range pdus {
		o, err := mib.ParseOID(pdu.Name)
		if err != nil || !o.HasPrefix(mib.IadOpEntry) || len(o) != len(mib.IadOpEntry)+2 {
			continue
		}
		col, idx := mib.IadOpEntry.Append(o[len(o)-2]), o[len(o)-1]
		r, ok := rows[idx]
		if !ok {
			r = &Op{Index: idx}
			rows[idx] = r
			order = append(order, idx)
		}
		if err := r.set(col, pdu); err != nil {
			return nil, err
		}
	}
	out := make([]Op, 0, len(order))
	for _, idx := range order {
		out = append(out, *rows[idx])
	}
	return out, nil
}

func asInt(p gosnmp.SnmpPDU) (int64, error) {
	switch v := p.Value.(type) {
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case uint:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		return int64(v), nil
	}
	return 0, fmt.Errorf("%w: %s is %v, want a number", ErrBadAnswer, p.Name, p.Type)
}

func asUint(p gosnmp.SnmpPDU) (uint32, error) {
	n, err := asInt(p)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 1<<32-1 {
		return 0, fmt.Errorf("%w: %s = %d out of range", ErrBadAnswer, p.Name, n)
	}
	return uint32(n), nil
}

func asString(p gosnmp.SnmpPDU) (string, error) {
	switch v := p.Value.(type) {
	case []byte:
		return string(v), nil
	case string:
		return v, nil
	}
	return "", fmt.Errorf("%w: %s is %v, want a string", ErrBadAnswer, p.Name, p.Type)
}
