// Package spool is a bounded in-memory pipe between a network receiver and
// a slower consumer.
//
// A TFTP client acknowledges a block only after handing it on, so with
// io.Pipe every block waits for the consumer (hashing, flash writes) and
// for two goroutine switches: the transfer runs at the speed of the
// slowest stage plus the hand-offs. A Pipe lets the receiver run ahead by
// up to its fixed size: a write is a copy into a ring that wakes the
// consumer only once a useful amount has gathered, and the consumer
// drains it in large pieces. It never grows: a full pipe blocks the
// writer, so memory stays the same whatever the size of the stream.
//
// A Pipe must never hold more than its size, nor lose or reorder a byte.
package spool

import (
	"errors"
	"io"
	"sync"
)

// ErrSize reports a Pipe asked for with a size below MinSize.
var ErrSize = errors.New("spool: size too small")

// MinSize is the smallest useful Pipe: one TFTP block at the largest
// blksize (65464 bytes) must fit.
const MinSize = 64 << 10

// Pipe is a bounded pipe for one writer and one reader. Its zero value is
// not usable; call New.
type Pipe struct {
	mu       sync.Mutex
	readable sync.Cond // signalled when a waiting reader has enough, or on close
	writable sync.Cond // signalled when a waiting writer has room, or on close
	buf      []byte
	start    int // index of the first buffered byte
	n        int // buffered bytes
	batch    int // a reader wakes once this much has gathered (or at close)

	readerWants   int // > 0 while the reader sleeps: bytes that wake it
	writerWaiting bool

	werr error // set when the writer closed: io.EOF for a clean end
	rerr error // set when the reader closed: what the writer gets
}

// New returns a Pipe holding at most size bytes. A reader is woken when
// a quarter of that has gathered, when its buffer can be filled, or when
// the writer closes.
func New(size int) (*Pipe, error) {
	if size < MinSize {
		return nil, ErrSize
	}
	p := &Pipe{buf: make([]byte, size), batch: size / 4}
	p.readable.L = &p.mu
	p.writable.L = &p.mu
	return p, nil
}

// Write copies b into the pipe, waiting for room as needed. It fails with
// the reader's error once the reader has closed.
func (p *Pipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	written := 0
	for len(b) > 0 {
		if p.rerr != nil {
			return written, p.rerr
		}
		if p.werr != nil {
			return written, io.ErrClosedPipe
		}
		free := len(p.buf) - p.n
		if free == 0 {
			p.writerWaiting = true
			p.writable.Wait()
			p.writerWaiting = false
			continue
		}
		end := (p.start + p.n) % len(p.buf)
		k := copy(p.buf[end:min(len(p.buf), end+free)], b)
		p.n += k
		written += k
		b = b[k:]
		if p.readerWants > 0 && p.n >= p.readerWants {
			p.readerWants = 0
			p.readable.Signal()
		}
	}
	return written, nil
}

// Read copies buffered bytes into b. It waits until it can fill b or a
// quarter of the pipe, whichever is less, so that a consumer working in
// large pieces is woken rarely; at the writer's close it returns what is
// left, then the writer's error (io.EOF for a clean close).
func (p *Pipe) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	want := min(len(b), p.batch)
	for p.n < want && p.werr == nil && p.rerr == nil {
		p.readerWants = want
		p.readable.Wait()
	}
	p.readerWants = 0
	if p.rerr != nil {
		return 0, io.ErrClosedPipe
	}
	if p.n == 0 {
		return 0, p.werr
	}
	got := 0
	for got < len(b) && p.n > 0 {
		k := copy(b[got:], p.buf[p.start:min(len(p.buf), p.start+p.n)])
		p.start = (p.start + k) % len(p.buf)
		p.n -= k
		got += k
	}
	if p.n == 0 {
		p.start = 0
	}
	// Wake the writer only once there is room for a good piece, so that
	// a full pipe does not switch goroutines every block.
	if p.writerWaiting && len(p.buf)-p.n >= p.batch {
		p.writable.Signal()
	}
	return got, nil
}

// CloseWrite ends the stream: the reader drains what is buffered, then
// gets err, or io.EOF if err is nil. Only the first close counts.
func (p *Pipe) CloseWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.werr == nil {
		p.werr = err
	}
	p.readable.Broadcast()
	p.writable.Broadcast()
}

// CloseRead stops the stream from the consuming side: buffered bytes are
// dropped and the writer's next (or current) Write fails with err, or
// io.ErrClosedPipe if err is nil. Only the first close counts.
func (p *Pipe) CloseRead(err error) {
	if err == nil {
		err = io.ErrClosedPipe
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rerr == nil {
		p.rerr = err
	}
	p.n, p.start = 0, 0
	p.readable.Broadcast()
	p.writable.Broadcast()
}
