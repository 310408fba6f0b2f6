package spool

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

func TestNewRejectsTinySize(t *testing.T) {
	if _, err := New(MinSize - 1); !errors.Is(err, ErrSize) {
		t.Fatalf("New(%d): got %v, want ErrSize", MinSize-1, err)
	}
}

// TestStreamIntact pushes a stream through the pipe with writes and reads
// of many sizes, smaller and larger than the pipe, and checks every byte
// arrives once and in order.
func TestStreamIntact(t *testing.T) {
	for _, tc := range []struct {
		name            string
		size            int
		maxWrite, maxRd int
		total           int
	}{
		{"tftp-512 blocks, 1 MiB reads", MinSize, 512, 1 << 20, 3 << 20},
		{"tftp-8192 blocks, odd reads", 1 << 20, 8192, 7777, 5 << 20},
		{"writes larger than the pipe", MinSize, 300 << 10, 4096, 2 << 20},
		{"one-byte reads", MinSize, 1468, 1, 256 << 10},
		{"random sizes", 1 << 20, 70000, 200000, 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.size)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, uint64(tc.total)))
			src := make([]byte, tc.total)
			for i := range src {
				src[i] = byte(rng.Uint32())
			}
			go func() {
				rest := src
				for len(rest) > 0 {
					k := min(len(rest), 1+rng.IntN(tc.maxWrite))
					if n, err := p.Write(rest[:k]); n != k || err != nil {
						p.CloseWrite(err)
						return
					}
					rest = rest[k:]
				}
				p.CloseWrite(nil)
			}()
			var got bytes.Buffer
			buf := make([]byte, tc.maxRd)
			for {
				n, err := p.Read(buf)
				got.Write(buf[:n])
				p.mu.Lock()
				held := p.n
				p.mu.Unlock()
				if n > len(buf) || held > len(p.buf) {
					t.Fatalf("read %d into %d bytes, %d buffered in %d", n, len(buf), held, len(p.buf))
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if sha256.Sum256(got.Bytes()) != sha256.Sum256(src) {
				t.Fatalf("got %d bytes that differ from the %d sent", got.Len(), len(src))
			}
		})
	}
}

// TestReadWaitsForABatch checks the point of the pipe: small writes do
// not wake a reader that asked for a large piece until a quarter of the
// pipe has gathered.
func TestReadWaitsForABatch(t *testing.T) {
	p, _ := New(MinSize)
	done := make(chan int)
	go func() {
		n, _ := p.Read(make([]byte, 1<<20))
		done <- n
	}()
	block := make([]byte, 512)
	for i := 0; i < MinSize/4/512; i++ {
		p.Write(block)
	}
	if n := <-done; n != MinSize/4 {
		t.Fatalf("reader woke with %d bytes, want the batch of %d", n, MinSize/4)
	}
}

func TestCloseWriteDrainsThenReportsError(t *testing.T) {
	boom := errors.New("server gone")
	p, _ := New(MinSize)
	p.Write([]byte("tail"))
	p.CloseWrite(boom)
	buf := make([]byte, 100)
	n, err := p.Read(buf)
	if string(buf[:n]) != "tail" || err != nil {
		t.Fatalf("first read: %q, %v; want the buffered bytes", buf[:n], err)
	}
	if _, err := p.Read(buf); !errors.Is(err, boom) {
		t.Fatalf("second read: %v, want the writer's error", err)
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after close: %v, want io.ErrClosedPipe", err)
	}
}

// TestCloseReadUnblocksWriter: a consumer that fails must release a
// receiver blocked on a full pipe, with the consumer's error.
func TestCloseReadUnblocksWriter(t *testing.T) {
	boom := errors.New("flash write failed")
	p, _ := New(MinSize)
	errc := make(chan error)
	go func() {
		_, err := p.Write(make([]byte, 2*MinSize)) // more than fits
		errc <- err
	}()
	// Wait until the writer has filled the pipe and sleeps.
	for {
		p.mu.Lock()
		waiting := p.writerWaiting
		p.mu.Unlock()
		if waiting {
			break
		}
	}
	p.CloseRead(boom)
	if err := <-errc; !errors.Is(err, boom) {
		t.Fatalf("blocked write: %v, want the reader's error", err)
	}
	if _, err := p.Read(make([]byte, 1)); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("read after CloseRead: %v", err)
	}
}

// TestCloseWriteWakesReader: a receiver that ends (or dies) with less
// than a batch buffered must not leave the reader asleep.
func TestCloseWriteWakesReader(t *testing.T) {
	p, _ := New(MinSize)
	res := make(chan string)
	go func() {
		b, err := io.ReadAll(p)
		res <- string(b) + "|" + errString(err)
	}()
	p.Write([]byte("short"))
	p.CloseWrite(nil)
	if got := <-res; got != "short|" {
		t.Fatalf("got %q, want the 5 bytes and a clean EOF", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestNoAllocationsPerWrite: the pipe's memory is its buffer, allocated
// once; writes and reads allocate nothing.
func TestNoAllocationsPerWrite(t *testing.T) {
	p, _ := New(MinSize)
	block, out := make([]byte, 1468), make([]byte, MinSize)
	allocs := testing.AllocsPerRun(1000, func() {
		p.Write(block)
		if p.n > MinSize/2 {
			p.Read(out)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write, want 0", allocs)
	}
}

// BenchmarkHandoff compares moving a stream in TFTP-sized blocks to a
// consumer reading 1 MiB pieces through a Pipe and through io.Pipe.
func BenchmarkHandoff(b *testing.B) {
	for _, blk := range []int{512, 1468, 8192} {
		for _, kind := range []string{"spool", "io.Pipe"} {
			b.Run(kind+"/"+itoa(blk), func(b *testing.B) {
				const total = 32 << 20
				block := make([]byte, blk)
				b.SetBytes(total)
				for b.Loop() {
					var w io.WriteCloser
					var r io.Reader
					if kind == "spool" {
						p, _ := New(1 << 20)
						w, r = closer{p}, p
					} else {
						pr, pw := io.Pipe()
						w, r = pw, pr
					}
					go func() {
						for sent := 0; sent < total; sent += blk {
							w.Write(block)
						}
						w.Close()
					}()
					io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, make([]byte, 1<<20))
				}
			})
		}
	}
}

type closer struct{ *Pipe }

func (c closer) Close() error { c.CloseWrite(nil); return nil }

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
