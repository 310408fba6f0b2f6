package agent

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

// restore downloads a configuration archive (decrypting it when the
// device has a key), verifies it whole in a staging directory, converts
// it to the running configuration format if it is older, validates it,
// swaps it in atomically and has the services reload it. A bad,
// truncated, unsafe, too new, unconvertible or invalid archive, or a
// reload that fails, leaves the previous configuration live.
func (a *Agent) restore(ctx context.Context, r *row) error {
	var staged *config.Staged
	err := a.fetch(ctx, r, func(ctx context.Context, src io.Reader) error {
		src, err := a.openBackup(src)
		if err != nil {
			return err
		}
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
	res, err := a.migrator.Restore(ctx, staged, a.runningConfigFormat(), r.Force)
	if errors.Is(err, iadconfig.ErrMajorMismatch) {
		return fmt.Errorf("%w (iadOpForce)", err)
	}
	if err != nil {
		return err
	}
	a.log.Info("configuration restored", "from_format", res.From, "format", res.To, "converted", res.Converted)
	return nil
}
