package fleet

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestParseTargets(t *testing.T) {
	in := `# fleet
iad-001  192.0.2.1        lab
iad-002  192.0.2.2:1161   lab   image=special.img   # a comment
iad-003  [2001:db8::3]:161 core image=/abs/x.img
`
	ts, err := ParseTargets(strings.NewReader(in), "/etc/iadms")
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{
		{Name: "iad-001", Addr: netip.MustParseAddrPort("192.0.2.1:161"), CredRef: "lab", Line: 2},
		{Name: "iad-002", Addr: netip.MustParseAddrPort("192.0.2.2:1161"), CredRef: "lab", Image: "/etc/iadms/special.img", Line: 3},
		{Name: "iad-003", Addr: netip.MustParseAddrPort("[2001:db8::3]:161"), CredRef: "core", Image: "/abs/x.img", Line: 4},
	}
	if fmt.Sprint(ts) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", ts, want)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "# nothing\n", "no targets"},
		{"short", "iad 192.0.2.1\n", "want NAME ADDRESS CREDENTIALS"},
		{"bad name", "../x 192.0.2.1 lab\n", "name"},
		{"bad address", "iad nowhere.example lab\n", "address"},
		{"bad option", "iad 192.0.2.1 lab colour=red\n", "unknown option"},
		{"dup name", "a 192.0.2.1 lab\na 192.0.2.2 lab\n", "already on line 1"},
		{"dup address", "a 192.0.2.1 lab\nb 192.0.2.1:161 lab\n", "already on line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTargets(strings.NewReader(tc.in), ".")
			if !errors.Is(err, ErrTargets) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrTargets with %q", err, tc.want)
			}
		})
	}
}

func targets(n int) []Target {
	ts := make([]Target, n)
	for i := range ts {
		ts[i] = Target{Name: fmt.Sprintf("d%02d", i), Addr: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(1000+i))}
	}
	return ts
}

// fakeRun succeeds except for the devices in bad; it records the most
// devices it ever ran at once.
type fakeRun struct {
	bad     map[string]bool
	running atomic.Int32
	peak    atomic.Int32
	mu      sync.Mutex
	started []string
}

func (f *fakeRun) run(ctx context.Context, t Target) Outcome {
	n := f.running.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	f.mu.Lock()
	f.started = append(f.started, t.Name)
	f.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	f.running.Add(-1)
	if f.bad[t.Name] {
		return Outcome{Run: journal.Run{Device: t.Name, Status: journal.Failed, Reason: "upgrade failed: imageCorrupt: bad"}}
	}
	return Outcome{Run: journal.Run{Device: t.Name, Status: journal.Succeeded}}
}

func TestRunAllSucceed(t *testing.T) {
	f := &fakeRun{}
	ts := targets(40)
	outs, halt := Run(context.Background(), ts, Options{Concurrency: 5, Canary: 3, MaxFailPercent: 10}, f.run, nil)
	if halt != "" {
		t.Fatalf("halted: %s", halt)
	}
	for i, o := range outs {
		if o == nil || o.Run.Status != journal.Succeeded {
			t.Errorf("device %d: %+v", i, o)
		}
	}
	if p := f.peak.Load(); p > 5 {
		t.Errorf("%d devices ran at once, limit 5", p)
	}
	// The canary wave ran before anything else.
	first := map[string]bool{}
	for _, n := range f.started[:3] {
		first[n] = true
	}
	if !first["d00"] || !first["d01"] || !first["d02"] {
		t.Errorf("first started: %v, want the canaries d00-d02", f.started[:3])
	}
}

func TestRunCanaryFails(t *testing.T) {
	f := &fakeRun{bad: map[string]bool{"d01": true}}
	ts := targets(20)
	outs, halt := Run(context.Background(), ts, Options{Concurrency: 10, Canary: 3}, f.run, nil)
	if !strings.Contains(halt, "canary d01 failed: upgrade failed: imageCorrupt") {
		t.Fatalf("halt: %q", halt)
	}
	for i, o := range outs[3:] {
		if o != nil {
			t.Errorf("device %d started after a canary failed", i+3)
		}
	}
	rep := Build(ts, outs, halt, time.Unix(0, 0), time.Unix(1, 0))
	if rep.Succeeded != 2 || rep.Failed != 1 || rep.Skipped != 17 || !rep.Halted {
		t.Errorf("report: %+v", rep)
	}
}

func TestRunStopRule(t *testing.T) {
	bad := map[string]bool{}
	for i := 0; i < 100; i += 4 {
		bad[fmt.Sprintf("d%02d", i+3)] = true
	}
	f := &fakeRun{bad: bad}
	ts := targets(100)
	var notes []Notice
	var mu sync.Mutex
	outs, halt := Run(context.Background(), ts, Options{Concurrency: 1, MaxFailPercent: 5}, f.run, func(n Notice) {
		mu.Lock()
		notes = append(notes, n)
		mu.Unlock()
	})
	if halt != "stop rule: 6 of 100 devices failed (more than 5%)" {
		t.Fatalf("halt: %q", halt)
	}
	// One at a time: the run stops right after the sixth failure.
	if outs[23] == nil || outs[24] != nil {
		t.Errorf("last started: want d23, got d24 started %v", outs[24] != nil)
	}
	halts := 0
	for _, n := range notes {
		if n.Halt != "" {
			halts++
		}
	}
	if halts != 1 {
		t.Errorf("%d halt notices, want 1", halts)
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var started atomic.Int32
	outs, halt := Run(ctx, targets(30), Options{Concurrency: 2}, func(ctx context.Context, t Target) Outcome {
		if started.Add(1) == 2 {
			cancel()
		}
		<-ctx.Done()
		return Outcome{Err: ctx.Err()}
	}, nil)
	if !strings.HasPrefix(halt, "interrupted") {
		t.Errorf("halt: %q", halt)
	}
	n := 0
	for _, o := range outs {
		if o != nil {
			n++
		}
	}
	if n > 5 {
		t.Errorf("%d devices started after the interruption", n)
	}
}

// TestReportGolden renders a report of every kind of outcome as a table
// and as JSON.
func TestReportGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	res := func(step journal.Step, n int, ok bool, cause, text string, from, to float64) journal.Result {
		return journal.Result{Step: step, Attempt: n, OK: ok, Cause: cause, Text: text, Started: at(from), Ended: at(to)}
	}
	ok := journal.Run{
		Device: "iad-001", Address: "192.0.2.1:161", Status: journal.Succeeded, Started: t0, Finished: at(12.3),
		Image: journal.Image{Version: "2.0.0"}, Baseline: &journal.Baseline{Version: "1.0.0", Bank: 1}, FinalVersion: "2.0.0",
		Results: []journal.Result{
			res(journal.StepPreflight, 1, true, "", "", 0, 0.1), res(journal.StepBackup, 1, true, "", "", 0.1, 0.5),
			res(journal.StepUpgrade, 1, false, "imageCorrupt", "image: payload hash mismatch", 0.5, 1),
			res(journal.StepRevert, 1, true, "", "", 1, 1.5), res(journal.StepUpgrade, 2, true, "", "", 1.5, 3),
			res(journal.StepReset, 1, true, "", "", 3, 4), res(journal.StepBoot, 1, true, "", "", 4, 4.1),
			res(journal.StepCommit, 1, true, "", "", 4.1, 11), res(journal.StepRestore, 1, true, "", "", 11, 12.3),
		},
	}
	reverted := journal.Run{
		Device: "iad-002", Address: "192.0.2.2:161", Status: journal.Failed, Started: t0, Finished: at(40),
		Image: journal.Image{Version: "2.0.0"}, Baseline: &journal.Baseline{Version: "1.0.0", Bank: 1}, FinalVersion: "1.0.0",
		Reason: "upgrade FAILED: commit failed: reverted: the device reverted by itself (no retries allowed)",
		Results: []journal.Result{
			res(journal.StepPreflight, 1, true, "", "", 0, 0.1), res(journal.StepBackup, 1, true, "", "", 0.1, 0.5),
			res(journal.StepUpgrade, 1, true, "", "", 0.5, 1), res(journal.StepReset, 1, true, "", "", 1, 2),
			res(journal.StepBoot, 1, true, "", "", 2, 2.1),
			res(journal.StepCommit, 1, false, "reverted", "the device reverted by itself", 2.1, 40),
		},
	}
	upToDate := journal.Run{Device: "iad-003", Address: "192.0.2.3:161", Status: journal.UpToDate, Started: t0, Finished: at(0.2),
		Image: journal.Image{Version: "2.0.0"}, Baseline: &journal.Baseline{Version: "2.0.0", Bank: 2}, FinalVersion: "2.0.0", Reason: "already runs 2.0.0",
		Results: []journal.Result{res(journal.StepPreflight, 1, true, "", "", 0, 0.2)}}
	ts := targets(5)
	outs := []*Outcome{{Run: ok}, {Run: reverted}, {Run: upToDate}, {Err: errors.New("journal: put iad-004: disk full")}, nil}
	for i, n := range []string{"iad-001", "iad-002", "iad-003", "iad-004", "iad-005"} {
		ts[i].Name = n
	}
	rep := Build(ts, outs, "stop rule: 2 of 5 devices failed (more than 10%)", t0, at(41))
	var tab, js bytes.Buffer
	if err := rep.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", tab.Bytes())
	golden(t, "report.json", js.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s\nwant:\n%s", name, got, want)
	}
}
