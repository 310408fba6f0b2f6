package agent

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/image"
)

// memDevice is a slot in memory, so the test measures our code, not the
// page cache.
type memDevice struct{ b []byte }

func (m *memDevice) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memDevice) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
func (m *memDevice) Sync() error                              { return nil }
func (m *memDevice) Size() int64                              { return int64(len(m.b)) }

// noise is a deterministic payload of n bytes that allocates nothing.
type noise struct {
	n, x uint64
}

func (r *noise) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(uint64(len(p)), r.n)]
	for i := range p {
		r.x ^= r.x << 13
		r.x ^= r.x >> 7
		r.x ^= r.x << 17
		p[i] = byte(r.x)
	}
	r.n -= uint64(len(p))
	return len(p), nil
}

// TestUpgradeAllocationsFlat streams whole upgrades (signature check,
// payload hash, bank write, read-back verify) of 4 and 64 MiB through the
// agent's install path: the bytes allocated must not grow with the image.
func TestUpgradeAllocationsFlat(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	const slot = 64 << 20
	ctx := context.Background()
	devs := map[bank.Slot]bank.Device{bank.SlotA: &memDevice{make([]byte, slot)}, bank.SlotB: &memDevice{make([]byte, slot)}}
	banks, err := bank.New(ctx, bank.Options{Devices: devs, Store: bank.NewFileStore(t.TempDir() + "/state.json"),
		Factory: bank.SlotInfo{Version: "1.0.0", Factory: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := banks.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	a := &Agent{banks: banks, log: slog.New(slog.DiscardHandler),
		opts: Options{Trusted: []ed25519.PublicKey{pub}, Hardware: "hw", SlotSize: slot}}

	upgrade := func(size uint64) uint64 {
		n, sum, err := image.HashPayload(&noise{n: size, x: 88172645463325252})
		if err != nil {
			t.Fatal(err)
		}
		h := image.Header{Hardware: "hw", Version: "2.0.0", ConfigFormat: 1, PayloadSize: n, PayloadSHA256: sum}
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(image.Build(pw, h, &noise{n: size, x: 88172645463325252}, priv))
		}()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := a.installImage(ctx, pr); err != nil {
			t.Fatalf("install %d bytes: %v", size, err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	upgrade(1 << 20) // warm up one-time allocations
	small, large := upgrade(4<<20), upgrade(64<<20)
	t.Logf("bytes allocated per upgrade: 4 MiB image %d, 64 MiB image %d", small, large)
	// The 60 MiB difference in image size may cost at most 256 KiB more.
	if large > small+256<<10 {
		t.Errorf("allocations grow with image size: 4 MiB image %d bytes, 64 MiB image %d bytes", small, large)
	}
}
