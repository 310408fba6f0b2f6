package agent

import (
	"context"
	"io"

	"github.com/iadsafe/iad-agent/agent/transfer"
)

// restore downloads a configuration archive, verifies it whole in a
// staging directory and swaps it in atomically. A bad, truncated or
// unsafe archive leaves the live configuration untouched.
func (a *Agent) restore(ctx context.Context, r *row) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	dlErr := make(chan error, 1)
	go func() {
		_, err := transfer.Download(ctx, a.transferRequest(r), pw, transfer.Hooks{
			Size:     func(total int64) { a.setTotal(r, total) },
			Progress: func(done int64) { a.progress(r, done, false) },
		})
		pw.CloseWithError(err)
		dlErr <- err
	}()
	staged, err := a.config.Stage(ctx, pr)
	if err != nil {
		pr.CloseWithError(err)
		cancel()
		if derr := <-dlErr; remoteFailure(derr) {
			return derr
		}
		return err
	}
	if derr := <-dlErr; derr != nil {
		staged.Discard()
		return derr
	}
	m := staged.Manifest()
	a.log.Info("configuration staged", "files", len(m.Files), "from_version", m.SoftwareVersion, "config_format", m.ConfigFormat)
	return staged.Apply(ctx)
}
