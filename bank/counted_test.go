package bank_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
)

// TestBootCounted: with a boot stage that counts (U-Boot, iad-boot),
// Boot adopts the stage's choice: the trial once a try is spent, the
// active bank while the armed trial has not booted, and a recorded
// revert is reported once.
func TestBootCounted(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	open := func(counted bool) (*bank.Banks, bank.BootResult) {
		t.Helper()
		opts := r.options()
		opts.BootCounted = counted
		b, err := bank.New(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Boot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b, res
	}
	b, _ := open(true)
	data := payload(3, 300_000)
	s, err := b.Install(ctx, meta("2", data), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Arm(ctx, s); err != nil {
		t.Fatal(err)
	}
	// The software restarts without a reset: the trial has not booted.
	b, res := open(true)
	if res.Slot != bank.SlotA || res.Trial {
		t.Fatalf("restart before the reset: %+v, want A", res)
	}
	if st := b.Snapshot(); st.TriesLeft != 3 || st.Armed != 3 {
		t.Fatalf("adopting spent a try: %+v", st)
	}
	// The boot stage (spending mode) boots the trial...
	_, res = open(false)
	if res.Slot != bank.SlotB || !res.Trial {
		t.Fatalf("boot stage: %+v, want trial B", res)
	}
	// ...and the software it started adopts that.
	b, res = open(true)
	if res.Slot != bank.SlotB || !res.Trial || b.Snapshot().TriesLeft != 2 {
		t.Fatalf("adopted %+v tries %d, want trial B with 2 left", res, b.Snapshot().TriesLeft)
	}
	// The boot stage runs out of tries and reverts; the software reports
	// the revert once.
	for range 3 {
		_, res = open(false)
	}
	if res.Slot != bank.SlotA || !res.Reverted {
		t.Fatalf("boot stage after the tries: %+v, want revert to A", res)
	}
	_, res = open(true)
	if res.Slot != bank.SlotA || !res.Reverted || res.FailedSlot != bank.SlotB {
		t.Fatalf("adopted %+v, want the revert from B reported", res)
	}
	if _, res = open(true); res.Reverted {
		t.Fatalf("the revert was reported twice: %+v", res)
	}
}

// updaterDevice records BeginUpdate calls.
type updaterDevice struct {
	*fakeDevice
	begun []int64
}

func (u *updaterDevice) BeginUpdate(size int64) error {
	u.begun = append(u.begun, size)
	return nil
}

func TestInstallBeginsUpdate(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	opts := r.options()
	u := &updaterDevice{fakeDevice: r.fakes[bank.SlotB]}
	opts.Devices[bank.SlotB] = u
	b, err := bank.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	data := payload(4, 3*bank.ChunkSize+12345)
	if _, err := b.Install(ctx, meta("2", data), bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	if len(u.begun) != 1 || u.begun[0] != int64(len(data)) {
		t.Fatalf("BeginUpdate calls %v, want one with %d", u.begun, len(data))
	}
	log := u.callLog()
	if len(log) == 0 || log[0] != fmt.Sprintf("write 0 %d", bank.ChunkSize) {
		t.Fatalf("first device call %v, want the payload write after BeginUpdate", log)
	}
	// A volume under update cannot be read: the read-back waits for the
	// sync that ends the update.
	synced := false
	for _, c := range log {
		synced = synced || c == "sync"
		if strings.HasPrefix(c, "read") && !synced {
			t.Fatalf("device calls %v: a read before the sync", log)
		}
	}
}
