package agent

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/journal"
	"github.com/iadsafe/iad-agent/agent/transfer"
	"github.com/iadsafe/iad-agent/mib"
)

// Default whole-operation timeouts, used when iadOpTimeout is 0.
var defaultTimeouts = map[mib.OpType]time.Duration{
	mib.OpBackupConfig:  5 * time.Minute,
	mib.OpUpgrade:       30 * time.Minute,
	mib.OpRestoreConfig: 5 * time.Minute,
	mib.OpReset:         time.Minute,
	mib.OpRevert:        time.Minute,
}

// row is one iadOpTable row: its journalled part plus what is never
// written to disk.
type row struct {
	journal.Op
	password string // never journalled, never readable

	total      int64 // expected bytes, 0 if unknown
	lastPct    uint32
	lastNotify time.Time
	notified   bool
}

// started reports whether the row's operation has been started.
func (r *row) started() bool { return r.State != mib.OpWaiting }

// complete reports whether the row carries everything its type needs.
func (r *row) complete() error {
	switch r.Type {
	case mib.OpReset, mib.OpRevert:
		return nil
	case mib.OpBackupConfig, mib.OpUpgrade, mib.OpRestoreConfig:
	default:
		return fmt.Errorf("iadOpType is not set")
	}
	if !r.Protocol.Valid() {
		return fmt.Errorf("iadOpProtocol is not valid")
	}
	if _, err := r.serverAddr(); err != nil {
		return err
	}
	if r.File == "" {
		return fmt.Errorf("iadOpFileName is empty")
	}
	return nil
}

func (r *row) serverAddr() (netip.Addr, error) {
	switch r.AddrType {
	case mib.InetIPv4:
		if len(r.Addr) != 4 {
			return netip.Addr{}, fmt.Errorf("iadOpServerAddress must be 4 octets for ipv4, got %d", len(r.Addr))
		}
	case mib.InetIPv6:
		if len(r.Addr) != 16 {
			return netip.Addr{}, fmt.Errorf("iadOpServerAddress must be 16 octets for ipv6, got %d", len(r.Addr))
		}
	default:
		return netip.Addr{}, fmt.Errorf("iadOpServerAddressType must be ipv4(1) or ipv6(2)")
	}
	addr, _ := netip.AddrFromSlice(r.Addr)
	return addr, nil
}

func (a *Agent) transferRequest(r *row) transfer.Request {
	addr, _ := r.serverAddr()
	return transfer.Request{
		Protocol:  transfer.Protocol(r.Protocol),
		Server:    netip.AddrPortFrom(addr, r.Port),
		File:      r.File,
		User:      r.User,
		Password:  r.password,
		BlockSize: a.opts.TFTPBlockSize,
	}
}

// recoverOps loads the journal at start-up. An operation that was running
// when the previous process died is failed/interrupted — except a reset,
// whose restart is its success.
func (a *Agent) recoverOps(ctx context.Context) error {
	ops, err := a.journal.All(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, op := range ops {
		r := &row{Op: op}
		a.rows[op.Index] = r
		if op.State != mib.OpRunning {
			continue
		}
		if op.Type == mib.OpReset || a.upgradeArmed(op) {
			r.State, r.FailCause, r.Progress = mib.OpSuccessful, mib.FailNone, 100
		} else {
			r.State, r.FailCause = mib.OpFailed, mib.FailInterrupted
			r.FailText = ErrInterrupted.Error()
		}
		r.Completed = now
		if err := a.journal.Put(ctx, r.Op); err != nil {
			return err
		}
		a.log.Warn("operation ended by restart", "index", r.Index, "type", r.Type, "state", r.State)
		idx := r.Index
		a.startup = append(a.startup, func() { a.notifyCompleted(idx) })
	}
	if a.boot.Reverted {
		a.startup = append(a.startup, a.notifyReverted)
	}
	return nil
}

// upgradeArmed reports whether an upgrade cut short by a restart had
// already armed its bank: the bank is armed for a trial, or is the trial
// this very boot runs.
func (a *Agent) upgradeArmed(op journal.Op) bool {
	if op.Type != mib.OpUpgrade || op.Arming == 0 {
		return false
	}
	s := a.banks.Snapshot()
	return uint32(s.Trial) == op.Arming
}

// startOp is called from a committed SET with the row already in a.rows.
// Exactly one operation runs at a time; a second one fails with busy.
func (a *Agent) startOp(ctx context.Context, r *row) {
	a.mu.Lock()
	r.State = mib.OpRunning
	r.RowStatus = mib.RowActive
	r.Started = time.Now()
	other := a.running
	if other == 0 {
		a.running = r.Index
	}
	a.mu.Unlock()
	if other != 0 {
		a.finish(ctx, r, fmt.Errorf("%w (operation %d)", ErrBusy, other))
		return
	}
	a.persist(ctx, r)
	a.progress(r, 0, true)
	a.opWG.Add(1)
	go func() {
		defer a.opWG.Done()
		a.run(ctx, r)
	}()
}

func (a *Agent) run(ctx context.Context, r *row) {
	timeout := time.Duration(r.Timeout) * time.Second
	if timeout == 0 {
		timeout = defaultTimeouts[r.Type]
	}
	opCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	log := a.log.With("index", r.Index, "type", r.Type)
	log.Info("operation started", "protocol", r.Protocol, "file", r.File)
	var err error
	switch r.Type {
	case mib.OpBackupConfig:
		err = a.backup(opCtx, r)
	case mib.OpUpgrade:
		err = a.upgrade(opCtx, r)
	case mib.OpRestoreConfig:
		err = a.restore(opCtx, r)
	case mib.OpReset:
		err = a.reset(opCtx, r)
		if err == nil {
			// The row completes after the restart (recoverOps).
			return
		}
	case mib.OpRevert:
		err = a.revert(opCtx, r)
	}
	if err != nil && opCtx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		err = fmt.Errorf("%w after %v: %w", context.DeadlineExceeded, timeout, err)
	}
	a.finish(ctx, r, err)
	if err != nil {
		log.Warn("operation failed", "cause", r.FailCause, "err", err)
	} else {
		log.Info("operation successful", "bytes", r.Bytes)
	}
}

// finish records the outcome durably, then notifies.
func (a *Agent) finish(ctx context.Context, r *row, err error) {
	cause, text := classify(err)
	a.mu.Lock()
	r.FailCause, r.FailText = cause, text
	if err == nil {
		r.State, r.Progress = mib.OpSuccessful, 100
	} else {
		r.State = mib.OpFailed
	}
	r.Completed = time.Now()
	if a.running == r.Index {
		a.running = 0
	}
	a.mu.Unlock()
	a.persist(context.WithoutCancel(ctx), r)
	a.notifyCompleted(r.Index)
}

// persist journals the row. A journal that cannot be written is logged:
// the operation's outcome is still readable over SNMP from memory.
func (a *Agent) persist(ctx context.Context, r *row) {
	a.mu.Lock()
	op := r.Op
	a.mu.Unlock()
	if err := a.journal.Put(ctx, op); err != nil {
		a.log.Error("journal write failed", "index", op.Index, "err", err)
	}
}

// setTotal records the expected byte count of the transfer.
func (a *Agent) setTotal(r *row, total int64) {
	a.mu.Lock()
	r.total = total
	a.mu.Unlock()
}

// progress records bytes done and sends iadOpProgressNotify at most once
// per 10 % and once per second (force sends regardless, for the start).
func (a *Agent) progress(r *row, done int64, force bool) {
	a.mu.Lock()
	r.Bytes = uint64(done)
	if r.total > 0 {
		pct := uint32(done * 100 / r.total)
		r.Progress = min(pct, 99) // 100 only when the operation succeeded
	}
	send := force || (r.Progress >= r.lastPct+10 && time.Since(r.lastNotify) >= time.Second)
	if !send {
		// Called every 64 KiB of a transfer: no garbage unless a
		// notification goes out.
		a.mu.Unlock()
		return
	}
	r.lastPct, r.lastNotify = r.Progress, time.Now()
	vars := a.opVars(r, mib.IadOpType, mib.IadOpState, mib.IadOpProgress, mib.IadOpBytes)
	a.mu.Unlock()
	a.notify.Notify(mib.IadOpProgressNotify, vars...)
}

func (a *Agent) notifyCompleted(idx uint32) {
	a.mu.Lock()
	r, ok := a.rows[idx]
	if !ok {
		a.mu.Unlock()
		return
	}
	vars := a.opVars(r, mib.IadOpType, mib.IadOpState, mib.IadOpFailCause, mib.IadOpFailText)
	a.mu.Unlock()
	a.notify.Notify(mib.IadOpCompletedNotify, vars...)
}

// opVars builds notification varbinds for row r's columns. a.mu is held.
func (a *Agent) opVars(r *row, cols ...mib.OID) []gosnmp.SnmpPDU {
	vbs := make([]gosnmp.SnmpPDU, 0, len(cols))
	for _, c := range cols {
		v, ok := opCell(r, c[len(c)-1])
		if !ok {
			continue
		}
		vbs = append(vbs, gosnmp.SnmpPDU{Name: c.Append(r.Index).Dotted(), Type: v.Type, Value: v.V})
	}
	return vbs
}

// ageRows removes completed rows once they are older than OpRetention.
func (a *Agent) ageRows(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var old []uint32
		a.mu.Lock()
		for idx, r := range a.rows {
			if (r.State == mib.OpSuccessful || r.State == mib.OpFailed) && time.Since(r.Completed) > a.opts.OpRetention {
				old = append(old, idx)
				delete(a.rows, idx)
			}
		}
		a.mu.Unlock()
		for _, idx := range old {
			if err := a.journal.Delete(ctx, idx); err != nil {
				a.log.Error("journal delete failed", "index", idx, "err", err)
			}
		}
	}
}
