package agent

import (
	"context"
	"fmt"
	"io"

	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/agent/transfer"
)

// backup packs the live configuration into an archive (encrypted when
// the device has a key) and streams it to the server as it is made.
func (a *Agent) backup(ctx context.Context, r *row) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	packErr := make(chan error, 1)
	go func() {
		w, seal, err := a.sealBackup(pw)
		if err == nil {
			_, _, err = a.config.Backup(ctx, w, config.BackupMeta{
				SoftwareVersion: a.currentVersion(),
				ConfigFormat:    a.runningConfigFormat(),
			})
		}
		if err == nil {
			err = seal()
		}
		pw.CloseWithError(err)
		packErr <- err
	}()
	hr := newHashingReader(pr)
	_, err := transfer.Upload(ctx, a.transferRequest(r), hr, -1, transfer.Hooks{
		Progress: func(done int64) { a.progress(r, done, false) },
	})
	pr.CloseWithError(fmt.Errorf("upload ended"))
	perr := <-packErr
	if perr != nil && !errorsIsAny(perr, io.ErrClosedPipe, context.Canceled) {
		return fmt.Errorf("packing configuration: %w", perr)
	}
	if err == nil {
		a.recordBackup(hr)
	}
	return err
}

// runningConfigFormat is the configuration format of the running
// software, from its image header; software that declares none (0) is
// taken to use the factory format 1.
func (a *Agent) runningConfigFormat() uint32 {
	s := a.banks.Snapshot()
	return max(s.Slots[a.banks.Running()].ConfigFormat, 1)
}
