package procedure

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/device"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/traps"
	"github.com/iadsafe/iad-agent/mib"
)

// minPollGap keeps notification-triggered polls from flooding a device.
const minPollGap = 50 * time.Millisecond

// ticker yields poll times: every Poll, and soon after a hint.
type ticker struct {
	p     *Procedure
	timer *time.Timer
}

func (p *Procedure) newTicker() *ticker { return &ticker{p: p, timer: time.NewTimer(0)} }

func (t *ticker) stop() { t.timer.Stop() }

// next schedules the next poll after the regular interval.
func (t *ticker) next() {
	t.p.lastPoll = time.Now()
	t.timer.Reset(t.p.opts.Poll)
}

// soon schedules a poll as soon as minPollGap allows.
func (t *ticker) soon() {
	wait := minPollGap - time.Since(t.p.lastPoll)
	if wait < 0 {
		wait = 0
	}
	t.timer.Reset(wait)
}

func (p *Procedure) eventC() <-chan traps.Event {
	if p.events == nil {
		return nil
	}
	return p.events.C()
}

// note reports a notification to the observer, if it surely concerns
// this device (a hint shared by several devices only makes it poll).
func (p *Procedure) note(ev traps.Event) {
	if ev.Kind == traps.OpProgress || !ev.Exact {
		return
	}
	p.observe(Update{Kind: Notification, Step: p.rec.Step, Text: ev.String()})
}

// software reads the device's software state, retrying until deadline;
// unreachable devices (restarting, say) are waited for.
func (p *Procedure) software(ctx context.Context, step journal.Step, budget time.Duration) (device.Software, error) {
	deadline := time.Now().Add(budget)
	t := p.newTicker()
	defer t.stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			return device.Software{}, ctx.Err()
		case ev := <-p.eventC():
			p.note(ev)
			continue
		case <-t.timer.C:
		}
		sw, err := p.dev.Software(ctx)
		if err == nil {
			return sw, nil
		}
		if ctx.Err() != nil {
			return device.Software{}, ctx.Err()
		}
		if errors.Is(err, device.ErrNotIAD) {
			return device.Software{}, fail(step, CauseNotIAD, "%v", err)
		}
		last = err
		if time.Now().After(deadline) {
			return device.Software{}, fail(step, CauseUnreachable, "no answer from the device within %v: %v", budget, last)
		}
		t.next()
	}
}

// runOp starts (or, when resuming, adopts) an operation row for step and
// waits for its outcome. It returns the completed row or a *Failure.
func (p *Procedure) runOp(ctx context.Context, step journal.Step, req device.Request, timeout time.Duration) (device.Op, error) {
	deadline := time.Now().Add(timeout + opGrace)
	req.Timeout = timeout
	if req.Type == mib.OpBackupConfig || req.Type == mib.OpUpgrade || req.Type == mib.OpRestoreConfig {
		loc := p.files.Location()
		req.Protocol, req.Server, req.User, req.Password = loc.Protocol, loc.Server, loc.User, loc.Password
	}
	var idx uint32
	adopted := false
	if pd := p.rec.Pending; pd != nil && pd.Step == step && pd.Type == int(req.Type) {
		idx, adopted = pd.Index, true
		req.File = pd.File
	} else {
		idx = newIndex()
		p.rec.Pending = &journal.Pending{Index: idx, Type: int(req.Type), Step: step, File: req.File, Started: p.opts.Now()}
		if err := p.save(ctx); err != nil {
			return device.Op{}, err
		}
	}
	if p.events != nil {
		p.events.Watch(idx)
	}
	op, err := p.ensureStarted(ctx, step, idx, req, adopted, deadline)
	if err != nil {
		return device.Op{}, err
	}
	if !op.Done() {
		op, err = p.waitOp(ctx, step, idx, deadline, timeout)
		if err != nil {
			var f *Failure
			if errors.As(err, &f) {
				f.adopted = adopted
			}
			return device.Op{}, err
		}
	}
	if op.State == mib.OpFailed {
		f := fail(step, op.FailCause.String(), "%s", op.FailText)
		f.adopted = adopted
		return op, f
	}
	return op, nil
}

// ensureStarted makes sure row idx exists: it reads it first when
// adopting, and after a SET whose answer was lost.
func (p *Procedure) ensureStarted(ctx context.Context, step journal.Step, idx uint32, req device.Request, adopted bool, deadline time.Time) (device.Op, error) {
	t := p.newTicker()
	defer t.stop()
	check := adopted
	var last error
	for {
		select {
		case <-ctx.Done():
			return device.Op{}, ctx.Err()
		case ev := <-p.eventC():
			p.note(ev)
			continue
		case <-t.timer.C:
		}
		if check {
			op, err := p.dev.Op(ctx, idx)
			switch {
			case err == nil:
				p.log.Info("operation row found", "index", idx, "type", op.Type, "state", op.State)
				return op, nil
			case errors.Is(err, device.ErrNoSuchOp):
				// Not there: (re)send the SET.
			default:
				last = err
				if time.Now().After(deadline) {
					return device.Op{}, fail(step, CauseUnreachable, "could not start %s: %v", req.Type, last)
				}
				t.next()
				continue
			}
		}
		err := p.dev.StartOp(ctx, idx, req)
		if err == nil {
			p.log.Info("operation started", "index", idx, "type", req.Type, "file", req.File)
			return device.Op{Index: idx, Type: req.Type, State: mib.OpRunning}, nil
		}
		if ctx.Err() != nil {
			return device.Op{}, ctx.Err()
		}
		check = true
		last = err
		if errors.Is(err, device.ErrRefused) {
			// A SET refused outright may still be the echo of an earlier
			// one that created the row: look once more, then give up.
			if op, gerr := p.dev.Op(ctx, idx); gerr == nil {
				return op, nil
			}
			return device.Op{}, fail(step, CauseRefused, "the device refused to start %s: %v", req.Type, err)
		}
		if time.Now().After(deadline) {
			return device.Op{}, fail(step, CauseUnreachable, "could not start %s: %v", req.Type, last)
		}
		t.next()
	}
}

// waitOp polls row idx (and listens for its notifications) until it
// completes or deadline passes.
func (p *Procedure) waitOp(ctx context.Context, step journal.Step, idx uint32, deadline time.Time, budget time.Duration) (device.Op, error) {
	t := p.newTicker()
	defer t.stop()
	t.next()
	dl := time.NewTimer(time.Until(deadline))
	defer dl.Stop()
	var last error
	var lastPct uint32 = 101
	missing := 0
	for {
		select {
		case <-ctx.Done():
			return device.Op{}, ctx.Err()
		case <-dl.C:
			msg := fmt.Sprintf("no result within %v", budget+opGrace)
			if last != nil {
				msg += fmt.Sprintf(" (last poll: %v)", last)
			}
			return device.Op{}, fail(step, CauseTimeout, "%s", msg)
		case ev := <-p.eventC():
			if ev.Index == idx {
				if ev.Kind == traps.OpProgress && ev.Progress != lastPct {
					lastPct = ev.Progress
					p.observe(Update{Kind: Progress, Step: step, Percent: ev.Progress, Bytes: ev.Bytes})
				}
				if ev.Kind == traps.OpCompleted {
					p.note(ev)
					if ev.State == mib.OpFailed {
						// A failure report is final: no need to poll.
						return device.Op{Index: idx, Type: ev.OpType, State: mib.OpFailed, FailCause: ev.FailCause, FailText: ev.FailText}, nil
					}
					t.soon()
				}
				continue
			}
			p.note(ev)
			t.soon()
			continue
		case <-t.timer.C:
		}
		op, err := p.dev.Op(ctx, idx)
		switch {
		case err == nil:
			missing = 0
			if op.Progress != lastPct && !op.Done() {
				lastPct = op.Progress
				p.observe(Update{Kind: Progress, Step: step, Percent: op.Progress, Bytes: op.Bytes})
			}
			if op.Done() {
				return op, nil
			}
		case errors.Is(err, device.ErrNoSuchOp):
			missing++
			if missing >= 3 {
				return device.Op{}, fail(step, CauseWrongState, "operation row %d disappeared from the device", idx)
			}
		case ctx.Err() != nil:
			return device.Op{}, ctx.Err()
		default:
			last = err
		}
		t.next()
	}
}

// restartSlack is how much later than recorded a device's boot time must
// be to count as a restart (sysUpTime has 10 ms resolution, and two
// readings of it straddle network delays).
const restartSlack = 2 * time.Second

// waitRestart waits until the device has restarted after the reset row
// in mark: the row reads successful (only a restarted agent marks it so),
// or, if the row is gone, the device's boot time is later than recorded.
func (p *Procedure) waitRestart(ctx context.Context, step journal.Step, mark *journal.ResetMark, deadline time.Time, budget time.Duration) error {
	t := p.newTicker()
	defer t.stop()
	dl := time.NewTimer(time.Until(deadline))
	defer dl.Stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-dl.C:
			msg := fmt.Sprintf("the device did not come back within %v after the reset", budget)
			if last != nil {
				msg += fmt.Sprintf(" (last poll: %v)", last)
			}
			return fail(step, CauseTimeout, "%s", msg)
		case ev := <-p.eventC():
			p.note(ev)
			if ev.Index == mark.Index && ev.Kind == traps.OpCompleted && ev.State == mib.OpFailed {
				return fail(step, ev.FailCause.String(), "%s", ev.FailText)
			}
			t.soon()
			continue
		case <-t.timer.C:
		}
		op, err := p.dev.Op(ctx, mark.Index)
		switch {
		case err == nil && op.State == mib.OpSuccessful:
			return nil
		case err == nil && op.State == mib.OpFailed:
			return fail(step, op.FailCause.String(), "%s", op.FailText)
		case err == nil:
			// Still running: the restart has not happened yet.
		case errors.Is(err, device.ErrNoSuchOp):
			sw, serr := p.dev.Software(ctx)
			if serr == nil && sw.BootedNear.After(mark.BootedAt.Add(restartSlack)) {
				return nil
			}
			if serr == nil {
				return fail(step, CauseWrongState, "the reset row %d is gone and the device has not restarted", mark.Index)
			}
			last = serr
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			last = err
		}
		t.next()
	}
}
