package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/iadsafe/iad-agent/agent/journal"
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/mib"
)

// An upgrade whose bank was armed just before a crash completed: the
// restarted agent must say so instead of "interrupted".
func TestUpgradeArmedAfterCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	devs := map[bank.Slot]bank.Device{}
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		f, err := bank.OpenFile(filepath.Join(dir, s.String()), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		devs[s] = f
	}
	banks, err := bank.New(ctx, bank.Options{Devices: devs, Store: bank.NewFileStore(filepath.Join(dir, "state.json")),
		Factory: bank.SlotInfo{Version: "1.0.0", Factory: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := banks.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	a := &Agent{banks: banks}
	op := journal.Op{Type: mib.OpUpgrade, State: mib.OpRunning, Arming: uint32(bank.SlotB)}
	if a.upgradeArmed(op) {
		t.Fatal("nothing armed yet: got armed")
	}
	payload := bytes.Repeat([]byte{7}, 4096)
	if _, err := banks.Install(ctx, bank.SlotInfo{Version: "2.0.0", Size: int64(len(payload)), Digest: sha256.Sum256(payload)}, bytes.NewReader(payload), nil); err != nil {
		t.Fatal(err)
	}
	if a.upgradeArmed(op) {
		t.Fatal("installed but not armed: got armed")
	}
	if err := banks.Arm(ctx, bank.SlotB); err != nil {
		t.Fatal(err)
	}
	if !a.upgradeArmed(op) {
		t.Fatal("bank B armed: got not armed")
	}
	op.Arming = 0
	if a.upgradeArmed(op) {
		t.Fatal("row that never reached arming: got armed")
	}
}
