package bank_test

import (
	"context"
	"errors"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
)

var factoryInfo = bank.SlotInfo{State: bank.SlotValid, Version: "1.0.0", Factory: true}

func mkState(active, trial bank.Slot, tries int, a, b bank.SlotInfo) bank.State {
	return bank.State{
		Version: 1, Active: active, Trial: trial, TriesLeft: tries, BootLimit: 3, Seq: 7,
		Slots: map[bank.Slot]bank.SlotInfo{bank.SlotA: a, bank.SlotB: b},
	}
}

// put writes data into slot s and returns its valid SlotInfo.
func (r *rig) put(t *testing.T, s bank.Slot, version string, data []byte) bank.SlotInfo {
	t.Helper()
	if _, err := r.files[s].WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	info := meta(version, data)
	info.State = bank.SlotValid
	return info
}

func (r *rig) save(t *testing.T, st bank.State) {
	t.Helper()
	if err := r.store.Save(context.Background(), st); err != nil {
		t.Fatal(err)
	}
}

func TestBoot(t *testing.T) {
	two := payload(2, 1<<20+5)
	tests := []struct {
		name    string
		setup   func(t *testing.T, r *rig)
		want    bank.BootResult
		wantErr error
		check   func(t *testing.T, st bank.State)
	}{
		{
			name: "fresh factory",
			want: bank.BootResult{Slot: bank.SlotA},
			check: func(t *testing.T, st bank.State) {
				if a := st.Slots[bank.SlotA]; a != factoryInfo {
					t.Errorf("slot A = %+v, want %+v", a, factoryInfo)
				}
				if b := st.Slots[bank.SlotB]; b.State != bank.SlotEmpty {
					t.Errorf("slot B state = %s, want empty", b.State)
				}
				if st.Active != bank.SlotA || st.Trial != 0 || st.BootLimit != 3 {
					t.Errorf("active %v trial %v limit %d, want A none 3", st.Active, st.Trial, st.BootLimit)
				}
			},
		},
		{
			name: "trial spends one try",
			setup: func(t *testing.T, r *rig) {
				r.save(t, mkState(bank.SlotA, bank.SlotB, 2, factoryInfo, r.put(t, bank.SlotB, "2.0.0", two)))
			},
			want: bank.BootResult{Slot: bank.SlotB, Trial: true},
			check: func(t *testing.T, st bank.State) {
				if st.TriesLeft != 1 || st.Trial != bank.SlotB || st.Active != bank.SlotA {
					t.Errorf("tries %d trial %v active %v, want 1 B A", st.TriesLeft, st.Trial, st.Active)
				}
			},
		},
		{
			name: "trial out of tries reverts",
			setup: func(t *testing.T, r *rig) {
				r.save(t, mkState(bank.SlotA, bank.SlotB, 0, factoryInfo, r.put(t, bank.SlotB, "2.0.0", two)))
			},
			want: bank.BootResult{Slot: bank.SlotA, Reverted: true, FailedSlot: bank.SlotB},
			check: func(t *testing.T, st bank.State) {
				if st.Slots[bank.SlotB].State != bank.SlotBad || st.Trial != 0 || st.TriesLeft != 0 {
					t.Errorf("B %s trial %v tries %d, want bad none 0", st.Slots[bank.SlotB].State, st.Trial, st.TriesLeft)
				}
			},
		},
		{
			name: "writing becomes empty",
			setup: func(t *testing.T, r *rig) {
				b := r.put(t, bank.SlotB, "2.0.0", two)
				b.State = bank.SlotWriting
				r.save(t, mkState(bank.SlotA, 0, 0, factoryInfo, b))
			},
			want: bank.BootResult{Slot: bank.SlotA},
			check: func(t *testing.T, st bank.State) {
				if got := st.Slots[bank.SlotB]; got != (bank.SlotInfo{State: bank.SlotEmpty}) {
					t.Errorf("slot B = %+v, want empty", got)
				}
			},
		},
		{
			name: "trial fails verification",
			setup: func(t *testing.T, r *rig) {
				b := r.put(t, bank.SlotB, "2.0.0", two)
				r.files[bank.SlotB].WriteAt([]byte{0xff}, 1<<20+1)
				r.save(t, mkState(bank.SlotA, bank.SlotB, 3, factoryInfo, b))
			},
			want: bank.BootResult{Slot: bank.SlotA, Reverted: true, FailedSlot: bank.SlotB},
			check: func(t *testing.T, st bank.State) {
				if st.Slots[bank.SlotB].State != bank.SlotBad || st.Trial != 0 {
					t.Errorf("B %s trial %v, want bad none", st.Slots[bank.SlotB].State, st.Trial)
				}
			},
		},
		{
			name: "trial read error",
			setup: func(t *testing.T, r *rig) {
				r.fakes[bank.SlotB].failRead = 2
				r.save(t, mkState(bank.SlotA, bank.SlotB, 3, factoryInfo, r.put(t, bank.SlotB, "2.0.0", two)))
			},
			want: bank.BootResult{Slot: bank.SlotA, Reverted: true, FailedSlot: bank.SlotB},
		},
		{
			name: "active fails verification, other valid",
			setup: func(t *testing.T, r *rig) {
				b := r.put(t, bank.SlotB, "2.0.0", two)
				r.files[bank.SlotB].WriteAt([]byte{0xff}, 0)
				a := r.put(t, bank.SlotA, "1.5.0", payload(1, 1000))
				r.save(t, mkState(bank.SlotB, 0, 0, a, b))
			},
			want: bank.BootResult{Slot: bank.SlotA, Reverted: true, FailedSlot: bank.SlotB},
			check: func(t *testing.T, st bank.State) {
				if st.Active != bank.SlotA || st.Slots[bank.SlotB].State != bank.SlotBad {
					t.Errorf("active %v, B %s, want A bad", st.Active, st.Slots[bank.SlotB].State)
				}
			},
		},
		{
			name: "nothing bootable",
			setup: func(t *testing.T, r *rig) {
				b := r.put(t, bank.SlotB, "2.0.0", two)
				r.files[bank.SlotB].WriteAt([]byte{0xff}, 0)
				r.save(t, mkState(bank.SlotB, 0, 0, bank.SlotInfo{State: bank.SlotEmpty}, b))
			},
			wantErr: bank.ErrNoBootableBank,
			check: func(t *testing.T, st bank.State) {
				// A transient read error must not brick the next attempt.
				if st.Slots[bank.SlotB].State != bank.SlotValid {
					t.Errorf("B %s, want still valid", st.Slots[bank.SlotB].State)
				}
			},
		},
		{
			name: "trial on empty slot",
			setup: func(t *testing.T, r *rig) {
				r.save(t, mkState(bank.SlotA, bank.SlotB, 3, factoryInfo, bank.SlotInfo{State: bank.SlotEmpty}))
			},
			want: bank.BootResult{Slot: bank.SlotA, Reverted: true, FailedSlot: bank.SlotB},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if tt.setup != nil {
				tt.setup(t, r)
			}
			b, err := bank.New(context.Background(), r.options())
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got, err := b.Boot(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Boot error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && got.Reverted && got.Reason == "" {
				t.Errorf("reverted without a reason")
			}
			got.Reason = ""
			if got != tt.want {
				t.Errorf("Boot = %+v, want %+v", got, tt.want)
			}
			if err == nil && b.Running() != tt.want.Slot {
				t.Errorf("Running = %v, want %v", b.Running(), tt.want.Slot)
			}
			// What Boot decided must be on disk, not only in memory.
			st, err := r.store.Load(context.Background())
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if snap := b.Snapshot(); snap.Seq != st.Seq {
				t.Errorf("saved seq %d, in memory %d", st.Seq, snap.Seq)
			}
			if tt.check != nil {
				tt.check(t, st)
			}
			if _, err := b.Boot(context.Background()); err == nil {
				t.Errorf("second Boot succeeded")
			}
		})
	}
}

// TestBootTrialExhausted reboots an uncommitted trial until its tries run
// out: it must run exactly BootLimit times, then never again.
func TestBootTrialExhausted(t *testing.T) {
	r := newRig(t)
	b, _ := r.boot(t)
	if err := b.SetBootLimit(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	s := install(t, b, "2.0.0", payload(2, 3000))
	if err := b.Arm(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	var got []bank.BootResult
	for range 4 {
		_, res := r.boot(t)
		res.Reason = ""
		got = append(got, res)
	}
	want := []bank.BootResult{
		{Slot: bank.SlotB, Trial: true},
		{Slot: bank.SlotB, Trial: true},
		{Slot: bank.SlotA, Reverted: true, FailedSlot: bank.SlotB},
		{Slot: bank.SlotA},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("boot %d = %+v, want %+v", i+1, got[i], want[i])
		}
	}
}

func TestBootSaveFailureDoesNotBootTrial(t *testing.T) {
	r := newRig(t)
	b, _ := r.boot(t)
	s := install(t, b, "2.0.0", payload(2, 3000))
	if err := b.Arm(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	opts := r.options()
	opts.Store = &cutStore{StateStore: r.store, cutAt: 1}
	b2, err := bank.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Boot(context.Background()); !errors.Is(err, errInjected) {
		t.Fatalf("Boot error = %v, want %v", err, errInjected)
	}
	if got := b2.Running(); got != 0 {
		t.Errorf("Running = %v after failed Boot, want none", got)
	}
	st, _ := r.store.Load(context.Background())
	if st.TriesLeft != 3 {
		t.Errorf("tries left on disk = %d, want 3 (unspent)", st.TriesLeft)
	}
}
