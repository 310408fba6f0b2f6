package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ShellReloader runs a command through /bin/sh -c to make the device's
// services reload their configuration. The command sees
// IAD_CONFIG_DIR (the live directory), IAD_CONFIG_FORMAT and
// IAD_CONFIG_REASON (restore, start or rollback) in its environment. A
// non-zero exit, a signal or a timeout is a refusal.
type ShellReloader struct {
	Command string
	// Timeout bounds one run; default one minute.
	Timeout time.Duration
}

// maxOutput bounds what is kept of the command's output (its tail).
const maxOutput = 4 << 10

// Reload runs the command and returns its combined output (the last
// 4 KiB).
func (s ShellReloader) Reload(ctx context.Context, r ReloadRequest) (string, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.Command)
	cmd.Env = append(os.Environ(),
		"IAD_CONFIG_DIR="+r.Dir,
		"IAD_CONFIG_FORMAT="+strconv.FormatUint(uint64(r.Format), 10),
		"IAD_CONFIG_REASON="+r.Reason,
	)
	out := &tail{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// A child the shell left behind must not keep us waiting on its pipe.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if err == nil {
		return text, nil
	}
	var exit *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		err = fmt.Errorf("reload hook timed out after %v", timeout)
	case errors.As(err, &exit):
		err = fmt.Errorf("reload hook %s", exit.ProcessState.String())
	default:
		err = fmt.Errorf("reload hook: %w", err)
	}
	if last := lastLine(text); last != "" {
		err = fmt.Errorf("%w: %s", err, last)
	}
	return text, err
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 120 {
		s = s[:120]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
		rest := append([]byte(nil), t.buf.Bytes()...)
		t.buf.Reset()
		t.buf.Write(rest)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
