package agent

import (
	"context"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/mib"
)

// healthCheck commits a trial boot once the agent has served SNMP for
// CommitAfter. Until then any restart spends another try, and when the
// tries run out the boot selection returns to the previous bank.
func (a *Agent) healthCheck(ctx context.Context) {
	if !a.boot.Trial {
		return
	}
	a.log.Info("trial boot: commit pending", "bank", a.boot.Slot, "after", a.opts.CommitAfter)
	select {
	case <-ctx.Done():
		return
	case <-time.After(a.opts.CommitAfter):
	}
	// Software that cannot read its configuration is not healthy: hold
	// the commit until a restore brings one of its format.
	for !a.configUsable() {
		a.log.Warn("trial boot not committed: the live configuration is not in the running software's format; restore a backup",
			"running_format", a.runningConfigFormat())
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(a.opts.CommitAfter, 5*time.Second)):
		}
	}
	committed, err := a.banks.Commit(ctx)
	if err != nil {
		a.log.Error("commit failed", "err", err)
		return
	}
	if committed {
		a.log.Info("trial boot committed", "bank", a.banks.Running(), "version", a.currentVersion())
		a.notify.Notify(mib.IadBootCommittedNotify, a.swVars()...)
	}
}

// swVars are iadSwActiveBank.0 and iadSwCurrentVersion.0.
func (a *Agent) swVars() []gosnmp.SnmpPDU {
	return []gosnmp.SnmpPDU{
		{Name: mib.IadSwActiveBank.Append(0).Dotted(), Type: gosnmp.Integer, Value: int(a.banks.Running())},
		{Name: mib.IadSwCurrentVersion.Append(0).Dotted(), Type: gosnmp.OctetString, Value: []byte(a.currentVersion())},
	}
}

// notifyReverted announces at start-up that the trial bank failed and the
// device runs the previous software again.
func (a *Agent) notifyReverted() {
	failed := a.boot.FailedSlot
	vars := a.swVars()
	if failed.Valid() {
		info := a.banks.Snapshot().Slots[failed]
		vars = append(vars,
			gosnmp.SnmpPDU{Name: mib.IadBankVersion.Append(uint32(failed)).Dotted(), Type: gosnmp.OctetString, Value: []byte(info.Version)},
			gosnmp.SnmpPDU{Name: mib.IadBankState.Append(uint32(failed)).Dotted(), Type: gosnmp.Integer, Value: int(a.banks.Status(failed))},
		)
	}
	a.notify.Notify(mib.IadBootRevertedNotify, vars...)
}
