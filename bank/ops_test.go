package bank_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
)

type statuses struct{ a, b bank.Status }

func statusOf(b *bank.Banks) statuses {
	return statuses{b.Status(bank.SlotA), b.Status(bank.SlotB)}
}

// TestLifecycle walks upgrade, trial, commit and revert across resets and
// checks what the MIB would show at each step.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	b, _ := r.boot(t)
	check := func(step string, b *bank.Banks, running, next bank.Slot, want statuses) {
		t.Helper()
		if got := b.Running(); got != running {
			t.Errorf("%s: Running = %v, want %v", step, got, running)
		}
		if got := b.Next(); got != next {
			t.Errorf("%s: Next = %v, want %v", step, got, next)
		}
		if got := statusOf(b); got != want {
			t.Errorf("%s: status A,B = %v,%v, want %v,%v", step, got.a, got.b, want.a, want.b)
		}
		if got := b.Inactive(); got != running.Other() {
			t.Errorf("%s: Inactive = %v, want %v", step, got, running.Other())
		}
	}
	check("factory", b, bank.SlotA, bank.SlotA, statuses{bank.StatusActive, bank.StatusEmpty})

	if err := b.Arm(ctx, bank.SlotB); !errors.Is(err, bank.ErrNotValid) {
		t.Errorf("Arm empty = %v, want %v", err, bank.ErrNotValid)
	}
	if err := b.Arm(ctx, bank.SlotA); !errors.Is(err, bank.ErrSlotBusy) {
		t.Errorf("Arm running = %v, want %v", err, bank.ErrSlotBusy)
	}
	if _, err := b.Revert(ctx); !errors.Is(err, bank.ErrNoFallback) {
		t.Errorf("Revert with empty B = %v, want %v", err, bank.ErrNoFallback)
	}
	if ok, err := b.Commit(ctx); ok || err != nil {
		t.Errorf("Commit of committed = %v, %v, want false, nil", ok, err)
	}

	install(t, b, "2.0.0", payload(2, 4096))
	check("installed", b, bank.SlotA, bank.SlotA, statuses{bank.StatusActive, bank.StatusValid})
	if err := b.Arm(ctx, bank.SlotB); err != nil {
		t.Fatal(err)
	}
	check("armed", b, bank.SlotA, bank.SlotB, statuses{bank.StatusActive, bank.StatusTrial})

	// Revert of an armed trial that has not booted just disarms it.
	if reset, err := b.Revert(ctx); reset || err != nil {
		t.Errorf("Revert armed = %v, %v, want false, nil", reset, err)
	}
	check("disarmed", b, bank.SlotA, bank.SlotA, statuses{bank.StatusActive, bank.StatusValid})
	if err := b.Arm(ctx, bank.SlotB); err != nil {
		t.Fatal(err)
	}

	b, res := r.boot(t)
	if !res.Trial || res.Slot != bank.SlotB {
		t.Fatalf("boot = %+v, want B trial", res)
	}
	check("trial running", b, bank.SlotB, bank.SlotB, statuses{bank.StatusValid, bank.StatusTrial})
	if st := b.Snapshot(); st.TriesLeft != 2 || st.Active != bank.SlotA {
		t.Errorf("tries %d active %v, want 2 A", st.TriesLeft, st.Active)
	}

	// Revert of a running trial: next boot goes back to A.
	if reset, err := b.Revert(ctx); !reset || err != nil {
		t.Errorf("Revert running trial = %v, %v, want true, nil", reset, err)
	}
	check("trial reverted", b, bank.SlotB, bank.SlotA, statuses{bank.StatusValid, bank.StatusValid})
	if ok, _ := b.Commit(ctx); ok {
		t.Errorf("Commit after revert committed")
	}
	b, res = r.boot(t)
	if res != (bank.BootResult{Slot: bank.SlotA}) {
		t.Errorf("boot after revert = %+v, want plain A", res)
	}

	// Trial again, and commit this time.
	if err := b.Arm(ctx, bank.SlotB); err != nil {
		t.Fatal(err)
	}
	b, _ = r.boot(t)
	if ok, err := b.Commit(ctx); !ok || err != nil {
		t.Fatalf("Commit = %v, %v, want true, nil", ok, err)
	}
	check("committed", b, bank.SlotB, bank.SlotB, statuses{bank.StatusValid, bank.StatusActive})
	if st := b.Snapshot(); st.Trial != 0 || st.TriesLeft != 0 || st.Active != bank.SlotB {
		t.Errorf("trial %v tries %d active %v, want none 0 B", st.Trial, st.TriesLeft, st.Active)
	}
	if ok, _ := b.Commit(ctx); ok {
		t.Errorf("second Commit reported a commit")
	}

	// Revert of committed software makes A active again; twice is once.
	for i := range 2 {
		if reset, err := b.Revert(ctx); !reset || err != nil {
			t.Errorf("Revert committed #%d = %v, %v, want true, nil", i+1, reset, err)
		}
	}
	check("committed reverted", b, bank.SlotB, bank.SlotA, statuses{bank.StatusValid, bank.StatusValid})

	// An upgrade now overwrites A, the pending revert target: the running
	// B becomes active again so the new payload is never booted untried.
	if got := install(t, b, "3.0.0", payload(3, 100)); got != bank.SlotA {
		t.Fatalf("Install = %v, want A", got)
	}
	check("upgrade after revert", b, bank.SlotB, bank.SlotB, statuses{bank.StatusValid, bank.StatusActive})

	b, res = r.boot(t)
	if res != (bank.BootResult{Slot: bank.SlotB}) {
		t.Errorf("final boot = %+v, want plain B", res)
	}
}

func TestBootLimit(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	b, _ := r.boot(t)
	if got := b.BootLimit(); got != bank.DefaultBootLimit {
		t.Errorf("BootLimit = %d, want %d", got, bank.DefaultBootLimit)
	}
	for _, n := range []int{0, -1, 11} {
		if err := b.SetBootLimit(ctx, n); !errors.Is(err, bank.ErrBadLimit) {
			t.Errorf("SetBootLimit(%d) = %v, want %v", n, err, bank.ErrBadLimit)
		}
	}
	if err := b.SetBootLimit(ctx, 5); err != nil {
		t.Fatal(err)
	}
	b, _ = r.boot(t)
	if got := b.BootLimit(); got != 5 {
		t.Errorf("BootLimit after restart = %d, want 5", got)
	}
	install(t, b, "2.0.0", payload(2, 10))
	if err := b.Arm(ctx, bank.SlotB); err != nil {
		t.Fatal(err)
	}
	// A new limit does not change a trial already armed.
	if err := b.SetBootLimit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := b.Snapshot().TriesLeft; got != 5 {
		t.Errorf("TriesLeft = %d, want 5", got)
	}

	opts := r.options()
	opts.DefaultBootLimit = 11
	if _, err := bank.New(ctx, opts); !errors.Is(err, bank.ErrBadLimit) {
		t.Errorf("New with limit 11 = %v, want %v", err, bank.ErrBadLimit)
	}
}

func TestNotBooted(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	b, err := bank.New(ctx, r.options())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Install(ctx, meta("2", []byte("x")), bytes.NewReader([]byte("x")), nil); !errors.Is(err, bank.ErrNotBooted) {
		t.Errorf("Install = %v, want %v", err, bank.ErrNotBooted)
	}
	if err := b.Arm(ctx, bank.SlotB); !errors.Is(err, bank.ErrNotBooted) {
		t.Errorf("Arm = %v, want %v", err, bank.ErrNotBooted)
	}
	if _, err := b.Commit(ctx); !errors.Is(err, bank.ErrNotBooted) {
		t.Errorf("Commit = %v, want %v", err, bank.ErrNotBooted)
	}
	if _, err := b.Revert(ctx); !errors.Is(err, bank.ErrNotBooted) {
		t.Errorf("Revert = %v, want %v", err, bank.ErrNotBooted)
	}
	if b.Running() != 0 || b.Inactive() != 0 {
		t.Errorf("Running, Inactive = %v, %v before Boot, want none", b.Running(), b.Inactive())
	}
	if got := b.Status(bank.SlotA); got != bank.StatusValid {
		t.Errorf("Status(A) before Boot = %v, want valid", got)
	}
	if got := b.Status(3); got != 0 {
		t.Errorf("Status(3) = %v, want 0", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	r := newRig(t)
	tests := []struct {
		name string
		mod  func(o *bank.Options)
	}{
		{"no store", func(o *bank.Options) { o.Store = nil }},
		{"no slot B", func(o *bank.Options) { delete(o.Devices, bank.SlotB) }},
		{"nil slot A", func(o *bank.Options) { o.Devices[bank.SlotA] = nil }},
		{"extra slot", func(o *bank.Options) { o.Devices[3] = r.fakes[bank.SlotA] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := r.options()
			tt.mod(&o)
			if _, err := bank.New(context.Background(), o); err == nil {
				t.Errorf("New succeeded, want error")
			}
		})
	}
}

func TestSlot(t *testing.T) {
	tests := []struct {
		s     bank.Slot
		str   string
		other bank.Slot
		valid bool
	}{
		{bank.SlotA, "A", bank.SlotB, true},
		{bank.SlotB, "B", bank.SlotA, true},
		{0, "none", 0, false},
		{3, "Slot(3)", 0, false},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.str {
			t.Errorf("String(%d) = %q, want %q", int(tt.s), got, tt.str)
		}
		if got := tt.s.Other(); got != tt.other {
			t.Errorf("Other(%v) = %v, want %v", tt.s, got, tt.other)
		}
		if got := tt.s.Valid(); got != tt.valid {
			t.Errorf("Valid(%v) = %v, want %v", tt.s, got, tt.valid)
		}
	}
	// The numbers are the MIB's and appear on the wire.
	if bank.SlotA != 1 || bank.SlotB != 2 || bank.StatusEmpty != 1 || bank.StatusWriting != 2 ||
		bank.StatusValid != 3 || bank.StatusTrial != 4 || bank.StatusActive != 5 || bank.StatusBad != 6 {
		t.Errorf("MIB numbers changed")
	}
}
