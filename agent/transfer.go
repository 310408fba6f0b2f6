package agent

import (
	"context"
	"errors"
	"io"

	"github.com/iadsafe/iad-agent/agent/internal/spool"
	"github.com/iadsafe/iad-agent/agent/transfer"
)

// spoolSize is how far a download may run ahead of its consumer. TFTP
// acknowledges a block only once it is handed on, so without this slack
// every block would wait for hashing and flash writes. Twice the bank's
// write chunk: the network fills one half while a chunk is written.
const spoolSize = 512 << 10

// fetch downloads the row's file and feeds it, as it arrives, to consume
// (the image verifier and bank writer, or the config stager). Nothing is
// buffered whole: the download runs at most spoolSize bytes ahead. When
// consume fails, the download is stopped and the download's own error is
// returned if the server or the network caused it: a dead server explains
// a truncated stream better than "truncated".
func (a *Agent) fetch(ctx context.Context, r *row, consume func(context.Context, io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p, err := spool.New(spoolSize)
	if err != nil {
		return err
	}
	dlErr := make(chan error, 1)
	go func() {
		_, err := transfer.Download(ctx, a.transferRequest(r), p, transfer.Hooks{
			Size:     func(total int64) { a.setTotal(r, total) },
			Progress: func(done int64) { a.progress(r, done, false) },
		})
		p.CloseWrite(err) // nil: the consumer sees EOF
		dlErr <- err
	}()
	if err := consume(ctx, p); err != nil {
		p.CloseRead(err)
		cancel()
		if derr := <-dlErr; remoteFailure(derr) {
			return derr
		}
		return err
	}
	// A consumer that stopped before the end must not leave the download
	// blocked on a full spool: it fails instead. After a read to EOF the
	// download has already ended and this changes nothing.
	p.CloseRead(errUnread)
	return <-dlErr
}

// errUnread is what a download gets if its consumer finished without
// reading it to the end.
var errUnread = errors.New("agent: the file continues after what the operation needed")

// remoteFailure reports whether a transfer error came from the server or
// the network rather than from our own side aborting it.
func remoteFailure(err error) bool {
	return err != nil && !errorsIsAny(err, transfer.ErrLocal, transfer.ErrCanceled, context.Canceled, io.ErrClosedPipe)
}
