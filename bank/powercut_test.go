package bank_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/bank"
)

var powerSeed = flag.Uint64("bank.seed", 0, "seed for TestPowerCut; 0 picks one")

// TestPowerCut runs upgrades, arms, commits and reboots on the same files,
// losing power at random points: in the middle of a payload (at a random
// byte), or at a random state save (before or after it reaches the disk).
// After every restart, Boot must succeed and choose a slot whose content
// verifies.
func TestPowerCut(t *testing.T) {
	seed := *powerSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -bank.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	dir := t.TempDir()
	var cuts, trials, reverts, installs int

	for i := range 60 {
		r := openRig(t, dir)
		store := &cutStore{StateStore: r.store}
		for _, d := range r.fakes {
			d.onCut = store.kill
		}
		opts := r.options()
		opts.Store = store
		if rng.IntN(8) == 0 {
			// Lose power while Boot saves its decision.
			store.cutAt, store.persisted = 1, rng.IntN(2) == 0
		}
		b, err := bank.New(ctx, opts)
		if errors.Is(err, errInjected) {
			cuts++
			continue
		}
		if err != nil {
			t.Fatalf("restart %d: New: %v", i, err)
		}
		res, err := b.Boot(ctx)
		if errors.Is(err, errInjected) {
			cuts++
			continue
		}
		if err != nil {
			t.Fatalf("restart %d: Boot: %v", i, err)
		}
		checkBootable(t, i, r, b, res.Slot)
		if res.Trial {
			trials++
		}
		if res.Reverted {
			reverts++
		}

		switch rng.IntN(5) {
		case 0, 1, 2:
			// Sometimes a second upgrade follows an armed one in the same
			// run: it must disarm the slot before overwriting it.
			for n := 1 + rng.IntN(2); n > 0 && !store.dead; n-- {
				data := payload(byte(i+n), 1+rng.IntN(5<<19))
				switch rng.IntN(3) {
				case 0:
					d := r.fakes[b.Inactive()]
					d.cut, d.cutAfter = true, d.written+rng.Int64N(int64(len(data))+1)
				case 1:
					store.cutAt, store.persisted = store.n+1+rng.IntN(3), rng.IntN(2) == 0
				}
				s, err := b.Install(ctx, meta(fmt.Sprintf("v%d.%d", i, n), data), bytes.NewReader(data), nil)
				if err == nil {
					installs++
					err = b.Arm(ctx, s)
				}
				if err != nil && !errors.Is(err, errInjected) && !errors.Is(err, bank.ErrSlotBusy) {
					t.Fatalf("restart %d: upgrade: %v", i, err)
				}
			}
		case 3:
			if rng.IntN(2) == 0 {
				store.cutAt, store.persisted = 1, rng.IntN(2) == 0
			}
			if _, err := b.Commit(ctx); err != nil && !errors.Is(err, errInjected) {
				t.Fatalf("restart %d: Commit: %v", i, err)
			}
		}
		if store.dead {
			cuts++
		}
	}
	t.Logf("%d power cuts, %d installs, %d trial boots, %d reverts", cuts, installs, trials, reverts)
}

// checkBootable checks, independently of Boot, that the booted slot holds
// what the state says it holds.
func checkBootable(t *testing.T, i int, r *rig, b *bank.Banks, s bank.Slot) {
	t.Helper()
	info := b.Snapshot().Slots[s]
	if info.State != bank.SlotValid {
		t.Fatalf("restart %d: booted slot %v is %s", i, s, info.State)
	}
	if info.Factory {
		return
	}
	if got := bank.Digest(sha256.Sum256(r.content(t, s)[:info.Size])); got != info.Digest {
		t.Fatalf("restart %d: booted slot %v content digest %v, want %v", i, s, got, info.Digest)
	}
}
