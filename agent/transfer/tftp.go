package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"
)

// TFTP error codes (RFC 1350).
const (
	tftpNotFound   = 1
	tftpAccess     = 2
	tftpDiskFull   = 3
	tftpFileExists = 6
	tftpNoSuchUser = 7
)

// pin/tftp reports a server's ERROR packet only as text:
// "code: 1, message: ..." when receiving, "sending block 0: code=2, error: ..."
// when sending.
var tftpCodeRE = regexp.MustCompile(`code(?::|=) ?(\d+), (?:message|error): (.*)`)

func newTFTPClient(req Request) (*tftp.Client, error) {
	c, err := tftp.NewClient(req.Server.String())
	if err != nil {
		return nil, err
	}
	c.SetTimeout(req.Timeout)
	c.SetRetries(req.Retries)
	// The timeout already is the wait; the library's default adds up to a
	// second of sleep per retransmission that nothing can interrupt.
	c.SetBackoff(func(int) time.Duration { return 0 })
	c.SetBlockSize(req.BlockSize)
	return c, nil
}

type tftpResult struct {
	n   int64
	err error
}

// tftpDownload runs the transfer in a goroutine because pin/tftp cannot be
// interrupted: on cancellation we return at once and the guarded sink makes
// the library abort (sending an ERROR packet) at its next block, or give up
// after its own timeout if the server went silent.
func tftpDownload(ctx context.Context, req Request, w io.Writer, hooks Hooks) (int64, error) {
	what := req.describe("download")
	c, err := newTFTPClient(req)
	if err != nil {
		return 0, fail(ErrInvalid, what, err)
	}
	g := &guard{}
	dst := &sink{w: w, g: g, m: newMeter(hooks.Progress)}
	done := make(chan tftpResult, 1)
	go func() {
		n, err := tftpReceive(c, req, dst, hooks, g, what)
		done <- tftpResult{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-ctx.Done():
		g.stop()
		return dst.count(), ctxFail(what, ctx.Err())
	}
}

func tftpReceive(c *tftp.Client, req Request, dst *sink, hooks Hooks, g *guard, what string) (int64, error) {
	c.RequestTSize(true)
	wt, err := c.Receive(req.File, "octet")
	if err != nil {
		return 0, tftpFail(what, false, err)
	}
	total := int64(-1)
	// Size must be read before WriteTo, which drops the option.
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		if s, ok := it.Size(); ok && s > 0 {
			total = s
			if hooks.Size != nil {
				g.call(func() { hooks.Size(s) })
			}
		}
	}
	n, err := wt.WriteTo(dst)
	if err != nil {
		if dst.err != nil {
			return n, localFail(what, dst.err)
		}
		return n, tftpFail(what, false, err)
	}
	if total >= 0 && n != total {
		return n, fmt.Errorf("%w: %s: got %d bytes, server announced %d", ErrShort, what, n, total)
	}
	g.call(dst.m.finish)
	return n, nil
}

// tftpUpload is tftpDownload's mirror image. pin/tftp v3.1.0's client never
// sends the tsize option on a write request, so the size is only used to
// check the reader.
func tftpUpload(ctx context.Context, req Request, r io.Reader, size int64, hooks Hooks) (int64, error) {
	what := req.describe("upload")
	c, err := newTFTPClient(req)
	if err != nil {
		return 0, fail(ErrInvalid, what, err)
	}
	g := &guard{}
	src := &source{r: r, g: g, size: size, m: newMeter(hooks.Progress)}
	done := make(chan tftpResult, 1)
	go func() {
		n, err := tftpSend(c, req, src, size, hooks, g, what)
		done <- tftpResult{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-ctx.Done():
		g.stop()
		return src.count(), ctxFail(what, ctx.Err())
	}
}

func tftpSend(c *tftp.Client, req Request, src *source, size int64, hooks Hooks, g *guard, what string) (int64, error) {
	rf, err := c.Send(req.File, "octet")
	if err != nil {
		return 0, tftpFail(what, true, err)
	}
	if size >= 0 && hooks.Size != nil {
		g.call(func() { hooks.Size(size) })
	}
	n, err := rf.ReadFrom(src)
	if err != nil {
		if src.err != nil {
			return n, localFail(what, src.err)
		}
		return n, tftpFail(what, true, err)
	}
	g.call(src.m.finish)
	return n, nil
}

// tftpFail maps what pin/tftp returned to a sentinel.
func tftpFail(what string, upload bool, err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fail(ErrTimeout, what, fmt.Errorf("no answer: %w", err))
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.ECONNREFUSED):
		return fail(ErrUnreachable, what, err)
	case errors.As(err, &ne):
		return fail(ErrProtocol, what, err)
	}
	m := tftpCodeRE.FindStringSubmatch(err.Error())
	if m == nil {
		return fail(ErrProtocol, what, err)
	}
	code, _ := strconv.Atoi(m[1])
	sentinel := ErrProtocol
	switch code {
	case tftpNotFound:
		// tftpd-hpa without -c answers a write request for a new file
		// with "File not found": a refusal to store, not a missing file.
		sentinel = ErrNotFound
		if upload {
			sentinel = ErrAccessDenied
		}
	case tftpAccess, tftpFileExists, tftpNoSuchUser:
		sentinel = ErrAccessDenied
	case tftpDiskFull:
		sentinel = ErrNoSpace
	}
	return fail(sentinel, what, fmt.Errorf("server said %d %q", code, strings.TrimRight(m[2], "\x00 \r\n")))
}
