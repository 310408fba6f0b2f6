// Package transfer moves files to and from TFTP and FTP servers for backup,
// upgrade and restore.
//
// It streams: it never holds a whole file in memory or in a temporary file,
// and it uses one fixed buffer per transfer. It never talks to an address it
// was not given: FTP data connections go only to the server's own address,
// whatever a PASV reply says, and TFTP replies from other hosts are ignored.
//
// Every error wraps one of the package's sentinel errors (errors.Is) and
// begins with the sentinel's text, so that the part an operator needs
// survives truncation; cancellation also matches context.Canceled or
// context.DeadlineExceeded.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Protocol selects the file transfer protocol. The numbers are those of the
// MIB and must not change.
type Protocol int

const (
	TFTP Protocol = 1
	FTP  Protocol = 2
)

func (p Protocol) String() string {
	switch p {
	case TFTP:
		return "tftp"
	case FTP:
		return "ftp"
	}
	return fmt.Sprintf("protocol(%d)", int(p))
}

// Defaults filled in for zero fields of a Request.
const (
	DefaultTFTPPort  = 69
	DefaultFTPPort   = 21
	DefaultBlockSize = 1468            // the largest block that fits a 1500-byte MTU
	DefaultTimeout   = 5 * time.Second // TFTP retransmission timeout
	// DefaultFTPTimeout bounds one FTP command or a stall of the data
	// connection. It is longer than TFTP's because FTP servers answer a
	// failed login only after PAM's deliberate delay, which a busy server
	// stretches well past 5 s; a dead TCP peer is still caught by the
	// operation's own timeout.
	DefaultFTPTimeout = 30 * time.Second
	DefaultRetries    = 5
)

// Limits of the TFTP blksize option. pin/tftp ignores a negotiated block
// size below 512, so smaller sizes are not offered.
const (
	minBlockSize = 512
	maxBlockSize = 65464
)

// bufferSize is the one buffer a streaming FTP transfer uses.
const bufferSize = 32 << 10

// progressStep is how many bytes pass between two Progress calls.
const progressStep = 64 << 10

// Request says what to transfer, where, and how patiently.
type Request struct {
	Protocol Protocol
	// Server is the server's address; port 0 means the protocol's default
	// (69 for TFTP, 21 for FTP).
	Server netip.AddrPort
	// File is the path on the server.
	File string
	// User and Password are for FTP; an empty User logs in as "anonymous".
	User, Password string
	// BlockSize is the TFTP blksize to ask for (512..65464); 0 means
	// DefaultBlockSize. The server may negotiate it down.
	BlockSize int
	// Timeout is the inactivity timeout of one exchange: the TFTP
	// retransmission timeout, the FTP dial, reply and data deadlines.
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// Retries is the number of TFTP retransmissions; 0 means DefaultRetries.
	Retries int
}

// Hooks report on a transfer. Either may be nil. They are called from the
// goroutine doing the transfer, never after Download or Upload returned.
type Hooks struct {
	// Size is called at most once, before the first byte, when the size of
	// the file is known (TFTP tsize, FTP SIZE, or the size given to Upload).
	// A TFTP tsize of 0 is not reported: pin/tftp cannot tell it apart from a
	// server that ignored the option.
	Size func(total int64)
	// Progress is called with the running byte count, at most every 64 KiB
	// (or every TFTP block, if larger), and once with the total on success.
	Progress func(done int64)
}

var (
	ErrNotFound     = errors.New("transfer: file not found")
	ErrTimeout      = errors.New("transfer: timed out")
	ErrUnreachable  = errors.New("transfer: server unreachable")
	ErrAuth         = errors.New("transfer: login refused")
	ErrAccessDenied = errors.New("transfer: access denied")
	ErrNoSpace      = errors.New("transfer: no space on server")
	ErrProtocol     = errors.New("transfer: protocol error")
	// ErrShort means the byte count does not match the announced size, or
	// the server did not confirm the end of the data.
	ErrShort = errors.New("transfer: incomplete transfer")
	// ErrLocal means the caller's writer (Download) or reader (Upload)
	// failed; its error is wrapped too.
	ErrLocal = errors.New("transfer: local i/o failed")
	// ErrInvalid means the Request itself is unusable.
	ErrInvalid = errors.New("transfer: invalid request")
	// ErrCanceled accompanies context.Canceled.
	ErrCanceled = errors.New("transfer: canceled")
)

// Download streams req.File from the server into w and returns the number
// of bytes written to w.
func Download(ctx context.Context, req Request, w io.Writer, hooks Hooks) (n int64, err error) {
	req, err = req.withDefaults()
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, ctxFail(req.describe("download"), err)
	}
	switch req.Protocol {
	case TFTP:
		return tftpDownload(ctx, req, w, hooks)
	default:
		return ftpDownload(ctx, req, w, hooks)
	}
}

// Upload streams r to the server under req.File and returns the number of
// bytes sent. size is the number of bytes r will deliver, or -1 if unknown;
// when known, a reader that delivers more or fewer fails the transfer with
// ErrShort.
func Upload(ctx context.Context, req Request, r io.Reader, size int64, hooks Hooks) (n int64, err error) {
	req, err = req.withDefaults()
	if err != nil {
		return 0, err
	}
	if size < -1 {
		return 0, fmt.Errorf("%w: upload size %d", ErrInvalid, size)
	}
	if err := ctx.Err(); err != nil {
		return 0, ctxFail(req.describe("upload"), err)
	}
	switch req.Protocol {
	case TFTP:
		return tftpUpload(ctx, req, r, size, hooks)
	default:
		return ftpUpload(ctx, req, r, size, hooks)
	}
}

func (r Request) withDefaults() (Request, error) {
	switch r.Protocol {
	case TFTP:
		if r.Server.Port() == 0 {
			r.Server = netip.AddrPortFrom(r.Server.Addr(), DefaultTFTPPort)
		}
	case FTP:
		if r.Server.Port() == 0 {
			r.Server = netip.AddrPortFrom(r.Server.Addr(), DefaultFTPPort)
		}
	default:
		return r, fmt.Errorf("%w: unknown protocol %d", ErrInvalid, int(r.Protocol))
	}
	a := r.Server.Addr()
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return r, fmt.Errorf("%w: bad server address %q", ErrInvalid, a)
	}
	// A NUL ends a TFTP file name; CR or LF would end an FTP command.
	if r.File == "" || strings.ContainsAny(r.File, "\x00\r\n") {
		return r, fmt.Errorf("%w: bad file name %q", ErrInvalid, r.File)
	}
	if strings.ContainsAny(r.User+r.Password, "\x00\r\n") {
		return r, fmt.Errorf("%w: user or password contains a line break", ErrInvalid)
	}
	if r.User == "" {
		r.User = "anonymous"
	}
	switch {
	case r.BlockSize == 0:
		r.BlockSize = DefaultBlockSize
	case r.BlockSize < minBlockSize || r.BlockSize > maxBlockSize:
		return r, fmt.Errorf("%w: block size %d not in %d..%d", ErrInvalid, r.BlockSize, minBlockSize, maxBlockSize)
	}
	switch {
	case r.Timeout == 0 && r.Protocol == FTP:
		r.Timeout = DefaultFTPTimeout
	case r.Timeout == 0:
		r.Timeout = DefaultTimeout
	case r.Timeout < 0:
		return r, fmt.Errorf("%w: negative timeout %v", ErrInvalid, r.Timeout)
	}
	switch {
	case r.Retries == 0:
		r.Retries = DefaultRetries
	case r.Retries < 0:
		return r, fmt.Errorf("%w: negative retries %d", ErrInvalid, r.Retries)
	}
	return r, nil
}

// describe names the operation for error messages, e.g.
// `tftp download "cfg.bin" from 192.0.2.1:69`.
func (r Request) describe(op string) string {
	dir := "from"
	if op == "upload" {
		dir = "to"
	}
	return fmt.Sprintf("%s %s %q %s %s", r.Protocol, op, r.File, dir, r.Server)
}

func fail(sentinel error, what string, detail error) error {
	return fmt.Errorf("%w: %s: %w", sentinel, what, detail)
}

func ctxFail(what string, cause error) error {
	if errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, what, cause)
	}
	return fmt.Errorf("%w: %s: %w", ErrCanceled, what, cause)
}

// errStopped is what a guarded reader or writer returns once the caller has
// gone; it never reaches the caller.
var errStopped = errors.New("transfer: abandoned")

// guard lets Download and Upload return while a library call that cannot be
// interrupted (pin/tftp has no context) is still running: once stopped, the
// caller's reader, writer and hooks are never touched again.
type guard struct {
	mu      sync.Mutex
	stopped bool
}

func (g *guard) stop() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// lock returns false, without holding the lock, once stopped.
func (g *guard) lock() bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return false
	}
	return true
}

func (g *guard) unlock() {
	if g != nil {
		g.mu.Unlock()
	}
}

// call runs f unless stopped.
func (g *guard) call(f func()) {
	if g.lock() {
		defer g.unlock()
		f()
	}
}

// meter counts bytes and calls the Progress hook.
type meter struct {
	fn       func(int64)
	n        int64
	next     int64
	reported int64
}

func newMeter(fn func(int64)) meter {
	return meter{fn: fn, next: progressStep, reported: -1}
}

func (m *meter) add(k int) {
	m.n += int64(k)
	if m.fn != nil && m.n >= m.next {
		m.fn(m.n)
		m.reported = m.n
		m.next = m.n + progressStep
	}
}

// finish reports the total if the last call did not.
func (m *meter) finish() {
	if m.fn != nil && m.reported != m.n {
		m.fn(m.n)
		m.reported = m.n
	}
}

// sink is the caller's writer as the protocol code sees it: it counts,
// reports progress, remembers the writer's own error (to tell a local failure
// from a network one) and hides any ReadFrom so our buffer is the one used.
type sink struct {
	w   io.Writer
	g   *guard
	m   meter
	err error
}

func (s *sink) Write(p []byte) (int, error) {
	if !s.g.lock() {
		return 0, errStopped
	}
	defer s.g.unlock()
	if len(p) == 0 {
		return 0, nil
	}
	n, err := s.w.Write(p)
	s.m.add(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.err = err
	}
	return n, err
}

// count is safe to call after the guard has stopped.
func (s *sink) count() int64 {
	if s.g != nil {
		s.g.mu.Lock()
		defer s.g.mu.Unlock()
	}
	return s.m.n
}

// source is the caller's reader as the protocol code sees it. When the size
// is known it refuses to deliver more or fewer bytes, so that a wrong size is
// an error on our side rather than a silently truncated file on the server.
type source struct {
	r    io.Reader
	g    *guard
	size int64 // -1: unknown
	m    meter
	err  error // the reader's own failure, or the size mismatch
	buf  []byte
}

func (s *source) Read(p []byte) (int, error) {
	if !s.g.lock() {
		return 0, errStopped
	}
	defer s.g.unlock()
	if s.err != nil {
		return 0, s.err
	}
	if s.size >= 0 {
		// One byte more than expected is enough to notice a longer source.
		if max := s.size - s.m.n + 1; int64(len(p)) > max {
			p = p[:max]
		}
	}
	n, err := s.r.Read(p)
	s.m.add(n)
	switch {
	case s.size >= 0 && s.m.n > s.size:
		s.err = fmt.Errorf("%w: source longer than the announced %d bytes", ErrShort, s.size)
		return n, s.err
	case err == io.EOF && s.size >= 0 && s.m.n < s.size:
		s.err = fmt.Errorf("%w: source ended at %d of the announced %d bytes", ErrShort, s.m.n, s.size)
		return n, s.err
	case err != nil && err != io.EOF:
		s.err = err
	}
	return n, err
}

// WriteTo lets io.Copy inside the FTP library use our one buffer.
func (s *source) WriteTo(w io.Writer) (int64, error) {
	return io.CopyBuffer(w, struct{ io.Reader }{s}, s.buf)
}

func (s *source) count() int64 {
	if s.g != nil {
		s.g.mu.Lock()
		defer s.g.mu.Unlock()
	}
	return s.m.n
}

// localFail wraps an error of the caller's own reader or writer.
func localFail(what string, err error) error {
	if errors.Is(err, ErrShort) {
		return fmt.Errorf("%w: %s", err, what)
	}
	return fail(ErrLocal, what, err)
}
