// Package term is iadms's operator interface: it tells a terminal from a
// pipe, asks yes/no questions, and shows progress — redrawn bars on a
// terminal, plain lines otherwise (for logs and CI).
//
// It must never block a procedure for long on output, never ask a
// question on something that is not a terminal, and never print a secret
// (it only ever sees procedure updates, which hold none).
package term

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/procedure"
)

// ErrNoAnswer means the input ended before an answer.
var ErrNoAnswer = errors.New("term: no answer (input closed)")

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Width returns the terminal's width in columns, or 80.
func Width(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}

// Prompter asks yes/no questions on a terminal. Questions are serialised.
type Prompter struct {
	out   io.Writer
	lines chan string
	// pause is called around a question (to stop progress redraws).
	pause func(bool)
	mu    sync.Mutex
}

// NewPrompter reads answers from in (one line each) and writes questions
// to out.
func NewPrompter(in io.Reader, out io.Writer) *Prompter {
	p := &Prompter{out: out, lines: make(chan string)}
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	return p
}

// SetPause registers a function called with true before a question and
// false after it.
func (p *Prompter) SetPause(f func(bool)) { p.pause = f }

// Ask shows question and waits for y/yes or n/no (empty means no).
func (p *Prompter) Ask(ctx context.Context, question string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pause != nil {
		p.pause(true)
		defer p.pause(false)
	}
	for {
		fmt.Fprintf(p.out, "%s [y/N] ", question)
		select {
		case <-ctx.Done():
			fmt.Fprintln(p.out)
			return false, ctx.Err()
		case line, ok := <-p.lines:
			if !ok {
				fmt.Fprintln(p.out)
				return false, ErrNoAnswer
			}
			switch strings.ToLower(strings.TrimSpace(line)) {
			case "y", "yes":
				return true, nil
			case "", "n", "no":
				return false, nil
			}
			fmt.Fprintln(p.out, "Please answer yes or no.")
		}
	}
}

// Lines prints each update as one line: for pipes and log files.
type Lines struct {
	W io.Writer
	// Progress prints progress updates every 25%; otherwise they are
	// skipped.
	Progress bool

	mu sync.Mutex
}

// Update implements procedure.Observer.
func (l *Lines) Update(u procedure.Update) {
	s, ok := line(u, l.Progress)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.W, s)
}

// Print writes a free-form line.
func (l *Lines) Print(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.W, format+"\n", args...)
}

func line(u procedure.Update, progress bool) (string, bool) {
	ts := u.Time.Format("15:04:05")
	prefix := fmt.Sprintf("%s %s", ts, u.Device)
	attempt := ""
	if u.Attempt > 1 {
		attempt = fmt.Sprintf(" (attempt %d)", u.Attempt)
	}
	switch u.Kind {
	case procedure.StepStarted:
		return fmt.Sprintf("%s: %s: started%s", prefix, u.Step, attempt), true
	case procedure.StepDone:
		return fmt.Sprintf("%s: %s: done%s", prefix, u.Step, attempt), true
	case procedure.StepFailed:
		return fmt.Sprintf("%s: %s: FAILED%s: %s", prefix, u.Step, attempt, u.Text), true
	case procedure.Progress:
		if !progress || u.Percent == 0 || u.Percent%25 != 0 {
			return "", false
		}
		return fmt.Sprintf("%s: %s: %d%% (%d bytes)", prefix, u.Step, u.Percent, u.Bytes), true
	case procedure.Notification:
		return fmt.Sprintf("%s: notification: %s", prefix, u.Text), true
	case procedure.Finished:
		return fmt.Sprintf("%s: finished: %s", prefix, u.Text), true
	}
	if u.Step != "" {
		return fmt.Sprintf("%s: %s: %s", prefix, u.Step, u.Text), true
	}
	return fmt.Sprintf("%s: %s", prefix, u.Text), true
}

// Bars redraws one progress line per device under way and a summary, on a
// terminal; finished devices scroll up as plain lines above them.
type Bars struct {
	w     io.Writer
	width int
	total int
	// Verbose prints every update as a line above the bars (one device);
	// otherwise only failures and outcomes are (a fleet).
	Verbose bool

	mu      sync.Mutex
	devs    map[string]*barState
	drawn   int
	frame   string // what is on screen now
	done    int
	failed  int
	paused  bool
	stop    chan struct{}
	stopped chan struct{}
}

type barState struct {
	step    journal.Step
	percent uint32
	text    string
	started time.Time
}

// NewBars starts redrawing every interval; total is the number of devices
// (0 if unknown). Call Close when done.
func NewBars(w io.Writer, width, total int, interval time.Duration) *Bars {
	b := &Bars{w: w, width: width, total: total, devs: map[string]*barState{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(b.stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.mu.Lock()
				if f := b.render(); f != b.frame {
					b.redraw()
				}
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// Update implements procedure.Observer.
func (b *Bars) Update(u procedure.Update) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.devs[u.Device]
	if st == nil {
		st = &barState{started: u.Time}
		b.devs[u.Device] = st
	}
	if b.Verbose && u.Kind != procedure.Progress {
		if s, ok := line(u, false); ok {
			b.printAbove(s)
		}
		if u.Kind == procedure.Finished {
			delete(b.devs, u.Device)
			b.done++
			return
		}
	}
	switch u.Kind {
	case procedure.StepStarted:
		st.step, st.percent, st.text = u.Step, 0, ""
	case procedure.Progress:
		st.percent = u.Percent
	case procedure.StepDone:
		st.percent = 100
	case procedure.Info, procedure.Notification:
		st.text = u.Text
	case procedure.StepFailed:
		if !b.Verbose {
			b.printAbove(fmt.Sprintf("%s: %s: FAILED: %s", u.Device, u.Step, u.Text))
		}
	case procedure.Finished:
		delete(b.devs, u.Device)
		b.done++
		if !strings.HasPrefix(u.Text, string(journal.Succeeded)) && !strings.HasPrefix(u.Text, string(journal.UpToDate)) {
			b.failed++
		}
		b.printAbove(fmt.Sprintf("%s: %s", u.Device, u.Text))
	}
}

// Print writes a line above the bars.
func (b *Bars) Print(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.printAbove(fmt.Sprintf(format, args...))
}

// Pause stops redrawing (true) while a question is on screen.
func (b *Bars) Pause(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if on {
		b.clear()
	}
	b.paused = on
}

// Close stops redrawing and clears the bars.
func (b *Bars) Close() {
	close(b.stop)
	<-b.stopped
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
}

func (b *Bars) clear() {
	for ; b.drawn > 0; b.drawn-- {
		io.WriteString(b.w, "\x1b[1A\x1b[2K")
	}
	b.frame = ""
}

func (b *Bars) printAbove(s string) {
	b.clear()
	fmt.Fprintf(b.w, "%s\n", s)
	if !b.paused {
		b.redraw()
	}
}

// maxBars bounds the lines redrawn: the busiest devices are shown.
const maxBars = 20

func (b *Bars) redraw() {
	if b.paused {
		return
	}
	b.clear()
	f := b.render()
	io.WriteString(b.w, f)
	b.frame, b.drawn = f, strings.Count(f, "\n")
}

// render draws the frame: one bar per device under way (the first
// maxBars by name) and, for a fleet, a summary line.
func (b *Bars) render() string {
	names := make([]string, 0, len(b.devs))
	for n := range b.devs {
		names = append(names, n)
	}
	sort.Strings(names)
	shown := names
	if len(shown) > maxBars {
		shown = shown[:maxBars]
	}
	var sb strings.Builder
	for _, n := range shown {
		sb.WriteString(b.bar(n, b.devs[n]) + "\n")
	}
	if b.total == 1 {
		return sb.String()
	}
	sum := fmt.Sprintf("%d running, %d finished (%d failed)", len(b.devs), b.done, b.failed)
	if b.total > 0 {
		sum = fmt.Sprintf("[%s] %d/%d finished, %d running, %d failed", meter(b.done*100/max(b.total, 1), 30), b.done, b.total, len(b.devs), b.failed)
	}
	if len(names) > len(shown) {
		sum += fmt.Sprintf(" (%d more not shown)", len(names)-len(shown))
	}
	sb.WriteString(b.fit(sum) + "\n")
	return sb.String()
}

func (b *Bars) bar(name string, st *barState) string {
	s := fmt.Sprintf("%-16s %-8s [%s] %3d%% %s", name, st.step, meter(int(st.percent), 20), st.percent, st.text)
	return b.fit(s)
}

func (b *Bars) fit(s string) string {
	if b.width > 1 && len(s) >= b.width {
		return s[:b.width-1]
	}
	return s
}

func meter(pct, width int) string {
	pct = min(max(pct, 0), 100)
	n := pct * width / 100
	return strings.Repeat("#", n) + strings.Repeat("-", width-n)
}
