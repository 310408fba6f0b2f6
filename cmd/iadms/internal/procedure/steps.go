package procedure

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/iadsafe/iad-agent/agent/backupcrypt"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/convert"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/device"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/traps"
	"github.com/iadsafe/iad-agent/mib"
)

func (p *Procedure) baseBank() mib.Bank   { return mib.Bank(p.rec.Baseline.Bank) }
func (p *Procedure) targetBank() mib.Bank { return device.Other(p.baseBank()) }

// preflight records the device as found and refuses what must not be
// upgraded.
func (p *Procedure) preflight(ctx context.Context) (journal.Step, error) {
	sw, err := p.software(ctx, journal.StepPreflight, p.opts.Timeouts.Preflight)
	if err != nil {
		return "", err
	}
	if p.rec.Baseline == nil {
		p.rec.Baseline = &journal.Baseline{Version: sw.Version, Bank: int(sw.Active)}
	}
	if p.opts.Hardware != "" && sw.Hardware != p.opts.Hardware {
		f := fail(journal.StepPreflight, CauseHardware, "the image is for hardware %q; the device is %q", p.opts.Hardware, sw.Hardware)
		f.final = true
		return "", f
	}
	if sw.Banks[sw.Active].State == mib.BankTrial {
		f := fail(journal.StepPreflight, CauseTrial, "the device runs %s from %s on trial (not committed yet); wait for the commit or revert it first",
			sw.Version, sw.Active)
		f.final = true
		return "", f
	}
	if sw.Version == p.rec.Image.Version && !p.opts.Force {
		p.rec.FinalVersion = sw.Version
		p.finish(journal.UpToDate, "already runs "+sw.Version)
		return journal.StepDone, nil
	}
	if err := p.dev.CheckWrite(ctx, sw.BootLimit); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		f := fail(journal.StepPreflight, CauseNoWrite, "the device answers reads but not a write with these credentials "+
			"(a SET of iadSwBootLimit.0 to its own value failed: %v); check that they carry write access", err)
		f.final = true
		return "", f
	}
	return journal.StepBackup, nil
}

// backup has the device upload its configuration and reads the archive's
// manifest back (its config format decides the restore).
func (p *Procedure) backup(ctx context.Context, attempt int) error {
	file := fmt.Sprintf("%s-backup-%d.tar", p.rec.RunID, attempt)
	name, err := p.files.ExpectBackup(ctx, p.opts.Device, file, p.opts.Addr.Addr())
	if err != nil {
		pd := p.rec.Pending
		if pd == nil || pd.Step != journal.StepBackup {
			return fail(journal.StepBackup, CauseRefused, "cannot receive the backup: %v", err)
		}
		name = pd.File // resuming: the upload may have completed already
	}
	if _, err := p.runOp(ctx, journal.StepBackup, device.Request{Type: mib.OpBackupConfig, File: name}, p.opts.Timeouts.Backup); err != nil {
		return err
	}
	rc, err := p.files.OpenBackup(ctx, p.opts.Device, file)
	if err != nil {
		return fail(journal.StepBackup, CauseBackup, "the backup cannot be read back: %v", err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	cr := &countReader{r: br}
	if prefix, _ := br.Peek(len(backupcrypt.Magic)); backupcrypt.IsEncrypted(prefix) {
		io.Copy(io.Discard, cr)
		p.rec.Backup = &journal.Backup{File: file, Name: name, Encrypted: true, Size: cr.n}
		p.observe(Update{Kind: Info, Step: journal.StepBackup, Text: fmt.Sprintf("backup %s: %d bytes, encrypted by the device", file, cr.n)})
		return nil
	}
	m, err := convert.ReadManifest(cr)
	if err != nil {
		return fail(journal.StepBackup, CauseBackup, "the backup cannot be read back: %v", err)
	}
	io.Copy(io.Discard, cr)
	p.rec.Backup = &journal.Backup{File: file, Name: name, ConfigFormat: m.ConfigFormat, SoftwareVersion: m.SoftwareVersion, Size: cr.n}
	p.observe(Update{Kind: Info, Step: journal.StepBackup, Text: fmt.Sprintf("backup %s: %d bytes, %d files, config format %d, software %s",
		file, cr.n, len(m.Files), m.ConfigFormat, m.SoftwareVersion)})
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// upgrade has the device write the image into its inactive bank, then
// checks that the bank is armed with that version.
func (p *Procedure) upgrade(ctx context.Context) error {
	if _, err := p.runOp(ctx, journal.StepUpgrade, device.Request{Type: mib.OpUpgrade, File: p.rec.Image.Name}, p.opts.Timeouts.Upgrade); err != nil {
		return err
	}
	sw, err := p.software(ctx, journal.StepUpgrade, p.opts.Timeouts.Preflight)
	if err != nil {
		return err
	}
	tb := p.targetBank()
	if sw.Next != tb || sw.Banks[tb].Version != p.rec.Image.Version {
		return fail(journal.StepUpgrade, CauseWrongState, "the upgrade reported success, but the next boot is %s holding %q (want %s holding %s)",
			sw.Next, sw.Banks[sw.Next].Version, tb, p.rec.Image.Version)
	}
	p.observe(Update{Kind: Info, Step: journal.StepUpgrade, Text: fmt.Sprintf("%s armed in %s for a trial boot (%d tries)", p.rec.Image.Version, tb, sw.TriesLeft)})
	return nil
}

// reset restarts the device and waits for it to come back.
func (p *Procedure) reset(ctx context.Context) error { return p.resetAndWait(ctx, journal.StepReset) }

// resetAndWait sends a reset (or, resuming, adopts the one sent) and
// waits for the device to restart. The device's boot time is journalled
// first, so a later reading can tell whether the restart happened.
func (p *Procedure) resetAndWait(ctx context.Context, step journal.Step) error {
	budget := p.opts.Timeouts.Reset
	mark := p.rec.Reset
	adopted := mark != nil && mark.Purpose == step && !mark.Confirmed
	if adopted {
		sw, err := p.dev.Software(ctx)
		if err == nil && sw.BootedNear.After(mark.BootedAt.Add(restartSlack)) {
			mark.Confirmed = true
			return p.save(ctx)
		}
	} else {
		sw, err := p.software(ctx, step, p.opts.Timeouts.Preflight)
		if err != nil {
			return err
		}
		mark = &journal.ResetMark{Index: newIndex(), BootedAt: sw.BootedNear, Sent: p.opts.Now(), Purpose: step}
		p.rec.Reset = mark
		if err := p.save(ctx); err != nil {
			return err
		}
	}
	if p.events != nil {
		p.events.Watch(mark.Index)
	}
	deadline := time.Now().Add(budget)
	op, err := p.ensureStarted(ctx, step, mark.Index, device.Request{Type: mib.OpReset}, adopted, deadline)
	if err != nil {
		return err
	}
	switch op.State {
	case mib.OpFailed:
		return fail(step, op.FailCause.String(), "%s", op.FailText)
	case mib.OpSuccessful:
	default:
		p.observe(Update{Kind: Info, Step: step, Text: "reset sent; waiting for the device to restart"})
		if err := p.waitRestart(ctx, step, mark, deadline, budget); err != nil {
			return err
		}
	}
	mark.Confirmed = true
	return p.save(ctx)
}

// boot checks which software the device came back with.
func (p *Procedure) boot(ctx context.Context) error {
	sw, err := p.software(ctx, journal.StepBoot, p.opts.Timeouts.Reset)
	if err != nil {
		return err
	}
	tb := p.targetBank()
	switch {
	case sw.Active == tb && sw.Version == p.rec.Image.Version:
		p.observe(Update{Kind: Info, Step: journal.StepBoot, Text: fmt.Sprintf("running %s from %s (%s, %d tries left)",
			sw.Version, sw.Active, sw.Banks[tb].State, sw.TriesLeft)})
		return nil
	case sw.Active == p.baseBank():
		return p.revertedFailure(journal.StepBoot, sw)
	}
	return fail(journal.StepBoot, CauseWrongState, "the device came back running %q from %s; expected %s from %s",
		sw.Version, sw.Active, p.rec.Image.Version, tb)
}

// revertedFailure is the verdict on a device that went back to its
// previous software by itself: the upgrade failed, whatever the steps
// before said.
func (p *Procedure) revertedFailure(step journal.Step, sw device.Software) *Failure {
	tb := p.targetBank()
	text := fmt.Sprintf("the device reverted by itself: %s in %s did not pass its trial boots (the bank is now %s); it runs %s from %s again",
		p.rec.Image.Version, tb, sw.Banks[tb].State, sw.Version, sw.Active)
	if p.reverted != nil {
		text += "; iadBootRevertedNotify received"
	}
	return fail(step, CauseReverted, "%s", text)
}

// commit waits until the device commits the new software after its
// health check, or reverts.
func (p *Procedure) commit(ctx context.Context) error {
	budget := p.opts.Timeouts.Commit
	dl := time.NewTimer(budget)
	defer dl.Stop()
	t := p.newTicker()
	defer t.stop()
	tb := p.targetBank()
	var last error
	var lastSW *device.Software
	p.observe(Update{Kind: Info, Step: journal.StepCommit, Text: "waiting for the device to commit " + p.rec.Image.Version})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-dl.C:
			if lastSW != nil {
				return fail(journal.StepCommit, CauseNotCommitted, "%s was not committed within %v (%s is %s, %d tries left)",
					p.rec.Image.Version, budget, tb, lastSW.Banks[tb].State, lastSW.TriesLeft)
			}
			return fail(journal.StepCommit, CauseNotCommitted, "%s was not committed within %v (last poll: %v)", p.rec.Image.Version, budget, last)
		case ev := <-p.eventC():
			p.note(ev)
			if ev.Kind == traps.BootReverted && ev.Exact {
				e := ev
				p.reverted = &e
			}
			t.soon()
			continue
		case <-t.timer.C:
		}
		sw, err := p.dev.Software(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			last = err
		case sw.Active == tb && sw.Version == p.rec.Image.Version && sw.Banks[tb].State == mib.BankActive:
			p.observe(Update{Kind: Info, Step: journal.StepCommit, Text: fmt.Sprintf("%s committed in %s", sw.Version, tb)})
			return nil
		case sw.Active == p.baseBank():
			return p.revertedFailure(journal.StepCommit, sw)
		default:
			lastSW = &sw
		}
		t.next()
	}
}

// formatReader is a device that publishes its running configuration
// format (iadConfigFormat.0); such a device converts a restored
// configuration itself.
type formatReader interface {
	ConfigFormat(ctx context.Context) (format uint32, known bool, err error)
}

// targetFormat returns the configuration format of the software the
// device runs now, and whether the device converts restores itself.
func (p *Procedure) targetFormat(ctx context.Context) (uint32, bool, error) {
	if fr, ok := p.dev.(formatReader); ok {
		f, known, err := fr.ConfigFormat(ctx)
		if err != nil {
			return 0, false, err
		}
		if known {
			return f, true, nil
		}
	}
	f, err := p.opts.Format.TargetFormat(ctx)
	return f, false, err
}

// restore puts the backup back. If the new software expects another
// configuration format, the operator's converter (Converter) converts it
// at the station; otherwise a device that converts restores itself gets
// it as it is (with iadOpForce when the operator allowed a major step);
// otherwise the Fallback (the operator by hand) converts it.
func (p *Procedure) restore(ctx context.Context, attempt int) error {
	b := p.rec.Backup
	if b == nil {
		f := fail(journal.StepRestore, CauseWrongState, "no backup was recorded for this run")
		f.final = true
		return f
	}
	to, deviceConverts, err := p.targetFormat(ctx)
	if err != nil {
		return fail(journal.StepRestore, CauseConversion, "cannot tell the new software's configuration format: %v", err)
	}
	file := b.File
	force := p.opts.ForceConvert || p.rec.Force
	converted := fmt.Sprintf("%s-restore-%d-format%d.tar", p.rec.RunID, attempt, to)
	switch {
	case b.Encrypted && deviceConverts:
		p.observe(Update{Kind: Info, Step: journal.StepRestore, Text: fmt.Sprintf("the backup is encrypted; the device decrypts it and converts it to format %d if needed", to)})
	case b.Encrypted:
		p.observe(Update{Kind: Info, Step: journal.StepRestore, Text: "the backup is encrypted; restoring it as it is"})
	case b.ConfigFormat == to:
	case p.opts.Converter != nil:
		if err := p.convertBackup(ctx, p.opts.Converter, b, converted, to); err != nil {
			return err
		}
		file = converted
	case deviceConverts:
		p.observe(Update{Kind: Info, Step: journal.StepRestore, Text: fmt.Sprintf("the device converts the backup from configuration format %d to %d", b.ConfigFormat, to)})
	case p.opts.Fallback != nil:
		if err := p.convertBackup(ctx, p.opts.Fallback, b, converted, to); err != nil {
			return err
		}
		file = converted
	default:
		return fail(journal.StepRestore, CauseConversion, "the backup is configuration format %d and %s expects format %d, "+
			"but the device does not convert and no converter is configured (--convert)", b.ConfigFormat, p.rec.Image.Version, to)
	}
	name, err := p.files.PublishBackup(ctx, p.opts.Device, file, p.opts.Addr.Addr())
	if err != nil {
		return fail(journal.StepRestore, CauseRefused, "cannot serve the backup: %v", err)
	}
	_, err = p.runOp(ctx, journal.StepRestore, device.Request{Type: mib.OpRestoreConfig, File: name, Force: force}, p.opts.Timeouts.Restore)
	var f *Failure
	switch {
	case errors.As(err, &f) && f.Cause == mib.FailConfigTooNew.String():
		f.final = true
		return f
	case errors.As(err, &f) && f.Cause == mib.FailConfigMajorMismatch.String() && !force:
		f.Text += " (a restore across a major format version needs the operator's consent: --force-convert)"
		return f
	case err != nil:
		return err
	}
	p.rec.RestoreFile = file
	if sw, err := p.dev.Software(ctx); err == nil {
		p.rec.FinalVersion = sw.Version
	}
	return nil
}

// convertBackup makes file, the backup converted to format to, unless a
// resumed run made it already.
func (p *Procedure) convertBackup(ctx context.Context, conv convert.Converter, b *journal.Backup, file string, to uint32) error {
	if rc, err := p.files.OpenBackup(ctx, p.opts.Device, file); err == nil {
		rc.Close()
		return nil
	}
	p.observe(Update{Kind: Info, Step: journal.StepRestore, Text: fmt.Sprintf("converting the backup from configuration format %d to %d", b.ConfigFormat, to)})
	src, err := p.files.OpenBackup(ctx, p.opts.Device, b.File)
	if err != nil {
		return fail(journal.StepRestore, CauseBackup, "cannot read the backup: %v", err)
	}
	defer src.Close()
	pr, pw := io.Pipe()
	convErr := make(chan error, 1)
	go func() {
		_, err := convert.Archive(ctx, src, pw, convert.Plan{From: b.ConfigFormat, To: to, Version: p.rec.Image.Version}, conv, p.opts.WorkDir)
		pw.CloseWithError(err)
		convErr <- err
	}()
	serr := p.files.StoreBackup(ctx, p.opts.Device, file, pr)
	pr.CloseWithError(errors.New("store ended"))
	cerr := <-convErr
	switch {
	case errors.Is(cerr, convert.ErrDeclined):
		f := fail(journal.StepRestore, CauseConversion, "the operator did not confirm the converted configuration")
		f.final, f.declined = true, true
		return f
	case cerr != nil:
		return fail(journal.StepRestore, CauseConversion, "converting the backup from format %d to %d: %v", b.ConfigFormat, to, cerr)
	case serr != nil:
		return fail(journal.StepRestore, CauseConversion, "storing the converted backup: %v", serr)
	}
	return nil
}

// revert brings the device back to the software it ran before the run:
// a revert operation disarms a pending trial or selects the previous
// bank, and a reset runs it if the device runs the new one.
func (p *Procedure) revert(ctx context.Context) error {
	base := p.baseBank()
	for range 4 {
		sw, err := p.software(ctx, journal.StepRevert, p.opts.Timeouts.Reset)
		if err != nil {
			return err
		}
		if sw.Active == base && sw.Next == base {
			p.observe(Update{Kind: Info, Step: journal.StepRevert, Text: fmt.Sprintf("the device runs %s from %s with nothing armed", sw.Version, sw.Active)})
			return nil
		}
		if sw.Next != base {
			_, err := p.runOp(ctx, journal.StepRevert, device.Request{Type: mib.OpRevert}, p.opts.Timeouts.Revert)
			var f *Failure
			if err != nil && !(errors.As(err, &f) && f.Cause == mib.FailNoFallback.String()) {
				return err
			}
			p.rec.Pending = nil
			if err := p.save(ctx); err != nil {
				return err
			}
			continue
		}
		if err := p.resetAndWait(ctx, journal.StepRevert); err != nil {
			return err
		}
	}
	return fail(journal.StepRevert, CauseWrongState, "the device does not return to %s", base)
}
