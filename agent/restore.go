package agent

import (
	"context"
	"io"

	"github.com/iadsafe/iad-agent/agent/config"
)

// restore downloads a configuration archive, verifies it whole in a
// staging directory and swaps it in atomically. A bad, truncated or
// unsafe archive leaves the live configuration untouched.
func (a *Agent) restore(ctx context.Context, r *row) error {
	var staged *config.Staged
	err := a.fetch(ctx, r, func(ctx context.Context, src io.Reader) error {
		var err error
		staged, err = a.config.Stage(ctx, src)
		return err
	})
	if err != nil {
		if staged != nil {
			staged.Discard()
		}
		return err
	}
	m := staged.Manifest()
	a.log.Info("configuration staged", "files", len(m.Files), "from_version", m.SoftwareVersion, "config_format", m.ConfigFormat)
	return staged.Apply(ctx)
}
