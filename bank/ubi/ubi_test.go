package ubi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
)

// fakeKernel behaves like the kernel's UBI volume character device: an
// update announces its length and sets the update marker; the marker is
// cleared when exactly that many bytes have arrived; reads of a marked
// volume fail with EBADF, as vol_cdev_read does.
type fakeKernel struct {
	data      []byte
	used      int64
	marker    bool
	remaining int64
	updates   int
	failWrite int // fail the write that would pass this many bytes; 0 never
	written   int64
}

func (k *fakeKernel) startUpdate(size int64) error {
	k.updates++
	k.marker, k.remaining, k.used = true, size, 0
	if size == 0 {
		k.marker = false
	}
	return nil
}

func (k *fakeKernel) Write(p []byte) (int, error) {
	if !k.marker {
		return 0, syscall.EPERM
	}
	if k.failWrite > 0 && k.written+int64(len(p)) > int64(k.failWrite) {
		return 0, syscall.EIO
	}
	n := copy(k.data[k.used:], p[:min(int64(len(p)), k.remaining)])
	k.used += int64(n)
	k.remaining -= int64(n)
	k.written += int64(n)
	if k.remaining == 0 {
		k.marker = false
	}
	return n, nil
}

func (k *fakeKernel) ReadAt(p []byte, off int64) (int, error) {
	if k.marker {
		return 0, syscall.EBADF
	}
	return copy(p, k.data[off:]), nil
}

func (k *fakeKernel) Sync() error  { return nil }
func (k *fakeKernel) Close() error { return nil }

func TestVolumeUpdate(t *testing.T) {
	k := &fakeKernel{data: make([]byte, 1<<20)}
	v := newVolume(k, "ubi0_0", 1<<20)
	if _, err := v.WriteAt([]byte{1}, 0); !errors.Is(err, ErrNoUpdate) {
		t.Fatalf("write before update: %v, want ErrNoUpdate", err)
	}
	if err := v.BeginUpdate(2 << 20); !errors.Is(err, ErrOverrun) {
		t.Fatalf("update larger than the volume: %v, want ErrOverrun", err)
	}
	if err := v.BeginUpdate(10); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ReadAt(make([]byte, 4), 0); !errors.Is(err, ErrCorrupted) {
		t.Fatalf("read mid-update: %v, want ErrCorrupted", err)
	}
	if _, err := v.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt([]byte("x"), 9); !errors.Is(err, ErrNotSequential) {
		t.Fatalf("skipping ahead: %v, want ErrNotSequential", err)
	}
	if _, err := v.WriteAt([]byte("world!"), 5); !errors.Is(err, ErrOverrun) {
		t.Fatalf("past the announced length: %v, want ErrOverrun", err)
	}
	if _, err := v.WriteAt([]byte("world"), 5); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 10)
	if _, err := v.ReadAt(got, 0); err != nil || string(got) != "helloworld" {
		t.Fatalf("read after update: %q %v", got, err)
	}
	if _, err := v.WriteAt([]byte("x"), 10); !errors.Is(err, ErrNoUpdate) {
		t.Fatalf("write after the update ended: %v, want ErrNoUpdate", err)
	}
}

// TestBankOnVolumes installs through the bank; an install that fails
// half-way leaves the volume corrupted, and Boot refuses it.
func TestBankOnVolumes(t *testing.T) {
	ctx := context.Background()
	ks := map[bank.Slot]*fakeKernel{}
	devs := map[bank.Slot]bank.Device{}
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		ks[s] = &fakeKernel{data: make([]byte, 4<<20)}
		devs[s] = newVolume(ks[s], "vol"+s.String(), 4<<20)
	}
	store := bank.NewFileStore(filepath.Join(t.TempDir(), "state.json"))
	b, err := bank.New(ctx, bank.Options{Devices: devs, Store: store, Factory: bank.SlotInfo{Version: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("payload!"), 300_000)
	meta := bank.SlotInfo{Version: "2", Size: int64(len(data)), Digest: sha256.Sum256(data)}

	ks[bank.SlotB].failWrite = 1 << 20
	if _, err := b.Install(ctx, meta, bytes.NewReader(data), nil); !errors.Is(err, bank.ErrWrite) {
		t.Fatalf("install with a failing write: %v, want ErrWrite", err)
	}
	if !ks[bank.SlotB].marker {
		t.Fatal("the interrupted update did not leave the volume marked")
	}
	if st := b.Status(bank.SlotB); st != bank.StatusEmpty {
		t.Fatalf("slot B after a failed install: %v, want empty", st)
	}
	ks[bank.SlotB].failWrite = 0
	s, err := b.Install(ctx, meta, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ks[bank.SlotB].updates != 2 || ks[bank.SlotB].marker {
		t.Fatalf("updates %d marker %v, want 2 and cleared", ks[bank.SlotB].updates, ks[bank.SlotB].marker)
	}
	if err := b.Arm(ctx, s); err != nil {
		t.Fatal(err)
	}
	// Even a state that calls the slot valid cannot boot a volume whose
	// update was cut: the kernel refuses the reads.
	ks[bank.SlotB].startUpdate(int64(len(data)))
	b2, err := bank.New(ctx, bank.Options{Devices: devs, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b2.Boot(ctx)
	if err != nil || res.Slot != bank.SlotA || !res.Reverted {
		t.Fatalf("boot with B corrupted: %+v %v, want A after abandoning B", res, err)
	}
}
