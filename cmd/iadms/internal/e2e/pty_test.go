package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair the Linux way: /dev/ptmx, unlock
// (TIOCSPTLCK), ask its number (TIOCGPTN), open /dev/pts/N.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// ptyProc is iadms running on a pseudo-terminal, as an operator would run
// it: its standard input, output and error are the terminal.
type ptyProc struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    []byte
	seen   int // output consumed by expect
	done   chan struct{}
	err    error
}

func (s *station) startPTY(t *testing.T, cmd string, extra ...string) *ptyProc {
	t.Helper()
	m, sl, err := openPTY()
	if err != nil {
		t.Fatalf("pseudo-terminal: %v", err)
	}
	c := exec.Command(s.bin, s.args(cmd, extra...)...)
	c.Dir = s.dir
	c.Stdin, c.Stdout, c.Stderr = sl, sl, sl
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	sl.Close()
	p := &ptyProc{t: t, master: m, cmd: c, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out = append(p.out, buf[:n]...)
			p.mu.Unlock()
			if err != nil {
				return // EIO once iadms has exited
			}
		}
	}()
	go func() {
		p.err = c.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			syscall.Kill(c.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		m.Close()
	})
	return p
}

func (p *ptyProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.out)
}

// expect waits for substr in the output not yet consumed and consumes up
// to its end.
func (p *ptyProc) expect(substr string) {
	p.t.Helper()
	deadline := time.Now().Add(runWait)
	for {
		p.mu.Lock()
		i := strings.Index(string(p.out[p.seen:]), substr)
		if i >= 0 {
			p.seen += i + len(substr)
		}
		p.mu.Unlock()
		if i >= 0 {
			return
		}
		select {
		case <-p.done:
			time.Sleep(50 * time.Millisecond) // the last output may still be in flight
			if strings.Contains(p.output()[p.seen:], substr) {
				continue
			}
			p.t.Fatalf("iadms ended (%v) without printing %q; output:\n%s", p.err, substr, p.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("iadms never printed %q within %v; output:\n%s", substr, runWait, p.output())
		}
	}
}

// answer types a line, as the operator would.
func (p *ptyProc) answer(s string) {
	p.t.Helper()
	if _, err := p.master.Write([]byte(s + "\n")); err != nil {
		p.t.Fatalf("typing %q: %v", s, err)
	}
}

// wait waits for iadms to end and returns its exit code.
func (p *ptyProc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(runWait):
		p.t.Fatalf("iadms did not finish within %v; output:\n%s", runWait, p.output())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("iadms: %v", p.err)
	}
	return 0
}

// TestPTYIsATerminal checks the helper itself: the child sees a terminal.
func TestPTYIsATerminal(t *testing.T) {
	m, s, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer s.Close()
	if _, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS); err != nil {
		t.Fatalf("slave is not a terminal: %v", err)
	}
	if _, err := s.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := m.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "ping") {
		t.Fatalf("master read %q, %v", buf[:n], err)
	}
}
