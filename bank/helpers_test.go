package bank_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
)

const devSize = 4 << 20

var errInjected = errors.New("injected fault")

// fakeDevice wraps a Device, records every call and injects faults: the
// Nth WriteAt/Sync/ReadAt can fail, a byte can be flipped on read, and
// power can be "lost" after a given number of written bytes, after which
// every call fails (what reached the inner device stays there).
type fakeDevice struct {
	bank.Device

	mu        sync.Mutex
	calls     []string
	nWrite    int
	nSync     int
	nRead     int
	failWrite int // fail the Nth WriteAt (1-based); 0 never
	failSync  int
	failRead  int
	failRange int // fail the Nth SyncRange
	nRange    int
	flip      bool
	flipAt    int64
	cut       bool
	cutAfter  int64
	written   int64
	dead      bool
	onCut     func() // called when power is lost
}

func (d *fakeDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nWrite++
	d.calls = append(d.calls, fmt.Sprintf("write %d %d", off, len(p)))
	if d.dead {
		return 0, errInjected
	}
	if d.nWrite == d.failWrite {
		return 0, errInjected
	}
	if d.cut && d.written+int64(len(p)) > d.cutAfter {
		n := int(d.cutAfter - d.written)
		d.Device.WriteAt(p[:n], off)
		d.written += int64(n)
		d.dead = true
		if d.onCut != nil {
			d.onCut()
		}
		return n, errInjected
	}
	n, err := d.Device.WriteAt(p, off)
	d.written += int64(n)
	return n, err
}

func (d *fakeDevice) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nSync++
	d.calls = append(d.calls, "sync")
	if d.dead || d.nSync == d.failSync {
		return errInjected
	}
	return d.Device.Sync()
}

func (d *fakeDevice) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nRead++
	d.calls = append(d.calls, fmt.Sprintf("read %d %d", off, len(p)))
	if d.dead || d.nRead == d.failRead {
		return 0, errInjected
	}
	n, err := d.Device.ReadAt(p, off)
	if d.flip && d.flipAt >= off && d.flipAt < off+int64(n) {
		p[d.flipAt-off] ^= 0x40
	}
	return n, err
}

// SyncRange makes the fake a bank.RangeSyncer, as File is.
func (d *fakeDevice) SyncRange(off, n int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nRange++
	d.calls = append(d.calls, fmt.Sprintf("syncrange %d %d", off, n))
	if d.dead || d.nRange == d.failRange {
		return errInjected
	}
	return nil
}

func (d *fakeDevice) writes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nWrite
}

func (d *fakeDevice) callLog() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

// cutStore wraps a StateStore and loses power at the Nth Save: that Save
// fails, optionally after reaching the disk, and so does everything after.
type cutStore struct {
	bank.StateStore
	mu        sync.Mutex
	n         int
	cutAt     int // 0 never
	persisted bool
	dead      bool
}

func (s *cutStore) Save(ctx context.Context, st bank.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return errInjected
	}
	s.n++
	if s.n == s.cutAt {
		s.dead = true
		if s.persisted {
			s.StateStore.Save(ctx, st)
		}
		return errInjected
	}
	return s.StateStore.Save(ctx, st)
}

// kill loses power: no Save reaches the disk any more.
func (s *cutStore) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
}

// rig is a pair of file devices and a state file in one directory.
type rig struct {
	dir   string
	store *bank.FileStore
	files map[bank.Slot]*bank.File
	fakes map[bank.Slot]*fakeDevice
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return openRig(t, t.TempDir())
}

// openRig opens the devices and store in dir, as a restart would.
func openRig(t *testing.T, dir string) *rig {
	t.Helper()
	r := &rig{
		dir:   dir,
		store: bank.NewFileStore(filepath.Join(dir, "state.json")),
		files: map[bank.Slot]*bank.File{},
		fakes: map[bank.Slot]*fakeDevice{},
	}
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		f, err := bank.OpenFile(filepath.Join(dir, "slot-"+s.String()+".img"), devSize)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		r.files[s] = f
		r.fakes[s] = &fakeDevice{Device: f}
	}
	return r
}

func (r *rig) options() bank.Options {
	return bank.Options{
		Devices: map[bank.Slot]bank.Device{bank.SlotA: r.fakes[bank.SlotA], bank.SlotB: r.fakes[bank.SlotB]},
		Store:   r.store,
		Factory: bank.SlotInfo{Version: "1.0.0"},
	}
}

// boot runs New and Boot, as a start of the software does.
func (r *rig) boot(t *testing.T) (*bank.Banks, bank.BootResult) {
	t.Helper()
	b, err := bank.New(context.Background(), r.options())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	res, err := b.Boot(context.Background())
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	return b, res
}

func (r *rig) content(t *testing.T, s bank.Slot) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, "slot-"+s.String()+".img"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// payload returns n deterministic bytes that differ per seed.
func payload(seed byte, n int) []byte {
	p := make([]byte, n)
	fill(p, seed, 0)
	return p
}

func fill(p []byte, seed byte, off int64) {
	for i := range p {
		x := uint64(off + int64(i))
		p[i] = byte(x*31+x>>9) ^ seed
	}
}

// genReader yields n generated bytes without allocating.
type genReader struct {
	seed byte
	off  int64
	n    int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	if rest := g.n - g.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	fill(p, g.seed, g.off)
	g.off += int64(len(p))
	return len(p), nil
}

func meta(version string, data []byte) bank.SlotInfo {
	return bank.SlotInfo{Version: version, Hardware: "iad-test", ConfigFormat: 1, Size: int64(len(data)), Digest: sha256.Sum256(data)}
}

// install writes data into the inactive slot and arms nothing.
func install(t *testing.T, b *bank.Banks, version string, data []byte) bank.Slot {
	t.Helper()
	s, err := b.Install(context.Background(), meta(version, data), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	return s
}
