package procedure

import (
	"context"
	"fmt"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/device"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/mib"
)

// The single steps (iadms backup, restore, reset, revert) run one step of
// the method outside an upgrade run, with the same monitoring, and are not
// journalled. A failure is returned as a *Failure.

func (p *Procedure) single() {
	now := p.opts.Now()
	p.rec = journal.Run{
		Device: p.opts.Device, Address: p.opts.Addr.String(), RunID: newRunID(now), Started: now,
		Status: journal.Running, Attempts: map[journal.Step]int{}, Failures: map[journal.Step]int{},
	}
}

// BackupOnce has the device upload a backup and returns where it is
// stored (a file name in the Files store) and what it holds.
func (p *Procedure) BackupOnce(ctx context.Context) (journal.Backup, error) {
	p.single()
	if err := p.backup(ctx, 1); err != nil {
		return journal.Backup{}, err
	}
	return *p.rec.Backup, nil
}

// RestoreOnce has the device restore file, a backup already in the Files
// store; force sets iadOpForce (a conversion across a major format
// version).
func (p *Procedure) RestoreOnce(ctx context.Context, file string, force bool) error {
	p.single()
	name, err := p.files.PublishBackup(ctx, p.opts.Device, file, p.opts.Addr.Addr())
	if err != nil {
		return fail(journal.StepRestore, CauseRefused, "cannot serve the backup: %v", err)
	}
	_, err = p.runOp(ctx, journal.StepRestore, device.Request{Type: mib.OpRestoreConfig, File: name, Force: force}, p.opts.Timeouts.Restore)
	return err
}

// ResetOnce resets the device, waits for it to come back and returns what
// it runs.
func (p *Procedure) ResetOnce(ctx context.Context) (device.Software, error) {
	p.single()
	if err := p.resetAndWait(ctx, journal.StepReset); err != nil {
		return device.Software{}, err
	}
	return p.software(ctx, journal.StepReset, p.opts.Timeouts.Reset)
}

// RevertOnce selects the previous software for the next boot; with
// reset, it also resets the device to run it, and returns what it runs.
func (p *Procedure) RevertOnce(ctx context.Context, reset bool) (device.Software, error) {
	p.single()
	if _, err := p.runOp(ctx, journal.StepRevert, device.Request{Type: mib.OpRevert}, p.opts.Timeouts.Revert); err != nil {
		return device.Software{}, err
	}
	sw, err := p.software(ctx, journal.StepRevert, p.opts.Timeouts.Preflight)
	if err != nil || !reset {
		return sw, err
	}
	if sw.Next == sw.Active {
		p.observe(Update{Kind: Info, Step: journal.StepRevert, Text: fmt.Sprintf("no reset needed: %s runs from %s", sw.Version, sw.Active)})
		return sw, nil
	}
	return p.ResetOnce(ctx)
}

// Files returns the file store the procedure uses.
func (p *Procedure) Files() Files { return p.files }

// Options returns the procedure's options.
func (p *Procedure) Options() Options { return p.opts }
