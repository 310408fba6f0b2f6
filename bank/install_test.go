package bank_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
)

var errReader = errors.New("reader broke")

// failingReader yields n bytes of data, then fails.
type failingReader struct {
	r io.Reader
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errReader
	}
	return n, err
}

// verifying is a bank.VerifyingReader: it claims digest and, like
// image.Reader, fails its read past the end with atEnd (nil: a clean EOF,
// which a lying reader gives whatever the bytes were).
type verifying struct {
	r      io.Reader
	digest [32]byte
	atEnd  error
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if err == io.EOF && v.atEnd != nil {
		return n, v.atEnd
	}
	return n, err
}

func (v *verifying) VerifiedDigest() [32]byte { return v.digest }

var errBadHash = errors.New("payload hash mismatch")

func TestInstall(t *testing.T) {
	data := payload(7, 3<<20+123)
	corrupt := bytes.Clone(data)
	corrupt[2<<20] ^= 0x40
	sum := sha256.Sum256(data)
	tests := []struct {
		name      string
		meta      func(m *bank.SlotInfo)
		reader    func() io.Reader
		fault     func(d *fakeDevice)
		cancelAt  int64 // cancel ctx once progress reaches this
		wantErr   []error
		wantState bank.SlotState
	}{
		{name: "ok", wantState: bank.SlotValid},
		{
			name:      "too large",
			meta:      func(m *bank.SlotInfo) { m.Size = devSize + 1 },
			wantErr:   []error{bank.ErrNoSpace},
			wantState: bank.SlotEmpty,
		},
		{
			name:      "reader error mid-way",
			reader:    func() io.Reader { return &failingReader{bytes.NewReader(data[:2<<20+7])} },
			wantErr:   []error{errReader},
			wantState: bank.SlotEmpty,
		},
		{
			name:      "short payload",
			reader:    func() io.Reader { return bytes.NewReader(data[:len(data)-1]) },
			wantErr:   []error{bank.ErrSizeMismatch, io.ErrUnexpectedEOF},
			wantState: bank.SlotEmpty,
		},
		{
			name:      "long payload",
			reader:    func() io.Reader { return io.MultiReader(bytes.NewReader(data), bytes.NewReader([]byte{1})) },
			wantErr:   []error{bank.ErrSizeMismatch},
			wantState: bank.SlotEmpty,
		},
		{
			name:      "payload digest mismatch",
			meta:      func(m *bank.SlotInfo) { m.Digest[0] ^= 1 },
			wantErr:   []error{bank.ErrVerify},
			wantState: bank.SlotBad,
		},
		{
			name:      "verifying reader",
			reader:    func() io.Reader { return &verifying{r: bytes.NewReader(data), digest: sum} },
			wantState: bank.SlotValid,
		},
		{
			name:      "verifying reader catches a bad payload at its end",
			reader:    func() io.Reader { return &verifying{r: bytes.NewReader(corrupt), digest: sum, atEnd: errBadHash} },
			wantErr:   []error{errBadHash},
			wantState: bank.SlotEmpty,
		},
		{
			// Install trusts the reader's check only for the digest it
			// was asked to write: another one is hashed as usual.
			name:      "verifying reader for another digest",
			reader:    func() io.Reader { return &verifying{r: bytes.NewReader(corrupt), digest: sha256.Sum256(corrupt)} },
			wantErr:   []error{bank.ErrVerify},
			wantState: bank.SlotBad,
		},
		{
			// Even a reader that lies cannot make a bad slot valid:
			// the read-back is compared with the expected digest.
			name:      "verifying reader that lies",
			reader:    func() io.Reader { return &verifying{r: bytes.NewReader(corrupt), digest: sum} },
			wantErr:   []error{bank.ErrVerify},
			wantState: bank.SlotBad,
		},
		{
			name:      "read-back mismatch",
			fault:     func(d *fakeDevice) { d.flip, d.flipAt = true, 2<<20+99 },
			wantErr:   []error{bank.ErrVerify},
			wantState: bank.SlotBad,
		},
		{
			name:      "read-back error",
			fault:     func(d *fakeDevice) { d.failRead = 3 },
			wantErr:   []error{bank.ErrVerify, errInjected},
			wantState: bank.SlotBad,
		},
		{
			name:      "write error",
			fault:     func(d *fakeDevice) { d.failWrite = 2 },
			wantErr:   []error{bank.ErrWrite, errInjected},
			wantState: bank.SlotEmpty,
		},
		{
			// The medium refusing a range behind the writer is a
			// write error, like a failed sync.
			name:      "range sync error",
			fault:     func(d *fakeDevice) { d.failRange = 2 },
			wantErr:   []error{bank.ErrWrite, errInjected},
			wantState: bank.SlotEmpty,
		},
		{
			name:      "sync error",
			fault:     func(d *fakeDevice) { d.failSync = 1 },
			wantErr:   []error{bank.ErrWrite, errInjected},
			wantState: bank.SlotEmpty,
		},
		{
			name:      "cancel",
			cancelAt:  1 << 20,
			wantErr:   []error{context.Canceled},
			wantState: bank.SlotEmpty,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			b, _ := r.boot(t)
			aBefore := r.content(t, bank.SlotA)
			before := b.Snapshot()
			m := meta("2.0.0", data)
			if tt.meta != nil {
				tt.meta(&m)
			}
			var rd io.Reader = bytes.NewReader(data)
			if tt.reader != nil {
				rd = tt.reader()
			}
			if tt.fault != nil {
				tt.fault(r.fakes[bank.SlotB])
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var progress []int64
			s, err := b.Install(ctx, m, rd, func(n int64) {
				progress = append(progress, n)
				if tt.cancelAt > 0 && n >= tt.cancelAt {
					cancel()
				}
			})
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Install error = %v, want %v", err, want)
				}
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Install: %v", err)
			}

			st, lerr := r.store.Load(context.Background())
			if lerr != nil {
				t.Fatal(lerr)
			}
			if got := st.Slots[bank.SlotB].State; got != tt.wantState {
				t.Errorf("slot B state on disk = %s, want %s", got, tt.wantState)
			}
			if got := b.Snapshot().Slots[bank.SlotB].State; got != tt.wantState {
				t.Errorf("slot B state in memory = %s, want %s", got, tt.wantState)
			}
			// The running slot is never touched, whatever happens.
			if n := r.fakes[bank.SlotA].writes(); n != 0 {
				t.Errorf("running slot A got %d writes, want 0", n)
			}
			if !bytes.Equal(r.content(t, bank.SlotA), aBefore) {
				t.Errorf("running slot A content changed")
			}
			if st.Active != bank.SlotA || st.Trial != 0 || st.Slots[bank.SlotA] != before.Slots[bank.SlotA] {
				t.Errorf("active %v trial %v A %+v, want A none unchanged", st.Active, st.Trial, st.Slots[bank.SlotA])
			}
			if errors.Is(err, bank.ErrNoSpace) {
				if got := r.fakes[bank.SlotB].callLog(); len(got) != 0 {
					t.Errorf("device calls = %v, want none", got)
				}
				if st.Seq != before.Seq {
					t.Errorf("seq %d, want unchanged %d", st.Seq, before.Seq)
				}
				return
			}
			// The "writing" mark reached the disk before the first byte.
			if st.Seq < before.Seq+2 {
				t.Errorf("seq %d, want at least %d (writing, then result)", st.Seq, before.Seq+2)
			}
			if err != nil {
				return
			}
			if s != bank.SlotB {
				t.Errorf("Install slot = %v, want B", s)
			}
			if got := r.content(t, bank.SlotB)[:len(data)]; !bytes.Equal(got, data) {
				t.Errorf("slot B content differs from payload")
			}
			want := m
			want.State = bank.SlotValid
			if got := st.Slots[bank.SlotB]; got != want {
				t.Errorf("slot B = %+v, want %+v", got, want)
			}
			// One write per chunk in order, then one sync; one read per
			// chunk in order, each after its write (the read-back follows
			// the writer), the last one after the sync.
			var wantProgress []int64
			var writes, reads []string
			for off := 0; off < len(data); off += bank.ChunkSize {
				n := min(bank.ChunkSize, len(data)-off)
				wantProgress = append(wantProgress, int64(off+n))
				writes = append(writes, fmt.Sprintf("write %d %d", off, n))
				reads = append(reads, fmt.Sprintf("read %d %d", off, n))
			}
			if fmt.Sprint(progress) != fmt.Sprint(wantProgress) {
				t.Errorf("progress = %v, want %v", progress, wantProgress)
			}
			calls := r.fakes[bank.SlotB].callLog()
			pos := map[string]int{}
			var gotWrites, gotReads []string
			for i, c := range calls {
				pos[c] = i
				switch {
				case strings.HasPrefix(c, "write"):
					gotWrites = append(gotWrites, c)
				case strings.HasPrefix(c, "read"):
					gotReads = append(gotReads, c)
				}
			}
			if fmt.Sprint(gotWrites) != fmt.Sprint(writes) || fmt.Sprint(gotReads) != fmt.Sprint(reads) {
				t.Fatalf("device calls = %v, want writes %v and reads %v", calls, writes, reads)
			}
			if sync, ok := pos["sync"]; !ok || sync < pos[writes[len(writes)-1]] || sync > pos[reads[len(reads)-1]] {
				t.Errorf("device calls = %v: want one sync after the last write and before the last read", calls)
			}
			for i := range reads {
				if pos[reads[i]] < pos[writes[i]] {
					t.Errorf("device calls = %v: %q before %q", calls, reads[i], writes[i])
				}
				// Each chunk is flushed before it is read back.
				if sr, ok := pos["syncrange"+strings.TrimPrefix(reads[i], "read")]; !ok || sr > pos[reads[i]] {
					t.Errorf("device calls = %v: no syncrange before %q", calls, reads[i])
				}
			}
			if b.Next() != bank.SlotA {
				t.Errorf("Next = %v, want A: Install must not arm", b.Next())
			}
		})
	}
}

// TestInstallIntoA boots slot B on trial, commits it and upgrades again:
// the target is then A, and B is never written.
func TestInstallIntoA(t *testing.T) {
	r := newRig(t)
	b, _ := r.boot(t)
	b.Arm(context.Background(), install(t, b, "2.0.0", payload(2, 5000)))
	b, res := r.boot(t)
	if res.Slot != bank.SlotB {
		t.Fatalf("booted %v, want B", res.Slot)
	}
	if _, err := b.Install(context.Background(), meta("3.0.0", payload(3, 10)), bytes.NewReader(payload(3, 10)), nil); !errors.Is(err, bank.ErrSlotBusy) {
		t.Errorf("Install during uncommitted trial = %v, want %v", err, bank.ErrSlotBusy)
	}
	if ok, err := b.Commit(context.Background()); !ok || err != nil {
		t.Fatalf("Commit = %v, %v", ok, err)
	}
	r.fakes[bank.SlotB].nWrite = 0
	bBefore := r.content(t, bank.SlotB)
	if got := install(t, b, "3.0.0", payload(3, 7000)); got != bank.SlotA {
		t.Errorf("Install slot = %v, want A", got)
	}
	if r.fakes[bank.SlotB].writes() != 0 || !bytes.Equal(r.content(t, bank.SlotB), bBefore) {
		t.Errorf("running slot B was written")
	}
}

// TestInstallMemory checks that Install's allocations do not grow with the
// payload: one buffer, whatever the size.
func TestInstallMemory(t *testing.T) {
	const small, large = 4 << 20, 64 << 20
	r := newRig(t)
	dev, err := bank.OpenFile(r.dir+"/big.img", large)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	opts := r.options()
	opts.Devices[bank.SlotB] = dev
	b, err := bank.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Boot(context.Background()); err != nil {
		t.Fatal(err)
	}
	alloc := func(n int64) uint64 {
		m := bank.SlotInfo{Version: "x", Size: n}
		m.Digest = digestOf(&genReader{seed: byte(n >> 20), n: n})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := b.Install(context.Background(), m, &genReader{seed: byte(n >> 20), n: n}, nil); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	alloc(small) // warm up lazily initialised state
	s, l := alloc(small), alloc(large)
	t.Logf("allocated %d bytes for %d MiB, %d bytes for %d MiB", s, small>>20, l, large>>20)
	if l > s+64<<10 {
		t.Errorf("Install of %d MiB allocated %d bytes, of %d MiB %d bytes: grows with payload", large>>20, l, small>>20, s)
	}
}

func digestOf(r io.Reader) bank.Digest {
	var d bank.Digest
	h := sha256.New()
	io.CopyBuffer(h, r, make([]byte, 1<<20))
	h.Sum(d[:0])
	return d
}

// blockingReader yields its data only as release delivers permission.
type blockingReader struct {
	data    []byte
	release chan struct{}
	started chan struct{}
	once    sync.Once
}

func (r *blockingReader) Read(p []byte) (int, error) {
	r.once.Do(func() { close(r.started) })
	<-r.release
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestInstallConcurrent checks that the lock is not held while a payload
// streams, and that only one Install runs at a time.
func TestInstallConcurrent(t *testing.T) {
	r := newRig(t)
	b, _ := r.boot(t)
	data := payload(9, 2<<20+1)
	br := &blockingReader{data: data, release: make(chan struct{}), started: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := b.Install(context.Background(), meta("2.0.0", data), br, nil)
		done <- err
	}()
	<-br.started
	// The reader is blocked mid-install; everything else must still answer.
	if got := b.Status(bank.SlotB); got != bank.StatusWriting {
		t.Errorf("Status(B) during install = %v, want writing", got)
	}
	if got := b.Snapshot().Slots[bank.SlotB].State; got != bank.SlotWriting {
		t.Errorf("snapshot B during install = %s, want writing", got)
	}
	if _, err := b.Install(context.Background(), meta("2.0.0", data), bytes.NewReader(data), nil); !errors.Is(err, bank.ErrBusy) {
		t.Errorf("second Install = %v, want %v", err, bank.ErrBusy)
	}
	if err := b.Arm(context.Background(), bank.SlotB); !errors.Is(err, bank.ErrNotValid) {
		t.Errorf("Arm during install = %v, want %v", err, bank.ErrNotValid)
	}
	if err := b.SetBootLimit(context.Background(), 4); err != nil {
		t.Errorf("SetBootLimit during install: %v", err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				_ = b.Snapshot()
				_ = b.Status(bank.SlotA)
				_ = b.Next()
				_ = b.BootLimit()
			}
		}()
	}
	close(br.release)
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatalf("Install: %v", err)
	}
	if got := b.Status(bank.SlotB); got != bank.StatusValid {
		t.Errorf("Status(B) = %v, want valid", got)
	}
	if got := b.Snapshot().BootLimit; got != 4 {
		t.Errorf("boot limit = %d, want 4 (set during install)", got)
	}
}
