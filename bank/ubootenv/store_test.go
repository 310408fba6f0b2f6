package ubootenv_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/ubootenv"
)

type rig struct {
	cfg   string
	devs  map[bank.Slot]bank.Device
	store *ubootenv.Store
}

func newRig(t *testing.T) *rig {
	t.Helper()
	cfg, _ := envFiles(t, 2)
	setenv(t, cfg, "-f", defaultsFile(t), "board", "iad")
	r := &rig{cfg: cfg, devs: map[bank.Slot]bank.Device{}}
	dir := t.TempDir()
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		f, err := bank.OpenFile(filepath.Join(dir, s.String()), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		r.devs[s] = f
	}
	store, err := ubootenv.NewStore(openEnv(t, cfg), ubootenv.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.store = store
	return r
}

func (r *rig) banks(t *testing.T, counted bool) (*bank.Banks, bank.BootResult) {
	t.Helper()
	ctx := context.Background()
	b, err := bank.New(ctx, bank.Options{Devices: r.devs, Store: r.store, Factory: bank.SlotInfo{Version: "1.0"}, BootCounted: counted})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Boot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b, res
}

func (r *rig) expect(t *testing.T, what string, want map[string]string) {
	t.Helper()
	got := printenv(t, r.cfg)
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("%s: fw_printenv %s=%q, want %q (all: %v)", what, k, got[k], w, got)
		}
	}
}

func install(t *testing.T, b *bank.Banks) bank.Slot {
	t.Helper()
	data := bytes.Repeat([]byte("v2"), 40000)
	s, err := b.Install(context.Background(), bank.SlotInfo{Version: "2.0", Size: int64(len(data)), Digest: sha256.Sum256(data)}, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Arm(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStoreTrialAndCommit: the agent counts (as iad-boot does): arming
// sets upgrade_available, each boot adds to bootcount, commit clears both.
func TestStoreTrialAndCommit(t *testing.T) {
	r := newRig(t)
	b, _ := r.banks(t, false)
	r.expect(t, "fresh", map[string]string{"boot_bank": "A", "upgrade_available": "0", "bootcount": "0", "bootlimit": "3", "board": "iad", "bootcmd": "run distro_bootcmd"})
	install(t, b)
	r.expect(t, "armed", map[string]string{"boot_bank": "B", "upgrade_available": "1", "bootcount": "0", "bootlimit": "3", "iad_active": "A", "iad_trial": "B"})
	b, res := r.banks(t, false)
	if res.Slot != bank.SlotB || !res.Trial {
		t.Fatalf("boot %+v, want trial B", res)
	}
	r.expect(t, "first trial boot", map[string]string{"boot_bank": "B", "upgrade_available": "1", "bootcount": "1"})
	if ok, err := b.Commit(context.Background()); !ok || err != nil {
		t.Fatalf("commit: %v %v", ok, err)
	}
	r.expect(t, "committed", map[string]string{"boot_bank": "B", "upgrade_available": "0", "bootcount": "0", "iad_active": "B", "iad_trial": "", "board": "iad"})
	_, res = r.banks(t, false)
	if res.Slot != bank.SlotB || res.Trial {
		t.Fatalf("boot after commit %+v, want B", res)
	}
	r.expect(t, "boot without trial", map[string]string{"bootcount": "0", "upgrade_available": "0"})
}

// TestStoreTriesSpent: three trial boots, the fourth returns to A.
func TestStoreTriesSpent(t *testing.T) {
	r := newRig(t)
	b, _ := r.banks(t, false)
	install(t, b)
	for i := 1; i <= 3; i++ {
		if _, res := r.banks(t, false); res.Slot != bank.SlotB {
			t.Fatalf("boot %d: %+v, want trial B", i, res)
		}
	}
	r.expect(t, "three boots", map[string]string{"bootcount": "3", "bootlimit": "3"})
	_, res := r.banks(t, false)
	if res.Slot != bank.SlotA || !res.Reverted || res.FailedSlot != bank.SlotB {
		t.Fatalf("fourth boot %+v, want revert to A", res)
	}
	r.expect(t, "reverted", map[string]string{"boot_bank": "A", "upgrade_available": "0", "bootcount": "0", "iad_abandoned": "B"})
}

// TestStoreBootloaderCounts: U-Boot counts (simulated with fw_setenv as
// its bootcount and altbootcmd would write); the agent adopts the choice.
func TestStoreBootloaderCounts(t *testing.T) {
	r := newRig(t)
	b, _ := r.banks(t, true)
	install(t, b)

	setenv(t, r.cfg, "bootcount", "1") // U-Boot's first trial boot
	_, res := r.banks(t, true)
	if res.Slot != bank.SlotB || !res.Trial || res.Reverted {
		t.Fatalf("adopted %+v, want trial B", res)
	}
	r.expect(t, "adopting spends nothing", map[string]string{"bootcount": "1", "upgrade_available": "1"})

	// bootcount 4 > bootlimit 3: altbootcmd goes back to the active bank.
	setenv(t, r.cfg, "bootcount", "4")
	setenv(t, r.cfg, "boot_bank", "A", "upgrade_available", "0")
	b, res = r.banks(t, true)
	if res.Slot != bank.SlotA || !res.Reverted || res.FailedSlot != bank.SlotB {
		t.Fatalf("after the bootloader's revert %+v, want A reverted from B", res)
	}
	if st := b.Status(bank.SlotB); st != bank.StatusBad {
		t.Fatalf("slot B status %v, want bad", st)
	}
	r.expect(t, "revert reported", map[string]string{"iad_trial": "", "iad_abandoned": "", "boot_bank": "A"})
	if _, res = r.banks(t, true); res.Reverted {
		t.Fatalf("revert reported twice: %+v", res)
	}
}

func TestStoreNeedsDefaultsOnBlank(t *testing.T) {
	cfg, _ := envFiles(t, 2)
	store, err := ubootenv.NewStore(openEnv(t, cfg), ubootenv.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.Load(ctx); !errors.Is(err, bank.ErrNoState) {
		t.Fatalf("load blank: %v, want ErrNoState", err)
	}
	st := bank.State{Version: 1, Active: bank.SlotA, BootLimit: 3, Slots: map[bank.Slot]bank.SlotInfo{bank.SlotA: {State: bank.SlotValid}, bank.SlotB: {State: bank.SlotEmpty}}}
	if err := store.Save(ctx, st); !errors.Is(err, ubootenv.ErrNoEnv) {
		t.Fatalf("save blank without defaults: %v, want ErrNoEnv", err)
	}
	store, _ = ubootenv.NewStore(openEnv(t, cfg), ubootenv.StoreOptions{Defaults: ubootenv.Vars{"bootcmd": "boot"}, BankValues: [2]string{"2", "3"}})
	if err := store.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	if v := printenv(t, cfg); v["bootcmd"] != "boot" || v["boot_bank"] != "2" {
		t.Fatalf("fw_printenv %v", v)
	}
	got, err := store.Load(ctx)
	if err != nil || got.Active != bank.SlotA || got.Slots[bank.SlotA].State != bank.SlotValid {
		t.Fatalf("load %+v %v", got, err)
	}
}

func TestStoreCorruptVariables(t *testing.T) {
	for _, tc := range [][]string{
		{"boot_bank", "C"},
		{"bootcount", "many"},
		{"iad_slot_a", "{"},
		{"iad_seq", "x"},
	} {
		r := newRig(t)
		r.banks(t, false)
		setenv(t, r.cfg, tc...)
		if _, err := r.store.Load(context.Background()); !errors.Is(err, bank.ErrCorruptState) {
			t.Errorf("%v: got %v, want ErrCorruptState", tc, err)
		}
	}
}
