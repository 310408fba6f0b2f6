package itest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/mib"
)

// registeredLine is what the agent logs once its AgentX session is open
// and its subtree registered.
const registeredLine = "agentx: registered"

// StartSubAgent builds (once) and runs the agent as an AgentX sub-agent
// of master (see StartSNMPDMaster) with dataDir ("" means a fresh
// temporary directory) and extraArgs, and waits until the master answers
// for the agent's objects. The returned Agent's Target is the master.
func StartSubAgent(t testing.TB, master *SNMPD, dataDir string, extraArgs ...string) *Agent {
	t.Helper()
	RequireTool(t, "snmpget")
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	a := &Agent{
		Bin:       BuildAgent(t),
		DataDir:   dataDir,
		Port:      master.Port,
		Args:      extraArgs,
		LogPath:   filepath.Join(t.TempDir(), "iad-agent.log"),
		Community: "public",
		Master:    master,
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(a.LogPath); err == nil && strings.Contains(string(b), "WARNING: DATA RACE") {
			t.Errorf("the agent reported a data race; see its log")
		}
		if t.Failed() {
			t.Logf("iad-agent log %s (tail):\n%s", a.LogPath, a.LogTail(tailLines))
			t.Logf("snmpd log %s (tail):\n%s", master.LogPath, logTail(master.LogPath, tailLines))
		}
		a.stop()
	})
	a.start(t)
	return a
}

// waitRegistered waits until the log, from offset from, says the agent
// registered with its master and the master answers iadSwHardware.0 from
// it.
func (a *Agent) waitRegistered(t testing.TB, from int64) {
	t.Helper()
	p := a.current()
	obj := mib.IadSwHardware.Append(0).String()
	err := p.waitStarted(agentTimeout, func() error {
		b, err := os.ReadFile(a.LogPath)
		if err != nil || int64(len(b)) < from || !strings.Contains(string(b[from:]), registeredLine) {
			return fmt.Errorf("%w: %q not logged yet", errNotYet, registeredLine)
		}
		v, err := quickGet(t, a.Target(), a.Community, obj)
		if err != nil {
			return err
		}
		if strings.HasPrefix(v, "No Such") {
			return fmt.Errorf("%w: master answers %q for %s", errNotYet, v, obj)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("iad-agent (pid %d): not registered with %v: %v\ncommand: %s\nlog %s:\n%s\nsnmpd log:\n%s",
			p.pid(), a.Master, err, strings.Join(a.argv(), " "), a.LogPath, a.LogTail(tailLines), logTail(a.Master.LogPath, tailLines))
	}
}

// servingLine is what the agent logs each time it starts serving UDP.
const servingLine = "msg=serving "

// RestartMark is what WaitRestartedSince compares against.
type RestartMark struct {
	logSize int64 // log length before
}

// MarkRestart records the agent's state shortly before a reset is
// triggered.
func (a *Agent) MarkRestart(t testing.TB) RestartMark {
	t.Helper()
	return RestartMark{logSize: a.LogSize()}
}

// WaitRestartedSince waits until the agent has started again after m was
// taken and answers: it logged that it serves (UDP) or registered with
// the master (sub-agent; the master's own sysUpTime goes on). Unlike
// WaitRestarted it cannot miss a restart that happened soon after the
// previous start, when the new sysUpTime passes the old one within a
// poll.
func (a *Agent) WaitRestartedSince(t testing.TB, m RestartMark) {
	t.Helper()
	if a.Master != nil {
		a.waitRegistered(t, m.logSize)
		return
	}
	a.WaitLog(t, m.logSize, servingLine)
	a.WaitReady(t)
}

// quickGet asks target once, quickly, for one numeric OID and returns the
// value as Get does.
func quickGet(t testing.TB, target, community, oid string) (string, error) {
	t.Helper()
	c := SNMP{Target: target, Community: community, Timeout: 300 * time.Millisecond, Retries: 0}
	args := append(append(c.common(), valueOpts...), target, oid)
	stdout, stderr, err := c.run(t, "snmpget", args...)
	if err != nil {
		return "", fmt.Errorf("snmpget %s: %w: %s", oid, err, strings.TrimSpace(stderr))
	}
	vars := parseAnswer(stdout)
	if len(vars) != 1 {
		return "", fmt.Errorf("snmpget %s: %q", oid, stdout)
	}
	return vars[0].Value, nil
}
