package agent

import (
	"context"
	"io"

	"github.com/iadsafe/iad-agent/agent/transfer"
)

// fetch downloads the row's file and feeds it, as it arrives, to consume
// (the image verifier and bank writer, or the config stager). Nothing is
// buffered whole. When consume fails, the download is stopped and the
// download's own error is returned if the server or the network caused
// it: a dead server explains a truncated stream better than "truncated".
func (a *Agent) fetch(ctx context.Context, r *row, consume func(context.Context, io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	dlErr := make(chan error, 1)
	go func() {
		_, err := transfer.Download(ctx, a.transferRequest(r), pw, transfer.Hooks{
			Size:     func(total int64) { a.setTotal(r, total) },
			Progress: func(done int64) { a.progress(r, done, false) },
		})
		pw.CloseWithError(err) // nil: the consumer sees EOF
		dlErr <- err
	}()
	err := consume(ctx, pr)
	if err != nil {
		pr.CloseWithError(err)
		cancel()
		if derr := <-dlErr; remoteFailure(derr) {
			return derr
		}
		return err
	}
	return <-dlErr
}

// remoteFailure reports whether a transfer error came from the server or
// the network rather than from our own side aborting it.
func remoteFailure(err error) bool {
	return err != nil && !errorsIsAny(err, transfer.ErrLocal, transfer.ErrCanceled, context.Canceled, io.ErrClosedPipe)
}
