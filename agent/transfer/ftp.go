package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jlaffaye/ftp"
)

// FTP reply codes we tell apart (RFC 959).
const (
	ftpNeedAccount      = 332
	ftpFileBusy         = 450
	ftpNoStorage        = 452
	ftpNotLoggedIn      = 530
	ftpStorNeedAccount  = 532
	ftpFileUnavailable  = 550
	ftpExceededStorage  = 552
	ftpBadFileName      = 553
	ftpInvalidLoginCred = 430
)

// deadlineConn gives every read and write on a connection a fresh deadline,
// so a connection that stops moving fails after the timeout however long the
// whole transfer takes. jlaffaye/ftp sets no deadlines of its own.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// connSet holds every connection of one FTP session so that cancellation
// can close them all, which is the only way to interrupt the library.
type connSet struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns = append(s.conns, c)
	return true
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
}

// ftpSession is one logged-in control connection.
type ftpSession struct {
	conn  *ftp.ServerConn
	conns *connSet
	stop  func() bool
}

func (s *ftpSession) close() {
	s.stop()
	// QUIT is a courtesy; the transfer's outcome is already known.
	_ = s.conn.Quit()
	s.conns.closeAll()
}

// ftpConnect dials and logs in. Both the control and the data connections
// go through one dial function, which only ever connects to req.Server's
// address (with its IPv6 zone, which the library would lose), whatever port
// EPSV or PASV names.
func ftpConnect(ctx context.Context, req Request, what string) (*ftpSession, error) {
	conns := &connSet{}
	server := req.Server.Addr()
	dial := func(network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || ip.WithZone("").Unmap() != server.WithZone("").Unmap() {
			return nil, fmt.Errorf("refusing connection to %s: not the server", address)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("bad port in %s: %w", address, err)
		}
		d := net.Dialer{Timeout: req.Timeout}
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(server, uint16(p)).String())
		if err != nil {
			return nil, err
		}
		if !conns.add(c) {
			c.Close()
			return nil, ctx.Err()
		}
		return &deadlineConn{Conn: c, timeout: req.Timeout}, nil
	}
	stop := context.AfterFunc(ctx, conns.closeAll)
	conn, err := ftp.Dial(req.Server.String(), ftp.DialWithDialFunc(dial))
	if err != nil {
		stop()
		conns.closeAll()
		return nil, ftpFail(ctx, what, err, nil)
	}
	s := &ftpSession{conn: conn, conns: conns, stop: stop}
	// Login also switches to binary (TYPE I).
	if err := conn.Login(req.User, req.Password); err != nil {
		s.close()
		var te *textproto.Error
		if ctx.Err() == nil && !errors.As(err, new(net.Error)) && !errors.As(err, &te) {
			// The library turns a refused USER into a bare message.
			return nil, fail(ErrAuth, what, fmt.Errorf("user %q: %w", req.User, err))
		}
		return nil, ftpFail(ctx, what, err, map[int]error{
			ftpNotLoggedIn: ErrAuth, ftpInvalidLoginCred: ErrAuth, ftpNeedAccount: ErrAuth,
		})
	}
	return s, nil
}

func ftpDownload(ctx context.Context, req Request, w io.Writer, hooks Hooks) (int64, error) {
	what := req.describe("download")
	s, err := ftpConnect(ctx, req, what)
	if err != nil {
		return 0, err
	}
	defer s.close()
	total := int64(-1)
	// A failed SIZE is not fatal (not every server has it); RETR decides.
	if size, err := s.conn.FileSize(req.File); err == nil && size >= 0 {
		total = size
		if hooks.Size != nil {
			hooks.Size(size)
		}
	}
	resp, err := s.conn.Retr(req.File)
	if err != nil {
		return 0, ftpFail(ctx, what, err, map[int]error{
			ftpFileUnavailable: ErrNotFound, ftpNotLoggedIn: ErrAuth,
		})
	}
	dst := &sink{w: w, m: newMeter(hooks.Progress)}
	_, copyErr := io.CopyBuffer(dst, struct{ io.Reader }{resp}, make([]byte, bufferSize))
	// Close reads the server's final reply; with TLS or a reset data
	// connection the copy may look clean and only this shows the failure.
	closeErr := resp.Close()
	n := dst.m.n
	switch {
	case ctx.Err() != nil:
		return n, ctxFail(what, ctx.Err())
	case dst.err != nil:
		return n, localFail(what, dst.err)
	case copyErr != nil:
		return n, ftpFail(ctx, what, copyErr, nil)
	case closeErr != nil:
		return n, ftpShort(ctx, what, n, closeErr)
	case total >= 0 && n != total:
		return n, fmt.Errorf("%w: %s: got %d bytes, server announced %d", ErrShort, what, n, total)
	}
	dst.m.finish()
	return n, nil
}

func ftpUpload(ctx context.Context, req Request, r io.Reader, size int64, hooks Hooks) (int64, error) {
	what := req.describe("upload")
	s, err := ftpConnect(ctx, req, what)
	if err != nil {
		return 0, err
	}
	defer s.close()
	if size >= 0 && hooks.Size != nil {
		hooks.Size(size)
	}
	src := &source{r: r, size: size, m: newMeter(hooks.Progress), buf: make([]byte, bufferSize)}
	err = s.conn.Stor(req.File, src)
	n := src.m.n
	switch {
	case ctx.Err() != nil:
		return n, ctxFail(what, ctx.Err())
	case src.err != nil:
		return n, localFail(what, src.err)
	case err != nil:
		var te *textproto.Error
		if n > 0 && errors.As(err, &te) && te.Code/100 == 4 {
			return n, ftpShort(ctx, what, n, err)
		}
		return n, ftpFail(ctx, what, err, map[int]error{
			ftpFileUnavailable: ErrAccessDenied, ftpBadFileName: ErrAccessDenied,
			ftpStorNeedAccount: ErrAccessDenied, ftpFileBusy: ErrAccessDenied,
			ftpNoStorage: ErrNoSpace, ftpExceededStorage: ErrNoSpace,
			ftpNotLoggedIn: ErrAuth,
		})
	}
	// The 226 says the server got the data; SIZE, where the server has it,
	// says it stored all of it.
	if stored, err := s.conn.FileSize(req.File); err == nil && stored != n {
		return n, fmt.Errorf("%w: %s: sent %d bytes, server stored %d", ErrShort, what, n, stored)
	}
	src.m.finish()
	return n, nil
}

// ftpShort reports a transfer whose end the server did not confirm.
func ftpShort(ctx context.Context, what string, n int64, err error) error {
	if ctx.Err() != nil {
		return ctxFail(what, ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fail(ErrTimeout, what, fmt.Errorf("after %d bytes: %w", n, err))
	}
	return fail(ErrShort, what, fmt.Errorf("after %d bytes: %w", n, err))
}

// ftpFail maps a library error to a sentinel; byCode maps the server's reply
// codes for the command that failed.
func ftpFail(ctx context.Context, what string, err error, byCode map[int]error) error {
	if ctx.Err() != nil {
		return ctxFail(what, ctx.Err())
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		if s, ok := byCode[te.Code]; ok {
			return fail(s, what, fmt.Errorf("server said %w", err))
		}
		return fail(ErrProtocol, what, fmt.Errorf("server said %w", err))
	}
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return fail(ErrUnreachable, what, err)
	case errors.As(err, &ne) && ne.Timeout():
		return fail(ErrTimeout, what, err)
	}
	return fail(ErrProtocol, what, err)
}
