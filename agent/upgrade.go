package agent

import (
	"context"
	"fmt"
	"io"

	"github.com/iadsafe/iad-agent/agent/transfer"
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/image"
)

// upgrade streams the signed image from the server into the inactive bank:
// header and signature are checked before a payload byte is written, the
// payload hash while it streams, the written bank is read back and
// re-hashed, and only then is it armed for a trial boot. Nothing is
// buffered whole; the running bank is never touched.
func (a *Agent) upgrade(ctx context.Context, r *row) error {
	if a.banks.Status(a.banks.Running()) == bank.StatusTrial {
		return ErrTrialRunning
	}
	target := a.banks.Inactive()
	limit := a.opts.SlotSize

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	dlErr := make(chan error, 1)
	go func() {
		_, err := transfer.Download(ctx, a.transferRequest(r), pw, transfer.Hooks{
			Size:     func(total int64) { a.setTotal(r, total) },
			Progress: func(done int64) { a.progress(r, done, false) },
		})
		pw.CloseWithError(err) // nil => reader sees EOF
		dlErr <- err
	}()

	err := a.install(ctx, pr, limit)
	if err != nil {
		// Stop the download and prefer its error: a dead server explains a
		// truncated image better than "truncated".
		pr.CloseWithError(err)
		cancel()
		if derr := <-dlErr; remoteFailure(derr) {
			return derr
		}
		return err
	}
	if derr := <-dlErr; derr != nil {
		return derr
	}
	if err := a.banks.Arm(ctx, target); err != nil {
		return fmt.Errorf("arming bank %s: %w", target, err)
	}
	a.log.Info("upgrade armed", "bank", target, "tries", a.banks.BootLimit())
	return nil
}

func (a *Agent) install(ctx context.Context, src io.Reader, limit int64) error {
	img, err := image.NewReader(src, image.Options{Trusted: a.opts.Trusted, Hardware: a.opts.Hardware, MaxPayload: limit})
	if err != nil {
		return err
	}
	h := img.Header()
	a.log.Info("image accepted", "version", h.Version, "hw", h.Hardware, "size", h.PayloadSize)
	meta := bank.SlotInfo{
		Version:      h.Version,
		Hardware:     h.Hardware,
		ConfigFormat: h.ConfigFormat,
		Size:         h.PayloadSize,
		Digest:       h.PayloadSHA256,
	}
	_, err = a.banks.Install(ctx, meta, img, nil)
	return err
}
