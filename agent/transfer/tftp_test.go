package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

// fakeTFTP is an in-process pin/tftp server with files in memory.
type fakeTFTP struct {
	addr netip.AddrPort

	mu      sync.Mutex
	files   map[string][]byte
	tsize   bool                     // announce tsize on reads
	streams map[string]int64         // name -> size of a generated file, never held in memory
	uploads map[string][]byte        // what clients wrote
	hold    map[string]chan struct{} // reads and writes of these wait until the channel is closed
	refuse  bool                     // refuse uploads
	entered chan string              // a held request arrived
}

func startFakeTFTP(t *testing.T, host string) *fakeTFTP {
	t.Helper()
	f := &fakeTFTP{
		files:   map[string][]byte{},
		streams: map[string]int64{},
		uploads: map[string][]byte{},
		hold:    map[string]chan struct{}{},
		entered: make(chan string, 10),
	}
	s := tftp.NewServer(f.read, f.write)
	s.SetTimeout(2 * time.Second)
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(host), 0)))
	if err != nil {
		t.Fatal(err)
	}
	f.addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
	go s.Serve(c)
	t.Cleanup(s.Shutdown)
	return f
}

// locked runs f with the server's state locked: tests change it while the
// server's goroutines read it.
func (f *fakeTFTP) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeTFTP) waitFor(name string) {
	f.mu.Lock()
	ch := f.hold[name]
	f.mu.Unlock()
	if ch != nil {
		f.entered <- name
		<-ch
	}
}

func (f *fakeTFTP) read(name string, rf io.ReaderFrom) error {
	f.waitFor(name)
	f.mu.Lock()
	data, ok := f.files[name]
	size, isStream := f.streams[name]
	tsize := f.tsize
	f.mu.Unlock()
	var r io.Reader
	switch {
	case ok:
		size = int64(len(data))
		r = bytes.NewReader(data)
	case isStream:
		r = io.LimitReader(&patternReader{}, size)
	default:
		return errors.New("file not found")
	}
	if tsize {
		rf.(tftp.OutgoingTransfer).SetSize(size)
	}
	// Hiding Seek keeps pin/tftp from computing tsize by itself.
	_, err := rf.ReadFrom(struct{ io.Reader }{r})
	return err
}

func (f *fakeTFTP) write(name string, wt io.WriterTo) error {
	f.waitFor(name)
	f.mu.Lock()
	refuse := f.refuse
	f.mu.Unlock()
	if refuse {
		return errors.New("uploads disabled")
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return err
	}
	f.mu.Lock()
	f.uploads[name] = b.Bytes()
	f.mu.Unlock()
	return nil
}

// patternReader produces an endless deterministic byte stream.
type patternReader struct{ n uint64 }

func (p *patternReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.n*7 + p.n>>11)
		p.n++
	}
	return len(b), nil
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// hookLog records what the hooks saw.
type hookLog struct {
	mu       sync.Mutex
	sizes    []int64
	progress []int64
}

func (h *hookLog) hooks() Hooks {
	return Hooks{
		Size: func(n int64) {
			h.mu.Lock()
			h.sizes = append(h.sizes, n)
			h.mu.Unlock()
		},
		Progress: func(n int64) {
			h.mu.Lock()
			h.progress = append(h.progress, n)
			h.mu.Unlock()
		},
	}
}

// check wants Size called once with size (or not at all for -1) and
// Progress non-decreasing, ending at total.
func (h *hookLog) check(t *testing.T, size, total int64) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case size < 0 && len(h.sizes) != 0:
		t.Errorf("Size hook called with %v, want no call", h.sizes)
	case size >= 0 && (len(h.sizes) != 1 || h.sizes[0] != size):
		t.Errorf("Size hook calls %v, want [%d]", h.sizes, size)
	}
	if len(h.progress) == 0 {
		t.Fatalf("Progress never called, want a final call with %d", total)
	}
	for i := 1; i < len(h.progress); i++ {
		if h.progress[i] <= h.progress[i-1] {
			t.Errorf("Progress calls not increasing: %v", h.progress)
			break
		}
	}
	if last := h.progress[len(h.progress)-1]; last != total {
		t.Errorf("last Progress call %d, want %d", last, total)
	}
	if max := total/progressStep + 1; int64(len(h.progress)) > max {
		t.Errorf("Progress called %d times for %d bytes, want at most %d", len(h.progress), total, max)
	}
}

// blockRecorder keeps what is written and the largest single Write.
type blockRecorder struct {
	bytes.Buffer
	maxWrite int
}

func (b *blockRecorder) Write(p []byte) (int, error) {
	b.maxWrite = max(b.maxWrite, len(p))
	return b.Buffer.Write(p)
}

func tftpReq(addr netip.AddrPort, file string) Request {
	return Request{Protocol: TFTP, Server: addr, File: file, Timeout: 2 * time.Second, Retries: 2}
}

func TestTFTPDownload(t *testing.T) {
	f := startFakeTFTP(t, "127.0.0.1")
	tests := []struct {
		name      string
		size      int
		tsize     bool
		blockSize int
		wantBlk   int
	}{
		{"empty", 0, true, 0, 1468},
		{"one byte", 1, true, 0, 1468},
		{"default blksize with tsize", 100_000, true, 0, 1468},
		{"default blksize without tsize", 100_000, false, 0, 1468},
		{"exact multiple of blksize", 3 * 1468, true, 0, 1468},
		{"blksize 512", 70_001, true, 512, 512},
		{"blksize 8192", 300_000, false, 8192, 8192},
		{"blksize 8192 multiple", 4 * 8192, true, 8192, 8192},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("file-%d.bin", i)
			data := randomBytes(tt.size, uint64(i))
			f.mu.Lock()
			f.files[name] = data
			f.tsize = tt.tsize
			f.mu.Unlock()
			req := tftpReq(f.addr, name)
			req.BlockSize = tt.blockSize
			var got blockRecorder
			var h hookLog
			n, err := Download(context.Background(), req, &got, h.hooks())
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			if n != int64(tt.size) {
				t.Errorf("got n = %d, want %d", n, tt.size)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Errorf("got %d bytes with sha256 %x, want %d bytes with %x", got.Len(), sha256.Sum256(got.Bytes()), len(data), sha256.Sum256(data))
			}
			wantSize := int64(tt.size)
			if !tt.tsize || tt.size == 0 {
				wantSize = -1
			}
			h.check(t, wantSize, int64(tt.size))
			// pin/tftp writes one block per Write.
			if tt.size > tt.wantBlk && got.maxWrite != tt.wantBlk {
				t.Errorf("got blocks of %d bytes, want %d", got.maxWrite, tt.wantBlk)
			}
		})
	}
}

func TestTFTPIPv6(t *testing.T) {
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no IPv6 loopback: %v", err) // agent/itest needs ::1 in CI too
		}
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		c.Close()
	}
	f := startFakeTFTP(t, "::1")
	data := randomBytes(5000, 9)
	f.locked(func() { f.files["v6.bin"] = data })
	var got bytes.Buffer
	if _, err := Download(context.Background(), tftpReq(f.addr, "v6.bin"), &got, Hooks{}); err != nil {
		t.Fatalf("Download from %s: %v", f.addr, err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Errorf("got %d bytes, want the %d bytes served", got.Len(), len(data))
	}
	if _, err := Upload(context.Background(), tftpReq(f.addr, "up6.bin"), bytes.NewReader(data), int64(len(data)), Hooks{}); err != nil {
		t.Fatalf("Upload to %s: %v", f.addr, err)
	}
	var up []byte
	f.locked(func() { up = f.uploads["up6.bin"] })
	if !bytes.Equal(up, data) {
		t.Errorf("server got %d bytes, want %d", len(up), len(data))
	}
}

func TestTFTPUpload(t *testing.T) {
	f := startFakeTFTP(t, "127.0.0.1")
	tests := []struct {
		name      string
		size      int
		announce  bool
		blockSize int
	}{
		{"empty", 0, true, 0},
		{"small", 1000, true, 0},
		{"exact multiple", 2 * 1468, true, 0},
		{"unknown size", 100_000, false, 0},
		{"blksize 512", 70_000, true, 512},
		{"blksize 8192", 200_001, true, 8192},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("up-%d.bin", i)
			data := randomBytes(tt.size, uint64(100+i))
			size := int64(-1)
			if tt.announce {
				size = int64(len(data))
			}
			req := tftpReq(f.addr, name)
			req.BlockSize = tt.blockSize
			var h hookLog
			n, err := Upload(context.Background(), req, bytes.NewReader(data), size, h.hooks())
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if n != int64(tt.size) {
				t.Errorf("got n = %d, want %d", n, tt.size)
			}
			h.check(t, size, int64(tt.size))
			// The server's handler finishes just after the last ACK.
			var got []byte
			for range 100 {
				f.mu.Lock()
				got = f.uploads[name]
				f.mu.Unlock()
				if got != nil || tt.size == 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("server stored %d bytes, want %d", len(got), len(data))
			}
		})
	}
}

func TestTFTPUploadSizeMismatch(t *testing.T) {
	f := startFakeTFTP(t, "127.0.0.1")
	data := randomBytes(3000, 5)
	for _, size := range []int64{2999, 3001, 10_000} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			_, err := Upload(context.Background(), tftpReq(f.addr, "mismatch.bin"), bytes.NewReader(data), size, Hooks{})
			if !errors.Is(err, ErrShort) {
				t.Fatalf("got %v, want ErrShort", err)
			}
		})
	}
}

func TestTFTPNotFound(t *testing.T) {
	f := startFakeTFTP(t, "127.0.0.1")
	var h hookLog
	n, err := Download(context.Background(), tftpReq(f.addr, "missing.cfg"), io.Discard, h.hooks())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if n != 0 {
		t.Errorf("got n = %d, want 0", n)
	}
	for _, want := range []string{"transfer: file not found: ", "missing.cfg", f.addr.String(), "file not found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if len(h.sizes)+len(h.progress) != 0 {
		t.Errorf("hooks called on failure: sizes %v progress %v", h.sizes, h.progress)
	}
}

func TestTFTPUploadRefused(t *testing.T) {
	f := startFakeTFTP(t, "127.0.0.1")
	f.locked(func() { f.refuse = true })
	_, err := Upload(context.Background(), tftpReq(f.addr, "x.bin"), bytes.NewReader(make([]byte, 5000)), 5000, Hooks{})
	// pin/tftp's server sends every handler error as code 1.
	if !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("got %v, want ErrAccessDenied", err)
	}
	if !strings.Contains(err.Error(), "uploads disabled") {
		t.Errorf("error %q lacks the server's message", err)
	}
}

// errorServer answers every request with one TFTP ERROR packet.
func errorServer(t *testing.T, code uint16, msg string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 600)
		for {
			_, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pkt := binary.BigEndian.AppendUint16([]byte{0, 5}, code)
			pkt = append(append(pkt, msg...), 0)
			c.WriteToUDPAddrPort(pkt, from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestTFTPErrorCodes(t *testing.T) {
	tests := []struct {
		code   uint16
		upload bool
		want   error
	}{
		{0, false, ErrProtocol},
		{1, false, ErrNotFound},
		{1, true, ErrAccessDenied},
		{2, false, ErrAccessDenied},
		{2, true, ErrAccessDenied},
		{3, true, ErrNoSpace},
		{4, false, ErrProtocol},
		{6, true, ErrAccessDenied},
		{8, false, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("code %d upload %v", tt.code, tt.upload), func(t *testing.T) {
			msg := fmt.Sprintf("message for code %d", tt.code)
			addr := errorServer(t, tt.code, msg)
			var err error
			if tt.upload {
				_, err = Upload(context.Background(), tftpReq(addr, "f"), strings.NewReader("abc"), 3, Hooks{})
			} else {
				_, err = Download(context.Background(), tftpReq(addr, "f"), io.Discard, Hooks{})
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), msg) {
				t.Errorf("error %q lacks the server's message %q", err, msg)
			}
		})
	}
}

// silentServer reads requests and never answers.
func silentServer(t *testing.T) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var got atomic.Int32
	go func() {
		buf := make([]byte, 600)
		for {
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort(), &got
}

func TestTFTPTimeout(t *testing.T) {
	t.Parallel()
	addr, got := silentServer(t)
	req := tftpReq(addr, "f")
	req.Timeout = 200 * time.Millisecond
	req.Retries = 1
	_, err := Download(context.Background(), req, io.Discard, Hooks{})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("download: got %v, want ErrTimeout", err)
	}
	_, err = Upload(context.Background(), req, strings.NewReader("x"), 1, Hooks{})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("upload: got %v, want ErrTimeout", err)
	}
	// One request and one retransmission each.
	if n := got.Load(); n != 4 {
		t.Errorf("server saw %d requests, want 4", n)
	}
}

// lateWriter fails the test if written to after Download returned.
type lateWriter struct {
	t        *testing.T
	returned atomic.Bool
	n        atomic.Int64
}

func (w *lateWriter) Write(p []byte) (int, error) {
	if w.returned.Load() {
		w.t.Errorf("Write of %d bytes after Download returned", len(p))
	}
	w.n.Add(int64(len(p)))
	return len(p), nil
}

func TestTFTPDownloadCancel(t *testing.T) {
	f := startFakeTFTP(t, "127.0.0.1")
	f.locked(func() { f.streams["big.bin"] = 64 << 20 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &lateWriter{t: t}
	req := tftpReq(f.addr, "big.bin")
	req.Timeout = 10 * time.Second // cancellation must not wait for it
	n, err := Download(ctx, req, w, Hooks{Progress: func(done int64) {
		if done >= 1<<20 {
			cancel()
		}
	}})
	w.returned.Store(true)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
		t.Fatalf("got %v, want context.Canceled and ErrCanceled", err)
	}
	if n != w.n.Load() || n >= 64<<20 {
		t.Errorf("got n = %d, writer saw %d of %d", n, w.n.Load(), 64<<20)
	}
}

func TestTFTPCancelWhileServerSilent(t *testing.T) {
	f := startFakeTFTP(t, "127.0.0.1")
	release := make(chan struct{})
	f.locked(func() {
		f.hold["stuck.bin"] = release
		f.files["stuck.bin"] = []byte("data")
	})
	defer close(release)
	req := tftpReq(f.addr, "stuck.bin")
	req.Timeout = 10 * time.Second
	req.Retries = 5
	for _, upload := range []bool{false, true} {
		t.Run(fmt.Sprintf("upload %v", upload), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				var err error
				if upload {
					_, err = Upload(ctx, req, strings.NewReader("data"), 4, Hooks{})
				} else {
					_, err = Download(ctx, req, io.Discard, Hooks{})
				}
				done <- err
			}()
			<-f.entered // the request is in flight and the server silent
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
		})
	}
}

func TestTFTPDeadline(t *testing.T) {
	addr, _ := silentServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := tftpReq(addr, "f")
	req.Timeout = 10 * time.Second
	_, err := Download(ctx, req, io.Discard, Hooks{})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want context.DeadlineExceeded and ErrTimeout", err)
	}
}

// peakHeapWriter samples the heap as data arrives.
type peakHeapWriter struct {
	n, next uint64
	peak    uint64
}

func (w *peakHeapWriter) Write(p []byte) (int, error) {
	w.n += uint64(len(p))
	if w.n >= w.next {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.peak = max(w.peak, ms.HeapAlloc)
		w.next = w.n + 1<<20
	}
	return len(p), nil
}

// TestTFTPDownloadMemory checks that a download streams: the heap never
// comes near the size of the file. (Total allocation does grow with the
// file: pin/tftp allocates an address per datagram.)
func TestTFTPDownloadMemory(t *testing.T) {
	const size = 32 << 20
	f := startFakeTFTP(t, "127.0.0.1")
	f.locked(func() { f.streams["stream.bin"] = size })
	req := tftpReq(f.addr, "stream.bin")
	req.BlockSize = 65464
	runtime.GC()
	w := &peakHeapWriter{}
	n, err := Download(context.Background(), req, w, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("got %d bytes, want %d", n, size)
	}
	if w.peak > size/2 {
		t.Errorf("heap peaked at %d bytes during a %d-byte download, want under %d", w.peak, size, size/2)
	}
	t.Logf("peak heap %d KiB for a %d MiB download", w.peak>>10, size>>20)
}
