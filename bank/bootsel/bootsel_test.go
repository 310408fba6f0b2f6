package bootsel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/bootsel"
	"github.com/iadsafe/iad-agent/bank/setup"
)

// fakeStarter records the banks it was asked to start and fails those
// listed in fail; a success ends the run as an exec would.
type fakeStarter struct {
	fail    map[bank.Slot]bool
	started []bank.Slot
	targets []setup.Target
}

var errExec = errors.New("exec'd")

func (f *fakeStarter) Start(_ context.Context, s bank.Slot, t setup.Target) error {
	f.started = append(f.started, s)
	f.targets = append(f.targets, t)
	if f.fail[s] {
		return fmt.Errorf("mount failed")
	}
	return errExec
}

func config(t *testing.T, dir string) *setup.Config {
	t.Helper()
	text := `
[slot A]
type = file
path = a.img
size = 1MiB
[slot B]
type = file
path = b.img
size = 1MiB
[state]
type = file
path = state.json
boot_counter = bootloader
[boot]
root_A = /dev/vda2
root_B = /dev/vda3
fstype_B = ext4
`
	c, err := setup.Parse(strings.NewReader(text), filepath.Join(dir, "bank.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// arm installs a payload into B and arms it, as the agent would.
func arm(t *testing.T, c *setup.Config) {
	t.Helper()
	ctx := context.Background()
	o, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	opts := o.Options(c)
	opts.BootCounted = false
	b, err := bank.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("rootfs"), 10000)
	s, err := b.Install(ctx, bank.SlotInfo{Version: "2", Size: int64(len(data)), Digest: sha256.Sum256(data)}, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Arm(ctx, s); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, dir string) bank.State {
	t.Helper()
	st, err := bank.NewFileStore(filepath.Join(dir, "state.json")).Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func run(t *testing.T, c *setup.Config, f *fakeStarter) error {
	t.Helper()
	return bootsel.Run(context.Background(), bootsel.Options{Config: c, Starter: f})
}

func TestFreshDeviceStartsA(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir)
	f := &fakeStarter{}
	if err := run(t, c, f); !errors.Is(err, bootsel.ErrNothingStarted) || !errors.Is(err, errExec) {
		t.Fatalf("got %v", err)
	}
	if len(f.started) != 1 || f.started[0] != bank.SlotA || f.targets[0].Root != "/dev/vda2" || f.targets[0].FSType != "squashfs" {
		t.Fatalf("started %v %+v, want A on /dev/vda2 (squashfs)", f.started, f.targets)
	}
}

func TestTrialSpendsATry(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir)
	arm(t, c)
	for want := 2; want >= 0; want-- {
		f := &fakeStarter{}
		run(t, c, f)
		if f.started[0] != bank.SlotB || f.targets[0].FSType != "ext4" {
			t.Fatalf("started %v, want B first", f.started)
		}
		if st := load(t, dir); st.TriesLeft != want || st.Trial != bank.SlotB {
			t.Fatalf("after a trial start: tries %d trial %v, want %d B", st.TriesLeft, st.Trial, want)
		}
	}
	// Tries spent: back to A, B abandoned.
	f := &fakeStarter{}
	run(t, c, f)
	if f.started[0] != bank.SlotA {
		t.Fatalf("started %v after the tries ran out, want A", f.started)
	}
	if st := load(t, dir); st.Trial != 0 || st.Abandoned != bank.SlotB || st.Slots[bank.SlotB].State != bank.SlotBad {
		t.Fatalf("state %+v, want no trial and B abandoned", st)
	}
}

func TestTrialFailsToStartFallsBack(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir)
	arm(t, c)
	f := &fakeStarter{fail: map[bank.Slot]bool{bank.SlotB: true}}
	err := run(t, c, f)
	if !errors.Is(err, errExec) || len(f.started) != 2 || f.started[0] != bank.SlotB || f.started[1] != bank.SlotA {
		t.Fatalf("started %v (%v), want B then A", f.started, err)
	}
}

func TestUnreadableStateStartsFallback(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir)
	c.Boot.Fallback = bank.SlotB
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	ch := bootsel.Select(context.Background(), c, nil)
	if !ch.Fallback || ch.Order[0] != bank.SlotB || ch.Order[1] != bank.SlotA {
		t.Fatalf("choice %+v, want fallback B then A", ch)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "state.json")); string(b) != "{garbage" {
		t.Fatalf("the unreadable state was rewritten: %q", b)
	}
}

func TestNothingStarts(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir)
	arm(t, c)
	delete(c.Boot.Targets, bank.SlotB)
	f := &fakeStarter{fail: map[bank.Slot]bool{bank.SlotA: true}}
	err := run(t, c, f)
	if !errors.Is(err, bootsel.ErrNothingStarted) || errors.Is(err, errExec) || !strings.Contains(err.Error(), "no [boot] target") {
		t.Fatalf("got %v", err)
	}
	if len(f.started) != 1 || f.started[0] != bank.SlotA {
		t.Fatalf("started %v, want only A (B has no target)", f.started)
	}
}
