package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/mib"
)

// TestResumeAfterKill stops iadms twice in the middle of an upgrade: with
// kill -9 just after it sent the reset, and with SIGINT while it waits for
// the commit. Each time the same command, run again, resumes at the step
// where iadms stopped — it adopts the reset it had sent and repeats
// nothing: the device holds exactly one row of each operation.
func TestResumeAfterKill(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{commitAfter: "1h"})
	img := s.image(t, "v2.img", "2.0.0", 1, 128<<10)
	rep := filepath.Join(s.dir, "report.json")
	args := []string{"--device", a.Target(), "--image", img, "--report", rep}

	p1 := s.start(t, "upgrade", args...)
	p1.waitFor(t, "reset sent; waiting for the device to restart")
	p1.kill9(t)

	// The second time the operator interrupts it (Ctrl-C): it stops
	// where it is and says how to go on.
	p2 := s.start(t, "upgrade", args...)
	p2.waitFor(t, "at step reset")
	p2.waitFor(t, "waiting for the device to commit 2.0.0")
	p2.interrupt(t)
	if code := p2.wait(t); code != 3 || !strings.Contains(p2.output(), "interrupted; run the same command again to resume") {
		t.Fatalf("interrupted run: exit %d, want 3 and advice:\n%s", code, p2.output())
	}

	// While no iadms runs, the device passes its health check.
	setCommitAfter(a, "1s")
	a.Kill9(t)
	a.Restart(t)

	p3 := s.start(t, "upgrade", args...)
	p3.waitFor(t, "at step commit")
	if code := p3.wait(t); code != 0 {
		t.Fatalf("third run: exit code %d, want 0:\n%s", code, p3.output())
	}
	wantRunning(t, a, "2.0.0", mib.BankB)
	counts := opCounts(t, a)
	for _, k := range []string{"backupConfig/successful", "upgrade/successful", "reset/successful", "restoreConfig/successful"} {
		if counts[k] != 1 {
			t.Errorf("agent rows: %s = %d, want 1 (all: %v)", k, counts[k], counts)
		}
	}
	if len(counts) != 4 {
		t.Errorf("agent rows: %v, want only the four successful operations", counts)
	}
	d := readReport(t, rep).Devices[0]
	if d.Status != string(journal.Succeeded) || d.Resumed != 2 {
		t.Errorf("report: status %s resumed %d, want succeeded after 2 resumptions", d.Status, d.Resumed)
	}
	t.Logf("second run:\n%s\nthird run:\n%s", p2.output(), p3.output())
	for _, out := range []string{p2.output(), p3.output()} {
		if strings.Contains(out, "backup: started") || strings.Contains(out, "upgrade: started") {
			t.Errorf("a resumed run started the backup or upgrade again:\n%s", out)
		}
	}
}
