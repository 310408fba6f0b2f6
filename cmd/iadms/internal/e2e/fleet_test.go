package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/fleet"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/image"
	"github.com/iadsafe/iad-agent/mib"
)

// fleetSize is the number of agents of TestFleet; IADMS_FLEET_SIZE
// overrides it for experiments (the acceptance run uses 200).
func fleetSize(t *testing.T) int {
	if s := os.Getenv("IADMS_FLEET_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 200 {
			t.Fatalf("IADMS_FLEET_SIZE=%q: want a number >= 200", s)
		}
		return n
	}
	return 200
}

// TestFleet upgrades a fleet of real agents (separate processes on
// loopback, file banks with small slots, small images) in one iadms run
// with 50 at a time behind a canary wave of 5: every device must succeed.
// A second rollout gives every tenth device a damaged image: it halts at
// the stop rule, and the report names each failed device and why.
//
// The first run's wall time and iadms's peak RSS, measured by GNU time,
// are logged (a benchmark figure, not an assertion).
func TestFleet(t *testing.T) {
	n := fleetSize(t)
	timeBin := itest.RequireTool(t, "time")
	s := newStation(t)
	start := time.Now()
	agents := itest.StartAgents(t, n, itest.FleetOptions{
		Args: func(int) []string {
			return []string{
				"-ro-community", roCommunity, "-rw-community", rwCommunity,
				"-trust", s.key + ".pub", "-hw", testHW, "-trap", s.traps,
				"-commit-after", "1s", "-slot-size", "256KiB", "-log-level", "warn",
			}
		},
		// Hundreds of agents on two cores: one OS thread each.
		Env: []string{"GOMAXPROCS=1"},
	})
	t.Logf("%d agents started in %v", n, time.Since(start).Round(time.Millisecond))

	v2 := s.image(t, "v2.img", "2.0.0", 1, 32<<10)
	targets := writeTargets(t, s, "fleet.targets", agents, nil)
	rep1 := filepath.Join(s.dir, "rollout-1.json")
	r, wall, rss := s.timed(t, timeBin, "upgrade", append([]string{"--targets", targets, "--image", v2, "--report", rep1}, fleetFlags...)...)
	t.Logf("BENCHMARK fleet of %d agents, concurrency 50, canary 5: iadms wall time %s, peak RSS %d KiB", n, wall, rss)
	got := readReport(t, rep1)
	if r.code != 0 {
		t.Fatalf("rollout 1: exit %d\n%s\n%s", r.code, failedDevices(got, agents), r.stderr)
	}
	if got.Succeeded != n || got.Failed != 0 || got.Skipped != 0 || got.Halted {
		t.Fatalf("rollout 1: %d succeeded, %d failed, %d skipped, halted %v (%s); want all %d succeeded",
			got.Succeeded, got.Failed, got.Skipped, got.Halted, got.HaltReason, n)
	}
	for _, d := range got.Devices {
		if d.Status != string(journal.Succeeded) || d.OldVersion != "1.0.0" || d.NewVersion != "2.0.0" {
			t.Errorf("rollout 1: %s: %s %s -> %s", d.Name, d.Status, d.OldVersion, d.NewVersion)
		}
	}
	for _, i := range []int{0, n / 3, n - 1} {
		wantRunning(t, agents[i], "2.0.0", mib.BankB)
	}

	// Rollout 2: every tenth device gets an image whose payload was
	// damaged after signing.
	v3 := s.image(t, "v3.img", "3.0.0", 1, 32<<10)
	bad := damaged(t, v3, filepath.Join(s.dir, "v3-damaged.img"))
	isBad := func(i int) bool { return i%10 == 9 }
	targets2 := writeTargets(t, s, "fleet-2.targets", agents, func(i int) string {
		if isBad(i) {
			return "image=" + bad
		}
		return ""
	})
	rep2 := filepath.Join(s.dir, "rollout-2.json")
	r2 := s.run(t, "upgrade", append([]string{"--targets", targets2, "--image", v3, "--report", rep2}, fleetFlags...)...)
	got2 := readReport(t, rep2)
	if r2.code != 1 {
		t.Fatalf("rollout 2: exit %d, want 1 (halted)\n%s\n%s", r2.code, failedDevices(got2, agents), r2.stderr)
	}
	limit := n * 5 / 100
	if !got2.Halted || !strings.Contains(got2.HaltReason, "stop rule") || got2.Failed <= limit || got2.Skipped == 0 {
		t.Fatalf("rollout 2: halted %v (%q), %d failed, %d skipped; want a halt by the stop rule after more than %d failures, devices skipped",
			got2.Halted, got2.HaltReason, got2.Failed, got2.Skipped, limit)
	}
	for i, d := range got2.Devices {
		switch d.Status {
		case string(journal.Failed):
			if !isBad(i) {
				t.Errorf("rollout 2: %s failed with a good image: %s", d.Name, d.Reason)
			}
			if !strings.Contains(d.Reason, "upgrade failed: imageCorrupt") || !strings.Contains(d.Reason, "hash mismatch") {
				t.Errorf("rollout 2: %s: reason %q does not say the image is corrupt", d.Name, d.Reason)
			}
		case string(journal.Succeeded):
			if isBad(i) {
				t.Errorf("rollout 2: %s succeeded with the damaged image", d.Name)
			}
		case "skipped":
			if !strings.Contains(d.Reason, "stop rule") {
				t.Errorf("rollout 2: %s skipped for %q", d.Name, d.Reason)
			}
		default:
			t.Errorf("rollout 2: %s: status %s (%s)", d.Name, d.Status, d.Reason)
		}
	}
	for _, want := range []string{"HALTED: stop rule", "FAIL:imageCorrupt", "skipped"} {
		if !strings.Contains(r2.stdout, want) {
			t.Errorf("rollout 2 table lacks %q", want)
		}
	}
	t.Logf("rollout 2: %d succeeded, %d failed, %d skipped: %s", got2.Succeeded, got2.Failed, got2.Skipped, got2.HaltReason)
	noSecrets(t, []string{r.stdout, r.stderr, r2.stdout, r2.stderr}, rep1, rep2, filepath.Join(s.state, "iadms.log"))
}

// fleetFlags are the rollout's: 50 at a time behind a canary of 5, halting
// above 5 % failed; per-step timeouts well above what a step takes here,
// so that a stuck device fails in a minute rather than in the defaults'
// tens of minutes.
var fleetFlags = []string{
	"--concurrency", "50", "--canary", "5", "--max-fail", "5", "--snmp-timeout", "2s", "--snmp-retries", "2",
	"--timeout-reach", "60s", "--timeout-backup", "60s", "--timeout-upgrade", "60s", "--timeout-reset", "60s",
	"--timeout-commit", "60s", "--timeout-restore", "60s", "--timeout-revert", "60s",
}

// failedDevices describes the devices that did not succeed, with the end
// of their agents' logs.
func failedDevices(rep fleet.Report, agents []*itest.Agent) string {
	var b strings.Builder
	for i, d := range rep.Devices {
		if d.Status == string(journal.Succeeded) || d.Status == "skipped" {
			continue
		}
		fmt.Fprintf(&b, "%s %s: %s: %s\n", d.Name, d.Address, d.Status, d.Reason)
		if i < len(agents) {
			fmt.Fprintf(&b, "  agent log:\n%s\n", agents[i].LogTail(15))
		}
	}
	return b.String()
}

// writeTargets writes a targets file for the agents; opt(i) adds options.
func writeTargets(t *testing.T, s *station, name string, agents []*itest.Agent, opt func(int) string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# NAME ADDRESS CREDENTIALS [image=FILE]\n")
	for i, a := range agents {
		fmt.Fprintf(&b, "d%03d %s default", i, a.Target())
		if opt != nil {
			if o := opt(i); o != "" {
				b.WriteString(" " + o)
			}
		}
		b.WriteString("\n")
	}
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// damaged copies a signed image with one payload byte flipped: the header
// and its signature are intact, the payload hash is not.
func damaged(t *testing.T, from, to string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	b[image.PayloadOffset+len(b[image.PayloadOffset:])/2] ^= 0xff
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return to
}

var (
	rssRE  = regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`)
	wallRE = regexp.MustCompile(`Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)`)
)

// timed runs iadms under GNU time -v and returns its wall time and peak
// RSS as GNU time reports them.
func (s *station) timed(t *testing.T, timeBin, cmd string, extra ...string) (result, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, timeBin, append([]string{"-v", s.bin}, s.args(cmd, extra...)...)...)
	c.Dir = s.dir
	var o, e strings.Builder
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("time -v iadms: %v", err)
	}
	m, w := rssRE.FindStringSubmatch(r.stderr), wallRE.FindStringSubmatch(r.stderr)
	if m == nil || w == nil {
		t.Fatalf("GNU time printed no figures:\n%s", r.stderr)
	}
	rss, _ := strconv.Atoi(m[1])
	return r, w[1], rss
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
