package term

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/procedure"
)

// syncBuf is a bytes.Buffer safe for the prompter's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestPrompter(t *testing.T) {
	in := strings.NewReader("maybe\nY\n\nno\nyes\n")
	var out syncBuf
	p := NewPrompter(in, &out)
	var paused []bool
	p.SetPause(func(on bool) { paused = append(paused, on) })
	ctx := context.Background()
	for i, want := range []bool{true, false, false, true} {
		got, err := p.Ask(ctx, "Retry?")
		if err != nil || got != want {
			t.Fatalf("answer %d: got %v %v, want %v", i, got, err, want)
		}
	}
	if _, err := p.Ask(ctx, "Retry?"); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("at end of input: got %v, want ErrNoAnswer", err)
	}
	if !strings.Contains(out.String(), "Please answer yes or no.") || strings.Count(out.String(), "Retry? [y/N] ") != 6 {
		t.Errorf("output:\n%s", out.String())
	}
	if len(paused) != 10 || !paused[0] || paused[1] {
		t.Errorf("pause calls: %v", paused)
	}
}

func TestPrompterCanceled(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	p := NewPrompter(pr, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Ask(ctx, "Retry?"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the context's error", err)
	}
}

func TestLines(t *testing.T) {
	var b bytes.Buffer
	l := &Lines{W: &b, Progress: true}
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, u := range []procedure.Update{
		{Kind: procedure.StepStarted, Step: journal.StepUpgrade, Attempt: 2},
		{Kind: procedure.Progress, Step: journal.StepUpgrade, Percent: 30},
		{Kind: procedure.Progress, Step: journal.StepUpgrade, Percent: 50, Bytes: 512},
		{Kind: procedure.StepFailed, Step: journal.StepUpgrade, Text: "imageCorrupt: x"},
		{Kind: procedure.Info, Step: journal.StepRevert, Text: "reverting"},
		{Kind: procedure.Notification, Text: "coldStart from 127.0.0.1"},
		{Kind: procedure.Finished, Text: "failed: x"},
	} {
		u.Device, u.Time = "d1", at
		l.Update(u)
	}
	want := `12:00:00 d1: upgrade: started (attempt 2)
12:00:00 d1: upgrade: 50% (512 bytes)
12:00:00 d1: upgrade: FAILED: imageCorrupt: x
12:00:00 d1: revert: reverting
12:00:00 d1: notification: coldStart from 127.0.0.1
12:00:00 d1: finished: failed: x
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestBars(t *testing.T) {
	var out syncBuf
	b := NewBars(&out, 80, 3, time.Hour)
	b.Update(procedure.Update{Device: "d1", Kind: procedure.StepStarted, Step: journal.StepUpgrade})
	b.Update(procedure.Update{Device: "d1", Kind: procedure.Progress, Step: journal.StepUpgrade, Percent: 50})
	b.Update(procedure.Update{Device: "d2", Kind: procedure.Finished, Text: "failed: boom"})
	b.mu.Lock()
	frame := b.render()
	b.mu.Unlock()
	if !strings.Contains(frame, "d1               upgrade  [##########----------]  50%") ||
		!strings.Contains(frame, "1/3 finished, 1 running, 1 failed") {
		t.Errorf("frame:\n%s", frame)
	}
	for _, l := range strings.Split(strings.TrimSpace(frame), "\n") {
		if len(l) >= 80 {
			t.Errorf("line wider than the terminal: %q", l)
		}
	}
	b.Close()
	if !strings.Contains(out.String(), "d2: failed: boom") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) || IsTerminal(nil) {
		t.Errorf("a file is not a terminal")
	}
	if w := Width(f); w != 80 {
		t.Errorf("width of a file: %d, want 80", w)
	}
}
