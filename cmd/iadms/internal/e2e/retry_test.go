package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/mib"
)

// fault is one failure at one step: set up before the run, triggered
// while it runs, and fixed by the operator before answering yes.
type fault struct {
	name   string
	agent  agentOpts
	setup  func(t *testing.T, s *station, a *itest.Agent, img string) []string // extra flags
	inject func(t *testing.T, s *station, a *itest.Agent, p *ptyProc)
	// failed is what the failure line says; question the retry question.
	failed, question string
	fix              func(t *testing.T, s *station, a *itest.Agent)
	// attempts are the attempts each step needs in the end; ops the rows
	// the device holds at the end (checked when given).
	attempts map[string]int
	ops      map[string]int
}

var faults = []fault{
	{
		name: "backup",
		setup: func(t *testing.T, s *station, a *itest.Agent, _ string) []string {
			// A symlink in the live configuration makes the agent refuse
			// to pack it (configInvalid).
			if err := os.Symlink("/etc/hostname", filepath.Join(liveDir(a), "evil")); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		failed:   "backup: FAILED: configInvalid",
		question: "Retry the backup?",
		fix: func(t *testing.T, s *station, a *itest.Agent) {
			if err := os.Remove(filepath.Join(liveDir(a), "evil")); err != nil {
				t.Fatal(err)
			}
		},
		attempts: map[string]int{"backup": 2, "upgrade": 1, "restore": 1},
	},
	{
		name: "upgrade",
		setup: func(t *testing.T, s *station, a *itest.Agent, img string) []string {
			// An external TFTP server (tftpd-hpa) that lacks the image.
			dir, err := os.MkdirTemp("", "iadms-tftp-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			os.Chmod(dir, 0o777)
			srv := itest.StartTFTP(t, dir, true)
			s.external = dir
			return []string{"--server", "tftp://" + srv.Addr()}
		},
		failed:   "upgrade: FAILED: fileNotFound",
		question: "Retry the upgrade (the device is first reverted to its previous software)?",
		fix: func(t *testing.T, s *station, a *itest.Agent) {
			b, err := os.ReadFile(filepath.Join(s.dir, "v2.img"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(s.external, "v2.img"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		attempts: map[string]int{"backup": 1, "upgrade": 2, "revert": 1, "reset": 1, "restore": 1},
	},
	{
		name: "reset",
		setup: func(t *testing.T, s *station, a *itest.Agent, _ string) []string {
			return []string{"--timeout-reset", "6s"}
		},
		inject: func(t *testing.T, s *station, a *itest.Agent, p *ptyProc) {
			// The device loses power during the reset and stays down.
			p.expect("reset sent; waiting for the device to restart")
			a.Kill9(t)
		},
		failed:   "reset: FAILED: timeout: the device did not come back within 6s",
		question: "Retry the upgrade (the device is first reverted to its previous software)?",
		fix: func(t *testing.T, s *station, a *itest.Agent) {
			a.Restart(t) // power is back: the device boots the new software on trial
		},
		attempts: map[string]int{"backup": 1, "upgrade": 2, "revert": 1, "reset": 2, "restore": 1},
		// The device came back on the new software: before the second
		// upgrade it is reverted (revert row) and reset onto the old one.
		ops: map[string]int{"backupConfig/successful": 1, "upgrade/successful": 2, "revert/successful": 1,
			"reset/successful": 3, "restoreConfig/successful": 1},
	},
	{
		name:  "commit",
		agent: agentOpts{commitAfter: "1h"},
		setup: func(t *testing.T, s *station, a *itest.Agent, _ string) []string {
			setBootLimit(t, a, 2)
			return nil
		},
		inject: func(t *testing.T, s *station, a *itest.Agent, p *ptyProc) {
			p.expect("waiting for the device to commit 2.0.0")
			crashUntilReverted(t, a, 2)
		},
		failed:   "commit: FAILED: reverted: the device reverted by itself",
		question: "Retry the upgrade (the device is first reverted to its previous software)?",
		fix: func(t *testing.T, s *station, a *itest.Agent) {
			// The cause is found and fixed: the next software passes
			// its health check.
			setCommitAfter(a, "1s")
			a.Kill9(t)
			a.Restart(t)
		},
		attempts: map[string]int{"backup": 1, "upgrade": 2, "revert": 1, "commit": 2, "restore": 1},
	},
	{
		name:  "restore",
		agent: agentOpts{commitAfter: "1h"},
		inject: func(t *testing.T, s *station, a *itest.Agent, p *ptyProc) {
			p.expect("waiting for the device to commit 2.0.0")
			// The stored backup is damaged while the device is on trial;
			// then the device commits.
			path := backupFile(t, s)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s.saved = b
			if err := os.WriteFile(path, b[:len(b)/2], 0o600); err != nil {
				t.Fatal(err)
			}
			setCommitAfter(a, "1s")
			a.Kill9(t)
			a.Restart(t)
		},
		failed:   "restore: FAILED: configInvalid",
		question: "Retry the restore?",
		fix: func(t *testing.T, s *station, a *itest.Agent) {
			if err := os.WriteFile(backupFile(t, s), s.saved, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		attempts: map[string]int{"backup": 1, "upgrade": 1, "restore": 2},
	},
}

// backupFile is the one backup the station holds.
func backupFile(t *testing.T, s *station) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(s.state, "backups", "*", "*-backup-1.tar"))
	if err != nil || len(m) != 1 {
		t.Fatalf("backups: %v %v", m, err)
	}
	return m[0]
}

// TestRetryEachStep fails each step of an upgrade once, on an operator's
// terminal: iadms says what failed and asks; the operator fixes the cause
// and answers yes; the retry (after a revert, for a failed upgrade)
// succeeds and the device ends up upgraded with its configuration.
func TestRetryEachStep(t *testing.T) {
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			s := newStation(t)
			a := s.agent(t, f.agent)
			img := s.image(t, "v2.img", "2.0.0", 1, 128<<10)
			before := configDigest(t, liveDir(a))
			var extra []string
			if f.setup != nil {
				extra = f.setup(t, s, a, img)
			}
			rep := filepath.Join(s.dir, "report.json")
			args := append([]string{"--device", a.Target(), "--image", img, "--report", rep}, extra...)
			p := s.startPTY(t, "upgrade", args...)
			if f.inject != nil {
				f.inject(t, s, a, p)
			}
			p.expect(f.failed)
			p.expect(f.question + " [y/N] ")
			f.fix(t, s, a)
			p.answer("y")
			p.expect("finished: succeeded")
			if code := p.wait(); code != 0 {
				t.Fatalf("exit code %d, want 0; output:\n%s", code, p.output())
			}
			if testing.Verbose() {
				t.Logf("terminal:\n%s", p.output())
			}
			wantRunning(t, a, "2.0.0", mib.BankB)
			if f.name != "backup" { // the backup fault changed the configuration itself
				if got := configDigest(t, liveDir(a)); got != before {
					t.Errorf("configuration after the upgrade differs from before")
				}
			}
			d := readReport(t, rep).Devices[0]
			if d.Status != string(journal.Succeeded) {
				t.Errorf("report: status %s, want succeeded", d.Status)
			}
			got := map[string]int{}
			for _, st := range d.Steps {
				got[st.Step] = st.Attempts
			}
			for step, n := range f.attempts {
				if got[step] != n {
					t.Errorf("step %s: %d attempts, want %d (all: %v)", step, got[step], n, got)
				}
			}
			if f.ops != nil {
				if ops := opCounts(t, a); fmt.Sprint(ops) != fmt.Sprint(f.ops) {
					t.Errorf("rows on the device: got %v, want %v", ops, f.ops)
				}
			}
		})
	}
}

// TestOperatorSaysNo: the operator declines the retry; iadms stops, says
// so, and the device keeps its software untouched.
func TestOperatorSaysNo(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{})
	img := s.image(t, "v2.img", "2.0.0", 1, 128<<10)
	if err := os.Symlink("/etc/hostname", filepath.Join(liveDir(a), "evil")); err != nil {
		t.Fatal(err)
	}
	p := s.startPTY(t, "upgrade", "--device", a.Target(), "--image", img)
	p.expect("backup: FAILED: configInvalid")
	p.expect("Retry the backup? [y/N] ")
	p.answer("n")
	p.expect("finished: stopped")
	if code := p.wait(); code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, p.output())
	}
	if !strings.Contains(p.output(), "operator declined the retry") {
		t.Errorf("output does not say the operator declined:\n%s", p.output())
	}
	wantRunning(t, a, "1.0.0", mib.BankA)
	if n := opCounts(t, a)["upgrade/successful"]; n != 0 {
		t.Errorf("%d upgrade rows after the operator said no", n)
	}
	// The journal keeps the stopped run; a new command starts afresh.
	os.Remove(filepath.Join(liveDir(a), "evil"))
	r := s.run(t, "upgrade", "--device", a.Target(), "--image", img, "--retries", "0")
	if r.code != 0 {
		t.Fatalf("a new run after the stop:\n%s", r)
	}
	wantRunning(t, a, "2.0.0", mib.BankB)
}
