package agent

import (
	"context"
	"fmt"
	"io"

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
	var target bank.Slot
	err := a.fetch(ctx, r, func(ctx context.Context, src io.Reader) (err error) {
		target, err = a.installImage(ctx, src)
		return err
	})
	if err != nil {
		return err
	}
	// Journal the intent first: if the power goes between Arm and the
	// row's completion, the restarted agent sees the armed bank and
	// reports the upgrade as done rather than interrupted.
	a.mu.Lock()
	r.Arming = uint32(target)
	a.mu.Unlock()
	a.persist(ctx, r)
	if err := a.banks.Arm(ctx, target); err != nil {
		return fmt.Errorf("arming bank %s: %w", target, err)
	}
	a.log.Info("upgrade armed", "bank", target, "tries", a.banks.BootLimit())
	return nil
}

// installImage verifies the image streaming from src and writes its
// payload into the inactive bank. It does not arm the bank.
func (a *Agent) installImage(ctx context.Context, src io.Reader) (bank.Slot, error) {
	img, err := image.NewReader(src, image.Options{Trusted: a.opts.Trusted, Hardware: a.opts.Hardware, MaxPayload: a.opts.SlotSize})
	if err != nil {
		return 0, err
	}
	h := img.Header()
	a.log.Info("image accepted", "version", h.Version, "hw", h.Hardware, "size", h.PayloadSize)
	return a.banks.Install(ctx, bank.SlotInfo{
		Version:      h.Version,
		Hardware:     h.Hardware,
		ConfigFormat: h.ConfigFormat,
		Size:         h.PayloadSize,
		Digest:       h.PayloadSHA256,
	}, img, nil)
}
