package mtd_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/mtd"
)

var (
	norInfo  = mtd.Info{Type: mtd.NOR, Size: 1 << 20, EraseSize: 64 << 10, WriteSize: 1}
	nandInfo = mtd.Info{Type: mtd.NAND, Size: 2 << 20, EraseSize: 128 << 10, WriteSize: 2048}
)

func openSim(t *testing.T, opts mtd.SimOptions) *mtd.Sim {
	t.Helper()
	s, err := mtd.OpenSim(filepath.Join(t.TempDir(), "flash.bin"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSimEnforcesFlashRules(t *testing.T) {
	tests := []struct {
		name    string
		opts    mtd.SimOptions
		run     func(s *mtd.Sim) error
		wantErr error
	}{
		{"nor program erased", mtd.SimOptions{Info: norInfo}, func(s *mtd.Sim) error {
			_, err := s.WriteAt([]byte{0x12, 0x34}, 5)
			return err
		}, nil},
		{"nor clear more bits", mtd.SimOptions{Info: norInfo}, func(s *mtd.Sim) error {
			if _, err := s.WriteAt([]byte{0xF0}, 5); err != nil {
				return err
			}
			_, err := s.WriteAt([]byte{0x30}, 5) // only clears bits: allowed
			return err
		}, nil},
		{"nor set a zero bit without erase", mtd.SimOptions{Info: norInfo}, func(s *mtd.Sim) error {
			if _, err := s.WriteAt([]byte{0x0F}, 5); err != nil {
				return err
			}
			_, err := s.WriteAt([]byte{0x1F}, 5)
			return err
		}, mtd.ErrNotErased},
		{"nor erase then rewrite", mtd.SimOptions{Info: norInfo}, func(s *mtd.Sim) error {
			if _, err := s.WriteAt([]byte{0x00}, 5); err != nil {
				return err
			}
			if err := s.Erase(0); err != nil {
				return err
			}
			_, err := s.WriteAt([]byte{0xAB}, 5)
			return err
		}, nil},
		{"nand unaligned page", mtd.SimOptions{Info: nandInfo}, func(s *mtd.Sim) error {
			_, err := s.WriteAt(make([]byte, 100), 0)
			return err
		}, mtd.ErrAlignment},
		{"nand page twice", mtd.SimOptions{Info: nandInfo}, func(s *mtd.Sim) error {
			p := bytes.Repeat([]byte{0xFE}, 2048)
			if _, err := s.WriteAt(p, 2048); err != nil {
				return err
			}
			_, err := s.WriteAt(make([]byte, 2048), 2048)
			return err
		}, mtd.ErrNotErased},
		{"erase unaligned", mtd.SimOptions{Info: nandInfo}, func(s *mtd.Sim) error { return s.Erase(2048) }, mtd.ErrAlignment},
		{"erase bad block", mtd.SimOptions{Info: nandInfo, BadBlocks: []int{3}}, func(s *mtd.Sim) error { return s.Erase(3 * 128 << 10) }, mtd.ErrBadBlock},
		{"program bad block", mtd.SimOptions{Info: nandInfo, BadBlocks: []int{3}}, func(s *mtd.Sim) error {
			_, err := s.WriteAt(make([]byte, 2048), 3*128<<10+4096)
			return err
		}, mtd.ErrBadBlock},
		{"read bad block", mtd.SimOptions{Info: nandInfo, BadBlocks: []int{3}}, func(s *mtd.Sim) error {
			_, err := s.ReadAt(make([]byte, 10), 3*128<<10)
			return err
		}, mtd.ErrBadBlock},
		{"beyond the end", mtd.SimOptions{Info: norInfo}, func(s *mtd.Sim) error {
			_, err := s.WriteAt([]byte{0}, norInfo.Size)
			return err
		}, mtd.ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSim(t, tt.opts)
			err := tt.run(s)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSimRefusedProgramChangesNothing(t *testing.T) {
	s := openSim(t, mtd.SimOptions{Info: norInfo})
	if _, err := s.WriteAt([]byte{0x0F, 0xFF}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteAt([]byte{0xF0, 0x1F}, 0); !errors.Is(err, mtd.ErrNotErased) {
		t.Fatalf("got %v, want ErrNotErased", err)
	}
	got := make([]byte, 2)
	s.ReadAt(got, 0)
	if !bytes.Equal(got, []byte{0x0F, 0xFF}) {
		t.Fatalf("after a refused program: % x, want 0f ff", got)
	}
}

func TestSimBadGeometry(t *testing.T) {
	for _, opts := range []mtd.SimOptions{
		{Info: mtd.Info{Type: mtd.NAND, Size: 1 << 20, EraseSize: 3000, WriteSize: 2048}},
		{Info: mtd.Info{Type: mtd.NOR, Size: 1 << 20, EraseSize: 64 << 10, WriteSize: 1}, BadBlocks: []int{1}},
		{Info: mtd.Info{Type: mtd.NAND, Size: 1 << 20, EraseSize: 128 << 10, WriteSize: 2048}, BadBlocks: []int{8}},
		{Info: mtd.Info{Type: 9, Size: 1 << 20, EraseSize: 128 << 10, WriteSize: 2048}},
	} {
		if _, err := mtd.OpenSim(filepath.Join(t.TempDir(), "f"), opts); !errors.Is(err, mtd.ErrGeometry) {
			t.Errorf("%+v: got %v, want ErrGeometry", opts, err)
		}
	}
}

func TestSlotSkipsBadBlocks(t *testing.T) {
	sim := openSim(t, mtd.SimOptions{Info: nandInfo, BadBlocks: []int{0, 5, 6}})
	slot, err := mtd.NewSlot(sim)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := slot.Size(), int64(16-3)*nandInfo.EraseSize; got != want {
		t.Fatalf("usable size %d, want %d (13 good blocks)", got, want)
	}
	if slot.BadBlocks() != 3 {
		t.Fatalf("bad blocks %d, want 3", slot.BadBlocks())
	}
	data := make([]byte, slot.Size()-1000) // ends mid-page
	fill(data, 1)
	// Odd chunk sizes exercise the partial-page buffer.
	for off, step := 0, 7777; off < len(data); off += step {
		end := min(off+step, len(data))
		if n, err := slot.WriteAt(data[off:end], int64(off)); err != nil || n != end-off {
			t.Fatalf("WriteAt %d: n=%d err=%v", off, n, err)
		}
	}
	if err := slot.Sync(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := slot.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("read back differs from what was written")
	}
	// Logical block 0 lives in physical block 1; logical 4 in physical 7.
	phys := make([]byte, 16)
	sim.ReadAt(phys, 7*nandInfo.EraseSize)
	if !bytes.Equal(phys, data[4*nandInfo.EraseSize:][:16]) {
		t.Fatal("logical block 4 is not in physical block 7")
	}
	for b := 1; b < 16; b++ {
		want := 1
		if b == 5 || b == 6 {
			want = 0
		}
		if got := sim.Erases(int64(b) * nandInfo.EraseSize); got != want {
			t.Errorf("block %d erased %d times, want %d", b, got, want)
		}
	}
	// The sequence ended with a padded page: continuing it is refused.
	if _, err := slot.WriteAt([]byte{1}, int64(len(data))); !errors.Is(err, mtd.ErrNotSequential) {
		t.Fatalf("write after the sealed page: got %v, want ErrNotSequential", err)
	}
	if _, err := slot.WriteAt([]byte{1}, 4096); !errors.Is(err, mtd.ErrNotSequential) {
		t.Fatalf("write in the middle: got %v, want ErrNotSequential", err)
	}
}

func TestSlotAllBad(t *testing.T) {
	sim := openSim(t, mtd.SimOptions{Info: mtd.Info{Type: mtd.NAND, Size: 256 << 10, EraseSize: 128 << 10, WriteSize: 2048}, BadBlocks: []int{0, 1}})
	if _, err := mtd.NewSlot(sim); !errors.Is(err, mtd.ErrBadBlock) {
		t.Fatalf("got %v, want ErrBadBlock", err)
	}
}

// TestBankOnFlash runs the bank's whole install and boot cycle on NOR and
// NAND slots, twice, so the second install must erase what the first
// programmed.
func TestBankOnFlash(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts mtd.SimOptions
	}{
		{"nor", mtd.SimOptions{Info: norInfo}},
		{"nand with bad blocks", mtd.SimOptions{Info: nandInfo, BadBlocks: []int{2, 9}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			devs := map[bank.Slot]bank.Device{}
			for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
				sim, err := mtd.OpenSim(filepath.Join(dir, s.String()+".bin"), tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				slot, err := mtd.NewSlot(sim)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { slot.Close() })
				devs[s] = slot
			}
			store := bank.NewFileStore(filepath.Join(dir, "state.json"))
			b, err := bank.New(ctx, bank.Options{Devices: devs, Store: store, Factory: bank.SlotInfo{Version: "1"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Boot(ctx); err != nil {
				t.Fatal(err)
			}
			for i, size := range []int{900_000, 700_001} {
				data := make([]byte, size)
				fill(data, uint64(i))
				meta := bank.SlotInfo{Version: "2", Size: int64(size), Digest: sha256.Sum256(data)}
				s, err := b.Install(ctx, meta, bytes.NewReader(data), nil)
				if err != nil {
					t.Fatalf("install %d: %v", i, err)
				}
				if s != bank.SlotB {
					t.Fatalf("installed into %v, want B", s)
				}
			}
			if err := b.Arm(ctx, bank.SlotB); err != nil {
				t.Fatal(err)
			}
			b2, err := bank.New(ctx, bank.Options{Devices: devs, Store: store})
			if err != nil {
				t.Fatal(err)
			}
			res, err := b2.Boot(ctx)
			if err != nil || res.Slot != bank.SlotB || !res.Trial {
				t.Fatalf("boot after install: %+v, %v; want trial B", res, err)
			}
		})
	}
}

func fill(p []byte, seed uint64) {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(p)
}
