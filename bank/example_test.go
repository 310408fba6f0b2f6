package bank_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/iadsafe/iad-agent/bank"
)

// open is what the start of the software does: open both slots and the
// state, then Boot.
func open(ctx context.Context, dir string) (*bank.Banks, bank.BootResult, func()) {
	var devs []*bank.File
	devices := map[bank.Slot]bank.Device{}
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		d, err := bank.OpenFile(filepath.Join(dir, "slot-"+s.String()+".img"), 1<<20)
		if err != nil {
			log.Fatal(err)
		}
		devs = append(devs, d)
		devices[s] = d
	}
	b, err := bank.New(ctx, bank.Options{
		Devices: devices,
		Store:   bank.NewFileStore(filepath.Join(dir, "state.json")),
		Factory: bank.SlotInfo{Version: "1.0.0"},
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := b.Boot(ctx)
	if err != nil {
		log.Fatal(err)
	}
	return b, res, func() {
		for _, d := range devs {
			d.Close()
		}
	}
}

func ExampleBanks() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bank-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	b, res, closeDevs := open(ctx, dir)
	defer closeDevs()
	st := b.Snapshot()
	fmt.Printf("booted %v (%s), trial %v\n", res.Slot, st.Slots[res.Slot].Version, res.Trial)
	fmt.Printf("an upgrade writes %v, which is %v\n", b.Inactive(), b.Status(b.Inactive()))
	// Output:
	// booted A (1.0.0), trial false
	// an upgrade writes B, which is empty
}

func ExampleBanks_Install() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bank-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	b, _, closeDevs := open(ctx, dir)
	payload := bytes.Repeat([]byte("new software "), 1000)
	meta := bank.SlotInfo{Version: "2.0.0", Size: int64(len(payload)), Digest: sha256.Sum256(payload)}
	slot, err := b.Install(ctx, meta, bytes.NewReader(payload), nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Arm(ctx, slot); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("installed %v, next boot %v with %d tries\n", slot, b.Next(), b.Snapshot().TriesLeft)
	closeDevs()

	// Reset: the new software boots on trial and, once healthy, commits.
	b, res, closeDevs := open(ctx, dir)
	defer closeDevs()
	fmt.Printf("booted %v on trial: %v\n", res.Slot, res.Trial)
	committed, err := b.Commit(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("committed %v: A %v, B %v\n", committed, b.Status(bank.SlotA), b.Status(bank.SlotB))
	// Output:
	// installed B, next boot B with 3 tries
	// booted B on trial: true
	// committed true: A valid, B active
}
