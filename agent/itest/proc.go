package itest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds every readiness probe of a server.
	startTimeout = 10 * time.Second
	// stopGrace is how long a server gets after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// tailLines is how much of a log a failure message shows.
	tailLines = 30
)

// RequireTool returns the absolute path of an external tool, looked up in
// PATH plus /usr/sbin, /sbin and /usr/local/sbin (servers live there and
// PATH often lacks them). A missing tool skips the test, or fails it when
// CI=true.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := lookTool(name); err == nil {
		return p
	}
	skipOrFatal(t, "required tool %s missing (install with make test-deps)", name)
	return ""
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("itest: %s not found in PATH, /usr/sbin or /sbin", name)
}

// skipOrFatal skips the test for a missing prerequisite, except on CI where
// a silently skipped integration test would hide a broken setup.
func skipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	return FreeUDPPortOn(t, "127.0.0.1")
}

// FreeUDPPortOn returns a UDP port on the loopback address host
// ("127.0.0.1" or "::1") that was free a moment ago.
func FreeUDPPortOn(t testing.TB, host string) int {
	t.Helper()
	a := loopbackAddr(t, host)
	c, err := net.ListenUDP(udpNet(a), net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		t.Fatalf("free udp port on %s: %v", a, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// FreeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreeTCPPort(t testing.TB) int {
	t.Helper()
	return FreeTCPPortOn(t, "127.0.0.1")
}

// FreeTCPPortOn returns a TCP port on the loopback address host
// ("127.0.0.1" or "::1") that was free a moment ago.
func FreeTCPPortOn(t testing.TB, host string) int {
	t.Helper()
	a := loopbackAddr(t, host)
	l, err := net.ListenTCP(tcpNet(a), net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		t.Fatalf("free tcp port on %s: %v", a, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// loopbackAddr parses host and insists on a loopback address, so the
// harness can never be pointed at a real network. A host the machine
// cannot bind (no IPv6 loopback, typically) is a missing prerequisite:
// it skips the test, or fails it when CI=true.
func loopbackAddr(t testing.TB, host string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil || !a.IsLoopback() || a.Zone() != "" {
		t.Fatalf("itest: host %q is not a loopback address", host)
	}
	a = a.Unmap()
	c, err := net.ListenUDP(udpNet(a), net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		skipOrFatal(t, "no loopback address %s on this machine: %v", a, err)
	}
	c.Close()
	return a
}

// udpNet and tcpNet pin the socket family to the address, so "::1" never
// ends up on a dual-stack socket and "127.0.0.1" never on an IPv6 one.
func udpNet(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp6"
}

func tcpNet(a netip.Addr) string {
	if a.Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// process is one started server: its own process group, output appended
// to a log file, reaped by a goroutine so exits are noticed at once.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
	stop    sync.Once
}

// launch starts argv in a new process group with stdout and stderr
// appended to logPath. env nil means the test's environment.
func launch(name, logPath string, env []string, argv ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("itest: open %s log: %w", name, err)
	}
	// The command line heads its output so a failure shows what ran.
	fmt.Fprintf(f, "=== itest %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	f.Close() // the child holds its own descriptor
	if err != nil {
		return nil, fmt.Errorf("itest: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// terminate sends SIGTERM to the group, waits up to grace, then SIGKILLs
// the group (which also reaches children that outlived their parent).
// It is idempotent.
func (p *process) terminate(grace time.Duration) {
	p.stop.Do(func() {
		_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	})
}

const (
	sigTERM = syscall.SIGTERM
	sigKILL = syscall.SIGKILL
)

func signalGroup(p *process, sig syscall.Signal) error { return syscall.Kill(-p.pid(), sig) }

// kill9 SIGKILLs the whole group at once, like a power cut: no SIGTERM
// first, so nothing gets to clean up.
func (p *process) kill9() {
	p.stop.Do(func() {
		_ = signalGroup(p, sigKILL)
		<-p.done
	})
}

// poll calls probe with a short backoff until it reports done, returns an
// error, or timeout passes.
func poll(timeout time.Duration, probe func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	var last error
	for {
		ok, err := probe()
		if ok {
			return nil
		}
		if errors.Is(err, errGiveUp) {
			return err
		}
		last = err
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("%w after %v: %w", errTimeout, timeout, last)
			}
			return fmt.Errorf("%w after %v", errTimeout, timeout)
		}
		time.Sleep(wait)
		wait = min(wait*2, 200*time.Millisecond)
	}
}

var (
	errTimeout = errors.New("itest: timed out")
	errGiveUp  = errors.New("itest: gave up")
)

// waitStarted polls probe until it succeeds, failing early when the
// process exits.
func (p *process) waitStarted(timeout time.Duration, probe func() error) error {
	return poll(timeout, func() (bool, error) {
		if gone, err := p.exited(); gone {
			return false, fmt.Errorf("%w: %s exited: %v", errGiveUp, p.name, err)
		}
		err := probe()
		return err == nil, err
	})
}

// logTail returns the last n lines of a log file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RepoRoot returns the directory holding the go.mod of module
// github.com/iadsafe/iad-agent, walking up from the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("repo root: %v", err)
	}
	return root
}

const modulePath = "github.com/iadsafe/iad-agent"

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && moduleOf(b) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("itest: no go.mod of module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func moduleOf(gomod []byte) string {
	s := bufio.NewScanner(bytes.NewReader(gomod))
	for s.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// SharedMIBDir returns the directory of the standard MIB modules: env
// IAD_SHARED_MIBS, else <RepoRoot>/../shared/mibs. It must hold
// SNMPv2-SMI.txt.
func SharedMIBDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("IAD_SHARED_MIBS")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(RepoRoot(t)), "shared", "mibs")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("shared mib dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "SNMPv2-SMI.txt")); err != nil {
		t.Fatalf("shared mib dir %s has no SNMPv2-SMI.txt (set IAD_SHARED_MIBS): %v", dir, err)
	}
	return dir
}

// MIBDirs is the net-snmp MIB search path addition: the shared standard
// modules and the project's own mib directory.
func MIBDirs(t testing.TB) string {
	t.Helper()
	return SharedMIBDir(t) + ":" + filepath.Join(RepoRoot(t), "mib")
}

// isRoot reports whether the test runs as root, which vsftpd and a
// privilege-dropping in.tftpd need.
func isRoot() bool { return os.Geteuid() == 0 }

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}
