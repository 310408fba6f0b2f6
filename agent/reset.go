package agent

import (
	"context"
	"time"
)

// reset lets the SET response and the progress notification leave, then
// asks Run to return ErrResetRequested; the command (cmd/iad-agent)
// performs the restart once the journal is closed and files are synced.
// The row stays running in the journal: the restarted agent marks it
// successful, which is the only honest proof that the reset happened.
func (a *Agent) reset(ctx context.Context, r *row) error {
	select {
	case <-time.After(a.opts.ResetGrace):
	case <-ctx.Done():
		return ctx.Err()
	}
	a.log.Info("reset requested", "index", r.Index, "next_bank", a.banks.Next())
	select {
	case a.resetCh <- struct{}{}:
	default:
	}
	return nil
}
