package procedure

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/device"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/mib"
)

// rig is a procedure on a fake device.
type rig struct {
	dev   *fakeDevice
	files *fakeFiles
	opts  Options
	mu    sync.Mutex
	log   []Update
}

func newRig(t *testing.T) *rig {
	files := newFiles(t)
	r := &rig{files: files, dev: newFake(t, files)}
	r.opts = Options{
		Device: "dev1", Addr: netip.MustParseAddrPort("192.0.2.1:161"), CredRef: "lab",
		Image:    journal.Image{Path: "/images/v2.img", Version: "2.0.0", ConfigFormat: 1, SHA256: "aa"},
		Hardware: "hw1",
		Timeouts: Timeouts{Preflight: 200 * time.Millisecond, Backup: time.Second, Upgrade: time.Second, Reset: time.Second,
			Commit: 300 * time.Millisecond, Restore: time.Second, Revert: time.Second},
		Poll:     2 * time.Millisecond,
		WorkDir:  t.TempDir(),
		Observer: ObserverFunc(r.observe),
	}
	return r
}

func (r *rig) observe(u Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, u)
}

func (r *rig) run(t *testing.T) journal.Run {
	t.Helper()
	rec, err := New(r.opts, r.dev, r.files, nil).Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rec
}

// steps summarises the results: "backup upgrade! revert upgrade ..."
// with "!" after a failed attempt.
func steps(rec journal.Run) string {
	var s []string
	for _, res := range rec.Results {
		x := string(res.Step)
		if !res.OK {
			x += "!"
		}
		s = append(s, x)
	}
	return strings.Join(s, " ")
}

// noAsk fails the test if a decider is consulted.
type noAsk struct{ t *testing.T }

func (n noAsk) Retry(context.Context, Question) (Decision, error) {
	n.t.Errorf("the decider was asked")
	return Decision{}, nil
}

func TestGoldenPath(t *testing.T) {
	r := newRig(t)
	r.opts.Decider = noAsk{t}
	rec := r.run(t)
	if rec.Status != journal.Succeeded || rec.FinalVersion != "2.0.0" || rec.Baseline.Version != "1.0.0" {
		t.Fatalf("got %s %q final %s", rec.Status, rec.Reason, rec.FinalVersion)
	}
	if got, want := steps(rec), "preflight backup upgrade reset boot commit restore"; got != want {
		t.Errorf("steps: got %s, want %s", got, want)
	}
	if got, want := r.dev.startedTypes(), "[backupConfig upgrade reset restoreConfig]"; got != want {
		t.Errorf("operations: got %s, want %s", got, want)
	}
	if rec.Pending != nil || rec.Backup == nil || rec.Backup.ConfigFormat != 1 {
		t.Errorf("record: pending %+v backup %+v", rec.Pending, rec.Backup)
	}
}

// TestFailedUpgradeRetried: a failed upgrade is retried after making sure
// the device runs its previous software; nothing was armed, so no revert
// operation is needed.
func TestFailedUpgradeRetried(t *testing.T) {
	r := newRig(t)
	r.dev.failNext[mib.OpUpgrade] = []mib.FailCause{mib.FailImageCorrupt}
	r.opts.Decider = Retries{N: 1}
	rec := r.run(t)
	if rec.Status != journal.Succeeded {
		t.Fatalf("got %s: %s", rec.Status, rec.Reason)
	}
	if got, want := steps(rec), "preflight backup upgrade! revert upgrade reset boot commit restore"; got != want {
		t.Errorf("steps: got %s, want %s", got, want)
	}
	if got, want := r.dev.startedTypes(), "[backupConfig upgrade upgrade reset restoreConfig]"; got != want {
		t.Errorf("operations: got %s, want %s", got, want)
	}
}

// TestRevertNeverSelectsOlderSoftware: the other bank holds valid older
// software and the upgrade failed before writing; the revert before the
// retry must leave the device on its running bank, not "revert" to the
// older bank.
func TestRevertNeverSelectsOlderSoftware(t *testing.T) {
	r := newRig(t)
	r.dev.banks[mib.BankB] = fakeBank{"0.9.0", mib.BankValid}
	r.dev.failNext[mib.OpUpgrade] = []mib.FailCause{mib.FailServerUnreachable}
	r.opts.Decider = Retries{N: 1}
	rec := r.run(t)
	if rec.Status != journal.Succeeded || strings.Contains(r.dev.startedTypes(), "revert") {
		t.Fatalf("got %s (%s), operations %s: want success without a revert operation", rec.Status, rec.Reason, r.dev.startedTypes())
	}
}

// TestCommitTimeoutRevertsThenRetries: the new software runs but never
// commits; before trying again, the device is reverted (revert operation,
// then a reset to run the previous bank).
func TestCommitTimeoutRevertsThenRetries(t *testing.T) {
	r := newRig(t)
	r.dev.commitFrom = 2 // the first trial boot never commits
	r.opts.Decider = Retries{N: 1}
	rec := r.run(t)
	if rec.Status != journal.Succeeded {
		t.Fatalf("got %s: %s", rec.Status, rec.Reason)
	}
	if got, want := steps(rec), "preflight backup upgrade reset boot commit! revert upgrade reset boot commit restore"; got != want {
		t.Errorf("steps: got %s, want %s", got, want)
	}
	if got, want := r.dev.startedTypes(), "[backupConfig upgrade reset revert reset upgrade reset restoreConfig]"; got != want {
		t.Errorf("operations: got %s, want %s", got, want)
	}
	for _, res := range rec.Results {
		if res.Step == journal.StepCommit && !res.OK && res.Cause != CauseNotCommitted {
			t.Errorf("commit failure cause %s", res.Cause)
		}
	}
}

// TestRevertedBySelf: the trial boot fails and the device goes back by
// itself; that is a failed upgrade, with the reason.
func TestRevertedBySelf(t *testing.T) {
	r := newRig(t)
	r.dev.trialFails = true
	rec := r.run(t)
	if rec.Status != journal.Failed || !strings.Contains(rec.Reason, "upgrade FAILED: boot failed: reverted: the device reverted by itself") ||
		!strings.Contains(rec.Reason, "it runs 1.0.0 from bankA again") || rec.FinalVersion != "1.0.0" {
		t.Fatalf("got %s final %s: %q", rec.Status, rec.FinalVersion, rec.Reason)
	}
	if strings.Contains(r.dev.startedTypes(), "restoreConfig") {
		t.Errorf("restored after a failed upgrade: %s", r.dev.startedTypes())
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(r *rig)
		want  string
	}{
		{"uncommitted trial", func(r *rig) {
			r.dev.banks[mib.BankB] = fakeBank{"1.5.0", mib.BankValid}
			r.dev.trial, r.dev.running, r.dev.tries = mib.BankB, mib.BankB, 1
		}, "preflight failed: uncommittedTrial: the device runs 1.5.0 from bankB on trial"},
		{"other hardware", func(r *rig) { r.dev.hw = "hw2" }, `preflight failed: imageIncompatible: the image is for hardware "hw1"; the device is "hw2"`},
		{"read-only credentials", func(r *rig) { r.dev.readOnly = true }, "preflight failed: noWriteAccess: the device answers reads but not a write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.opts.Decider = noAsk{t}
			tc.setup(r)
			rec := r.run(t)
			if rec.Status != journal.Failed || !strings.HasPrefix(rec.Reason, tc.want) {
				t.Fatalf("got %s %q, want failed: %s", rec.Status, rec.Reason, tc.want)
			}
			if ops := r.dev.startedTypes(); ops != "[]" {
				t.Errorf("operations started: %s", ops)
			}
		})
	}
}

func TestUpToDate(t *testing.T) {
	r := newRig(t)
	r.dev.banks[mib.BankA].version = "2.0.0"
	rec := r.run(t)
	if rec.Status != journal.UpToDate || rec.Step != journal.StepDone || r.dev.startedTypes() != "[]" {
		t.Fatalf("got %s at %s, operations %s", rec.Status, rec.Step, r.dev.startedTypes())
	}
	r.opts.Force = true
	if rec := r.run(t); rec.Status != journal.Succeeded {
		t.Errorf("with Force: %s %s", rec.Status, rec.Reason)
	}
}

// TestLostAnswer: the SET creating a row is applied but its answer is
// lost; iadms finds the row and does not create a second one.
func TestLostAnswer(t *testing.T) {
	r := newRig(t)
	r.dev.loseAnswer[mib.OpUpgrade] = true
	r.dev.loseAnswer[mib.OpReset] = true
	rec := r.run(t)
	if rec.Status != journal.Succeeded {
		t.Fatalf("got %s: %s", rec.Status, rec.Reason)
	}
	if got, want := r.dev.startedTypes(), "[backupConfig upgrade reset restoreConfig]"; got != want {
		t.Errorf("operations: got %s, want %s", got, want)
	}
}

func TestUnreachable(t *testing.T) {
	r := newRig(t)
	r.dev.down = 1 << 30
	rec := r.run(t)
	if rec.Status != journal.Failed || !strings.Contains(rec.Reason, "preflight failed: unreachable: no answer from the device within 200ms") {
		t.Fatalf("got %s %q", rec.Status, rec.Reason)
	}
	// A device that comes back within the time is simply waited for.
	r = newRig(t)
	r.dev.down = 5
	if rec := r.run(t); rec.Status != journal.Succeeded {
		t.Errorf("briefly unreachable: got %s %q", rec.Status, rec.Reason)
	}
}

func TestOperatorDeclines(t *testing.T) {
	r := newRig(t)
	r.dev.failNext[mib.OpRestoreConfig] = []mib.FailCause{mib.FailConfigInvalid}
	var asked string
	r.opts.Decider = Ask{Prompt: func(_ context.Context, q string) (bool, error) { asked = q; return false, nil }}
	rec := r.run(t)
	if rec.Status != journal.Stopped || !strings.Contains(rec.Reason, "operator declined") {
		t.Fatalf("got %s %q", rec.Status, rec.Reason)
	}
	if !strings.Contains(asked, "dev1: restore failed: configInvalid: scripted configInvalid\nRetry the restore?") {
		t.Errorf("question: %q", asked)
	}
}

func TestRetriesRunOut(t *testing.T) {
	r := newRig(t)
	r.dev.failNext[mib.OpBackupConfig] = []mib.FailCause{mib.FailTimeout, mib.FailTimeout, mib.FailTimeout}
	r.opts.Decider = Retries{N: 2}
	rec := r.run(t)
	if rec.Status != journal.Failed || !strings.Contains(rec.Reason, "backup failed: timeout") || !strings.Contains(rec.Reason, "2 retries used up") {
		t.Fatalf("got %s %q", rec.Status, rec.Reason)
	}
	if got := steps(rec); got != "preflight backup! backup! backup!" {
		t.Errorf("steps: %s", got)
	}
}

// TestResume: iadms stops right after sending the reset; a new procedure
// on the same journal adopts that reset, repeats nothing, and finishes.
func TestResume(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	j, err := journal.Open(ctx, filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	r.opts.Journal = j
	r.opts.Observer = ObserverFunc(func(u Update) {
		if u.Kind == Info && strings.HasPrefix(u.Text, "reset sent") {
			// iadms dies; the device goes on with the reset meanwhile.
			r.dev.mu.Lock()
			r.dev.down = 1 << 30
			r.dev.mu.Unlock()
			cancel()
		}
	})
	_, err = New(r.opts, r.dev, r.files, nil).Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: got %v, want canceled", err)
	}
	saved, _, _ := j.Get(context.Background(), "dev1")
	if saved.Step != journal.StepReset || saved.Reset == nil || saved.Reset.Confirmed {
		t.Fatalf("journal after the stop: step %s reset %+v", saved.Step, saved.Reset)
	}
	r.opts.Observer = nil
	r.dev.down = 0
	rec, err := New(r.opts, r.dev, r.files, nil).Run(context.Background())
	if err != nil || rec.Status != journal.Succeeded || rec.Resumed != 1 || rec.RunID != saved.RunID {
		t.Fatalf("resumed run: %s %q resumed %d, %v", rec.Status, rec.Reason, rec.Resumed, err)
	}
	if got, want := r.dev.startedTypes(), "[backupConfig upgrade reset restoreConfig]"; got != want {
		t.Errorf("operations: got %s, want %s", got, want)
	}
	// Another image while a run is unfinished is refused.
	r.opts.Image.SHA256 = "bb"
	saved.Status, saved.Step = journal.Running, journal.StepCommit
	j.Put(context.Background(), saved)
	if _, err := New(r.opts, r.dev, r.files, nil).Run(context.Background()); !errors.Is(err, ErrOtherRun) {
		t.Errorf("another image: got %v, want ErrOtherRun", err)
	}
}

// TestFreeRetryAfterResume: an operation the previous iadms started
// failed because the embedded server went away with it; the resumed run
// redoes the step without counting it as the device's failure.
func TestFreeRetryAfterResume(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	j, err := journal.Open(ctx, filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	r.opts.Journal = j
	now := time.Now()
	if err := r.dev.StartOp(ctx, 4242, device.Request{Type: mib.OpBackupConfig, File: "cfg/dev1/old-backup-1.tar"}); err != nil {
		t.Fatal(err)
	}
	r.dev.ops[4242].State, r.dev.ops[4242].FailCause = mib.OpFailed, mib.FailServerUnreachable
	j.Put(ctx, journal.Run{
		Device: "dev1", RunID: "old", Image: r.opts.Image, Started: now, Status: journal.Running, Step: journal.StepBackup,
		Baseline: &journal.Baseline{Version: "1.0.0", Bank: 1}, Attempts: map[journal.Step]int{journal.StepBackup: 1},
		Pending: &journal.Pending{Index: 4242, Type: int(mib.OpBackupConfig), Step: journal.StepBackup, File: "cfg/dev1/old-backup-1.tar", Started: now},
	})
	r.opts.Decider = noAsk{t}
	rec, err := New(r.opts, r.dev, r.files, nil).Run(ctx)
	if err != nil || rec.Status != journal.Succeeded || rec.Failures[journal.StepBackup] != 0 {
		t.Fatalf("got %s %q failures %v, %v", rec.Status, rec.Reason, rec.Failures, err)
	}
	if got := steps(rec); got != "backup! backup upgrade reset boot commit restore" {
		t.Errorf("steps: %s", got)
	}
}

func TestDeciders(t *testing.T) {
	q := Question{Device: "d", Step: journal.StepCommit, Group: journal.StepUpgrade, Failures: 2, Failure: Failure{Cause: "reverted", Text: "x"}}
	if d, _ := (Retries{N: 1}).Retry(context.Background(), q); d.Retry {
		t.Errorf("Retries{1} at the second failure: %+v", d)
	}
	if d, _ := (Retries{N: 2}).Retry(context.Background(), q); !d.Retry || d.Why != "retry 2 of 2" {
		t.Errorf("Retries{2}: %+v", d)
	}
	var asked string
	a := Ask{Prompt: func(_ context.Context, s string) (bool, error) { asked = s; return true, nil }, Max: 3}
	if d, _ := a.Retry(context.Background(), q); !d.Retry || !strings.Contains(asked, "Retry the upgrade (the device is first reverted to its previous software)?") {
		t.Errorf("Ask: %+v %q", d, asked)
	}
	a.Max = 1
	if d, _ := a.Retry(context.Background(), q); d.Retry {
		t.Errorf("Ask beyond Max: %+v", d)
	}
	if d, _ := (Never{}).Retry(context.Background(), q); d.Retry {
		t.Errorf("Never: %+v", d)
	}
	if g := fmt.Sprint(group(journal.StepBoot), " ", group(journal.StepRestore)); g != "upgrade restore" {
		t.Errorf("groups: %s", g)
	}
}
