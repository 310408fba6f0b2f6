package bank_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func goldenState() bank.State {
	b := meta("2.0.0", []byte("payload"))
	b.State = bank.SlotValid
	return bank.State{
		Version: 1, Active: bank.SlotA, Trial: bank.SlotB, TriesLeft: 2, BootLimit: 3, Seq: 42,
		Slots: map[bank.Slot]bank.SlotInfo{bank.SlotA: factoryInfo, bank.SlotB: b},
	}
}

// TestFileStoreGolden pins the on-disk format: a change here breaks every
// device in the field.
func TestFileStoreGolden(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s := bank.NewFileStore(path)
	if err := s.Save(ctx, goldenState()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "state-v1.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("saved state:\n%s\nwant (%s):\n%s", got, golden, want)
	}
	loaded, err := bank.NewFileStore(golden).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, goldenState()) {
		t.Errorf("Load(golden) = %+v, want %+v", loaded, goldenState())
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestFileStoreMissing(t *testing.T) {
	_, err := bank.NewFileStore(filepath.Join(t.TempDir(), "none.json")).Load(context.Background())
	if !errors.Is(err, bank.ErrNoState) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load = %v, want %v wrapping %v", err, bank.ErrNoState, fs.ErrNotExist)
	}
}

// TestFileStoreLeftoverTmp: a power cut between writing path.tmp and the
// rename leaves a partial temporary file; Load must ignore it and the next
// Save must replace it.
func TestFileStoreLeftoverTmp(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s := bank.NewFileStore(path)
	if err := s.Save(ctx, goldenState()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", []byte(`{"version": 1, "act`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load with leftover tmp: %v", err)
	}
	if got.Seq != 42 {
		t.Errorf("seq = %d, want 42", got.Seq)
	}
	next := goldenState()
	next.Seq = 43
	if err := s.Save(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(ctx); got.Seq != 43 {
		t.Errorf("seq after save = %d, want 43", got.Seq)
	}
}

func TestFileStoreCorrupt(t *testing.T) {
	valid, err := os.ReadFile(filepath.Join("testdata", "state-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data string
	}{
		{"empty file", ""},
		{"truncated", string(valid[:len(valid)/2])},
		{"not json", "version=1\n"},
		{"no version", strings.Replace(string(valid), `"version": 1,`, "", 1)},
		{"future version", strings.Replace(string(valid), `"version": 1,`, `"version": 2,`, 1)},
		{"bad slot name", strings.Replace(string(valid), `"active": "A"`, `"active": "C"`, 1)},
		{"no active slot", strings.Replace(string(valid), `"active": "A"`, `"active": ""`, 1)},
		{"unknown slot state", strings.Replace(string(valid), `"state": "valid"`, `"state": "trial"`, 1)},
		{"bad digest", strings.Replace(string(valid), `"digest": "0000`, `"digest": "zz00`, 1)},
		{"missing slot", `{"version": 1, "active": "A", "trial": "", "tries_left": 0, "boot_limit": 3, "slots": {"A": {"state": "valid"}}, "seq": 1}`},
		{"boot limit", strings.Replace(string(valid), `"boot_limit": 3`, `"boot_limit": 0`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.data == string(valid) {
				t.Fatal("replacement did not apply; fix the test")
			}
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			s := bank.NewFileStore(path)
			if _, err := s.Load(context.Background()); !errors.Is(err, bank.ErrCorruptState) {
				t.Errorf("Load = %v, want %v", err, bank.ErrCorruptState)
			}
			// New must refuse too, and leave the file for inspection.
			r := newRig(t)
			opts := r.options()
			opts.Store = s
			if _, err := bank.New(context.Background(), opts); !errors.Is(err, bank.ErrCorruptState) {
				t.Errorf("New = %v, want %v", err, bank.ErrCorruptState)
			}
			if got, _ := os.ReadFile(path); string(got) != tt.data {
				t.Errorf("corrupt state file was rewritten")
			}
		})
	}
}

func TestFileStoreRefusesInvalid(t *testing.T) {
	st := goldenState()
	st.Active = 0
	err := bank.NewFileStore(filepath.Join(t.TempDir(), "s.json")).Save(context.Background(), st)
	if !errors.Is(err, bank.ErrCorruptState) {
		t.Errorf("Save of invalid state = %v, want %v", err, bank.ErrCorruptState)
	}
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dev.img")

	d, err := bank.OpenFile(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteAt([]byte("hello"), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteAt([]byte("xy"), 1<<20-1); !errors.Is(err, bank.ErrNoSpace) {
		t.Errorf("WriteAt past end = %v, want %v", err, bank.ErrNoSpace)
	}
	d.Close()
	if fi, _ := os.Stat(path); fi.Size() != 1<<20 {
		t.Errorf("created size = %d, want %d", fi.Size(), 1<<20)
	}

	// Growing keeps the content.
	d, err = bank.OpenFile(path, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != 2<<20 {
		t.Errorf("Size = %d, want %d", d.Size(), 2<<20)
	}
	buf := make([]byte, 5)
	if _, err := d.ReadAt(buf, 10); err != nil || string(buf) != "hello" {
		t.Errorf("ReadAt after grow = %q, %v, want hello", buf, err)
	}
	d.Close()

	// Shrinking is refused, and the file stays as it was.
	if _, err := bank.OpenFile(path, 1<<20); !errors.Is(err, bank.ErrDeviceSize) {
		t.Errorf("OpenFile smaller = %v, want %v", err, bank.ErrDeviceSize)
	}
	if fi, _ := os.Stat(path); fi.Size() != 2<<20 {
		t.Errorf("size after refused shrink = %d, want %d", fi.Size(), 2<<20)
	}
	if _, err := bank.OpenFile(path, 0); err == nil {
		t.Errorf("OpenFile size 0 succeeded")
	}
}
