package itest

import (
	"strconv"
	"testing"

	"github.com/iadsafe/iad-agent/mib"
)

// TestFailedBootReverts arms a trial bank whose software never commits
// (the agent is killed before its health check each time): once the boot
// limit is spent the device boots the previous bank and says so.
func TestFailedBootReverts(t *testing.T) {
	r := newRig(t, rigOptions{noFTP: true, args: []string{"-commit-after", "1h"}})
	if out, err := r.rw.Set(t, "iadSwBootLimit.0", "u", "2"); err != nil {
		t.Fatalf("setting the boot limit: %v\n%s", err, out)
	}
	r.image(t, "v2.img", "2.0.0", testHW, r.key, 1<<20)
	r.mustSucceed(t, 1, "upgrade", "tftp", "v2.img")
	if v := r.ro.GetValue(t, "iadSwTrialTriesLeft.0"); v != "2" {
		t.Fatalf("iadSwTrialTriesLeft after arming: got %s, want 2", v)
	}
	r.reset(t, 2)
	for try := 1; try <= 2; try++ {
		got := r.sw(t)
		if got.version != "2.0.0" || got.activeBank != "2" || got.stateB != strconv.Itoa(int(mib.BankTrial)) {
			t.Fatalf("trial boot %d: got %+v, want 2.0.0 on bank B in trial", try, got)
		}
		if v := r.ro.GetValue(t, "iadSwTrialTriesLeft.0"); v != strconv.Itoa(2-try) {
			t.Errorf("trial boot %d: iadSwTrialTriesLeft got %s, want %d", try, v, 2-try)
		}
		// The new software "crashes" before its health check.
		r.agent.Kill9(t)
		r.agent.Restart(t)
	}
	got := r.sw(t)
	if got.version != "1.0.0" || got.activeBank != "1" || got.stateA != strconv.Itoa(int(mib.BankActive)) || got.stateB != strconv.Itoa(int(mib.BankBad)) {
		t.Fatalf("after the tries ran out: got %+v, want 1.0.0 on bank A active, bank B bad", got)
	}
	r.waitEvents(t,
		event{oid: mib.IadOpCompletedNotify, index: 2, state: mib.OpSuccessful},
		event{oid: mib.ColdStart},
		event{oid: mib.ColdStart},
		event{oid: mib.IadBootRevertedNotify},
	)
	var reverted Trap
	for _, tr := range r.traps.Traps() {
		if tr.TrapOID == mib.IadBootRevertedNotify.String() {
			reverted = tr
		}
	}
	if v, _ := reverted.Var(mib.IadSwCurrentVersion.String() + ".0"); v != "1.0.0" {
		t.Errorf("iadBootRevertedNotify: iadSwCurrentVersion %q, want 1.0.0", v)
	}
	if v, _ := reverted.Var(mib.IadBankVersion.String() + ".2"); v != "2.0.0" {
		t.Errorf("iadBootRevertedNotify: failed bank version %q, want 2.0.0", v)
	}
	// A restart now stays on bank A.
	r.agent.Kill9(t)
	r.agent.Restart(t)
	if got := r.sw(t); got.version != "1.0.0" || got.activeBank != "1" {
		t.Fatalf("after another restart: got %+v, want 1.0.0 on bank A", got)
	}
}

// TestRevert is the management station's "go back to the previous
// software": first a pending trial is disarmed, then a committed upgrade
// is rolled back at the next reset.
func TestRevert(t *testing.T) {
	r := newRig(t, rigOptions{noFTP: true})
	r.mustFail(t, 1, mib.FailNoFallback, "revert", "", "")
	r.image(t, "v2.img", "2.0.0", testHW, r.key, 1<<20)
	r.mustSucceed(t, 2, "upgrade", "tftp", "v2.img")
	r.mustSucceed(t, 3, "revert", "", "")
	if got := r.sw(t); got.nextBank != "1" || got.version != "1.0.0" {
		t.Fatalf("revert of a pending trial: got %+v, want next bank A, still 1.0.0", got)
	}
	r.mustSucceed(t, 4, "upgrade", "tftp", "v2.img")
	r.reset(t, 5)
	r.waitBankState(t, 2, mib.BankActive)
	if got := r.sw(t); got.version != "2.0.0" {
		t.Fatalf("after upgrade and reset: got %+v, want 2.0.0", got)
	}
	r.mustSucceed(t, 6, "revert", "", "")
	if got := r.sw(t); got.nextBank != "1" {
		t.Fatalf("revert after commit: got %+v, want next bank A", got)
	}
	r.reset(t, 7)
	if got := r.sw(t); got.version != "1.0.0" || got.activeBank != "1" {
		t.Fatalf("after revert and reset: got %+v, want 1.0.0 on bank A", got)
	}
}
