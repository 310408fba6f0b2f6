package itest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// agentTimeout bounds waiting for the agent to answer SNMP.
const agentTimeout = 15 * time.Second

// Agent is a running iad-agent: Bin -data DataDir -listen 127.0.0.1:Port
// Args…, output appended to LogPath across restarts.
type Agent struct {
	Bin, DataDir string
	Port         int
	// Args are the extra arguments after -data and -listen.
	Args    []string
	PID     int
	LogPath string
	// Community is the read community the readiness probe uses: the
	// value of -ro-community in Args, else "public".
	Community string
	// Master is the AgentX master of an agent started by StartSubAgent:
	// the agent then has no port of its own, Port and Target are the
	// master's, and readiness means registered with the master.
	Master *SNMPD

	mu   sync.Mutex
	proc *process
}

// Target is "127.0.0.1:Port" (the master's, for a sub-agent).
func (a *Agent) Target() string { return "127.0.0.1:" + strconv.Itoa(a.Port) }

// SNMP returns a client for the agent with the given community ("" means
// a.Community).
func (a *Agent) SNMP(community string) SNMP {
	if community == "" {
		community = a.Community
	}
	return SNMP{Target: a.Target(), Community: community, Timeout: 2 * time.Second, Retries: 1}
}

// StartAgent builds (once) and runs the agent on a free loopback port with
// dataDir ("" means a fresh temporary directory) and extraArgs, and waits
// until it answers sysUpTime.0. The agent is stopped in cleanup; if the
// test failed, its log tail is logged.
func StartAgent(t testing.TB, dataDir string, extraArgs ...string) *Agent {
	t.Helper()
	RequireTool(t, "snmpget")
	return startAgentBin(t, BuildAgent(t), dataDir, extraArgs...)
}

func startAgentBin(t testing.TB, bin, dataDir string, extraArgs ...string) *Agent {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	a := &Agent{
		Bin:       bin,
		DataDir:   dataDir,
		Port:      FreeUDPPort(t),
		Args:      extraArgs,
		LogPath:   filepath.Join(t.TempDir(), "iad-agent.log"),
		Community: flagValue(extraArgs, "ro-community", "public"),
	}
	t.Cleanup(func() {
		// An agent built with -race reports races on stderr and keeps
		// running: make them fail the test.
		if b, err := os.ReadFile(a.LogPath); err == nil && strings.Contains(string(b), "WARNING: DATA RACE") {
			t.Errorf("the agent reported a data race; see its log")
		}
		if t.Failed() {
			t.Logf("iad-agent log %s (tail):\n%s", a.LogPath, a.LogTail(tailLines))
		}
		a.stop()
	})
	a.start(t)
	return a
}

// argv is the full command line; Restart reuses it.
func (a *Agent) argv() []string {
	if a.Master != nil {
		return append([]string{a.Bin, "-data", a.DataDir, "-agentx", a.Master.AgentX}, a.Args...)
	}
	return append([]string{a.Bin, "-data", a.DataDir, "-listen", a.Target()}, a.Args...)
}

func (a *Agent) start(t testing.TB) {
	t.Helper()
	from := a.LogSize()
	p, err := launch("iad-agent", a.LogPath, nil, a.argv()...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	a.mu.Lock()
	a.proc, a.PID = p, p.pid()
	a.mu.Unlock()
	if a.Master != nil {
		a.waitRegistered(t, from)
		return
	}
	a.WaitReady(t)
}

func (a *Agent) current() *process {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc
}

// WaitReady polls until the agent answers sysUpTime.0 (a sub-agent: an
// object of its own through the master), failing the test with the log
// tail if it exits or stays silent for 15s.
func (a *Agent) WaitReady(t testing.TB) {
	t.Helper()
	if a.Master != nil {
		a.waitRegistered(t, 0)
		return
	}
	a.waitUptime(t, "answer", func(int64) bool { return true })
}

// WaitRestarted waits until the agent answers with a sysUpTime below
// before (hundredths of a second, from Uptime). It is how a test sees the
// agent's reset: the agent re-executes itself with execve, so its PID
// stays the same and only its uptime starting again shows the restart.
// Take before shortly before triggering the reset.
func (a *Agent) WaitRestarted(t testing.TB, before int64) {
	t.Helper()
	a.waitUptime(t, fmt.Sprintf("restart (sysUpTime below %d)", before), func(up int64) bool { return up < before })
}

func (a *Agent) waitUptime(t testing.TB, what string, ok func(int64) bool) {
	t.Helper()
	p := a.current()
	err := p.waitStarted(agentTimeout, func() error {
		up, err := sysUpTime(t, a.Target(), a.Community)
		if err != nil {
			return err
		}
		if !ok(up) {
			return fmt.Errorf("%w: sysUpTime %d", errNotYet, up)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("iad-agent (pid %d): no %s: %v\ncommand: %s\nlog %s:\n%s",
			p.pid(), what, err, strings.Join(a.argv(), " "), a.LogPath, a.LogTail(tailLines))
	}
}

var errNotYet = errors.New("itest: not yet")

// Uptime returns the agent's sysUpTime.0 in hundredths of a second.
func (a *Agent) Uptime(t testing.TB) int64 {
	t.Helper()
	var up int64
	err := poll(5*time.Second, func() (bool, error) {
		var err error
		up, err = sysUpTime(t, a.Target(), a.Community)
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("iad-agent sysUpTime: %v\nlog tail:\n%s", err, a.LogTail(tailLines))
	}
	return up
}

// Kill9 SIGKILLs the agent's process group, like a power cut, and waits
// for it to be gone.
func (a *Agent) Kill9(t testing.TB) {
	t.Helper()
	a.current().kill9()
}

// Restart starts the agent again with the same arguments and port (after
// Kill9 or Stop) and waits until it answers.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	if gone, _ := a.current().exited(); !gone {
		a.Stop(t)
	}
	a.start(t)
}

// Stop sends SIGTERM, waits up to 10s, then SIGKILLs. It fails the test
// if the agent needed the SIGKILL.
func (a *Agent) Stop(t testing.TB) {
	t.Helper()
	p := a.current()
	if !a.stop() {
		t.Errorf("iad-agent (pid %d) ignored SIGTERM for 10s; killed\nlog tail:\n%s", p.pid(), a.LogTail(tailLines))
	}
}

// stop reports whether the agent exited on SIGTERM alone.
func (a *Agent) stop() bool {
	p := a.current()
	if p == nil {
		return true
	}
	graceful := true
	p.stop.Do(func() {
		_ = signalGroup(p, sigTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			graceful = false
		}
		_ = signalGroup(p, sigKILL)
		<-p.done
	})
	return graceful
}

// Exited reports whether the agent process has ended and its wait error.
func (a *Agent) Exited() (bool, error) { return a.current().exited() }

// LogSize is the current length of the log, a starting point for
// WaitLog.
func (a *Agent) LogSize() int64 {
	fi, err := os.Stat(a.LogPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// WaitLog waits until the log, from byte offset from on, contains substr.
func (a *Agent) WaitLog(t testing.TB, from int64, substr string) {
	t.Helper()
	err := poll(agentTimeout, func() (bool, error) {
		b, err := os.ReadFile(a.LogPath)
		if err != nil || int64(len(b)) < from {
			return false, err
		}
		return strings.Contains(string(b[from:]), substr), nil
	})
	if err != nil {
		t.Fatalf("iad-agent log never showed %q: %v\nlog %s:\n%s", substr, err, a.LogPath, a.LogTail(tailLines))
	}
}

// LogTail returns the last n lines of the agent's log.
func (a *Agent) LogTail(n int) string { return logTail(a.LogPath, n) }

// flagValue finds -name V, --name V, -name=V or --name=V in args.
func flagValue(args []string, name, def string) string {
	for i, a := range args {
		trimmed := strings.TrimLeft(a, "-")
		if trimmed == a {
			continue
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			return v
		}
		if trimmed == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return def
}
