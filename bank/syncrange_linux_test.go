package bank_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
)

// TestFileInstallSyncsRanges installs into real file slots, where the
// read-back follows the writer through sync_file_range, and checks the
// slot holds the payload.
func TestFileInstallSyncsRanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const size = 4 << 20
	devs := map[bank.Slot]bank.Device{}
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		d, err := bank.OpenFile(filepath.Join(dir, "slot-"+s.String()), size)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		devs[s] = d
	}
	var _ bank.RangeSyncer = devs[bank.SlotB].(*bank.File)
	b, err := bank.New(ctx, bank.Options{Devices: devs, Store: bank.NewFileStore(filepath.Join(dir, "state.json")),
		Factory: bank.SlotInfo{Version: "1.0.0", Factory: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	data := payload(9, 3*bank.ChunkSize+777)
	s, err := b.Install(ctx, meta("2.0.0", data), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := devs[s].ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("slot %v does not hold the payload (%v)", s, err)
	}
	f := devs[s].(*bank.File)
	f.Close()
	if err := f.SyncRange(0, 1); err == nil {
		t.Fatal("SyncRange on a closed device succeeded")
	}
}
