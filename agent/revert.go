package agent

import (
	"context"
)

// revert tells the device to go back to its previous software: a pending
// trial is disarmed, and if the running software is the newer one the
// previous bank is selected for the next boot (iadSwNextBank shows it;
// a reset runs it).
func (a *Agent) revert(ctx context.Context, r *row) error {
	needsReset, err := a.banks.Revert(ctx)
	if err != nil {
		return err
	}
	a.log.Info("reverted", "next_bank", a.banks.Next(), "needs_reset", needsReset)
	return nil
}
