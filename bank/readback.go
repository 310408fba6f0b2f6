package bank

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
)

// RangeSyncer is implemented by a Device that can start writing one
// written range back to its medium early (sync_file_range on a Linux
// file). Install calls it for each chunk, behind the writer, so that the
// medium's write-back overlaps the download instead of one long Sync at
// the end. It need not wait: the final Sync still decides.
type RangeSyncer interface {
	SyncRange(off, n int64) error
}

// errRangeSync marks a read-back failure that was the medium refusing
// to take the data, a write error rather than a verification one.
var errRangeSync = errors.New("bank: syncing written range")

type span struct{ off, n int64 }

// readBack verifies a slot while it is written: a goroutine follows the
// writer, starts each written chunk's write-back (RangeSyncer), reads it
// back and hashes it, so that once the last byte is written only the last
// chunk remains to be read. What it reads is what a read after the final
// Sync would read: the medium for a flash slot, whose writes complete
// before WriteAt returns, the page cache for a file or partition. The
// final Sync's error still fails the install. The chunk written last is
// read only after the final Sync, because a flash slot programs its last
// partial page then. A slot that cannot be read during a write (an
// Updater, such as a UBI volume under update) gets no readBack: it is
// read whole after the Sync.
//
// A nil *readBack does nothing, so the writer needs no special case.
type readBack struct {
	ctx   context.Context
	dev   Device
	buf   []byte
	h     hash.Hash
	spans chan span
	held  span
	has   bool
	done  chan error
}

func startReadBack(ctx context.Context, dev Device) *readBack {
	if _, ok := dev.(Updater); ok {
		return nil
	}
	rb := &readBack{ctx: ctx, dev: dev, buf: make([]byte, chunkSize), h: sha256.New(),
		spans: make(chan span, 2), done: make(chan error, 1)}
	go rb.run()
	return rb
}

// wrote records that [off, off+n) is written; the previous chunk goes to
// the verifier, this one is held until the next write or the final Sync.
func (rb *readBack) wrote(off, n int64) {
	if rb == nil {
		return
	}
	if rb.has {
		rb.spans <- rb.held
	}
	rb.held, rb.has = span{off, n}, true
}

// finish, called after the final Sync, verifies the held chunk and
// returns the digest of everything read back.
func (rb *readBack) finish() (Digest, error) {
	if rb.has {
		rb.spans <- rb.held
		rb.has = false
	}
	close(rb.spans)
	if err := <-rb.done; err != nil {
		return Digest{}, err
	}
	var d Digest
	rb.h.Sum(d[:0])
	return d, nil
}

// abort stops the verifier after a failed write and waits for it.
func (rb *readBack) abort() {
	if rb == nil {
		return
	}
	close(rb.spans)
	<-rb.done
}

func (rb *readBack) run() {
	var err error
	for s := range rb.spans {
		if err != nil {
			continue // drain: the writer must never block on a dead verifier
		}
		err = rb.check(s)
	}
	rb.done <- err
}

func (rb *readBack) check(s span) error {
	if rs, ok := rb.dev.(RangeSyncer); ok {
		if err := rs.SyncRange(s.off, s.n); err != nil {
			return fmt.Errorf("%w at %d: %w", errRangeSync, s.off, err)
		}
	}
	return hashRange(rb.ctx, rb.dev, rb.h, s.off, s.n, rb.buf)
}
