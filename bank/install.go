package bank

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Install streams a payload of meta.Size bytes from r into the inactive
// slot and verifies it, in the order that keeps the device bootable if
// power fails at any point:
//
//  1. disarm any trial of the target, mark it "writing" and save, before
//     the first byte is written (Boot turns "writing" into "empty");
//  2. write r in 256 KiB chunks through one reused buffer, hashing as it goes
//     (unless r is a [VerifyingReader] that checks the same digest itself);
//  3. Sync, read the slot back and re-hash it (behind the writer, while
//     the payload still streams, for slots that can be read during a
//     write; see readBack);
//  4. record meta as a "valid" slot and save.
//
// It does not arm the slot; call Arm for that. progress, if not nil, is
// called with the byte count after each chunk. A payload that fails to
// arrive (reader error, wrong size, cancellation, device write error)
// leaves the slot "empty"; one whose digest does not match leaves it "bad".
// The lock is not held while bytes stream, so Snapshot and Status stay
// responsive; a second concurrent Install fails with ErrBusy.
func (b *Banks) Install(ctx context.Context, meta SlotInfo, r io.Reader, progress func(written int64)) (Slot, error) {
	target, err := b.beginInstall(ctx, meta)
	if err != nil {
		return 0, err
	}
	dev := b.devices[target]
	buf := make([]byte, chunkSize)

	if u, ok := dev.(Updater); ok {
		if err := u.BeginUpdate(meta.Size); err != nil {
			return 0, b.failInstall(ctx, target, meta, SlotEmpty, fmt.Errorf("%w: slot %v: starting update: %w", ErrWrite, target, err))
		}
	}
	rb := startReadBack(ctx, dev)
	sum, err := b.stream(ctx, target, dev, meta.Size, meta.Digest, r, progress, buf, rb)
	if err != nil {
		rb.abort()
		return 0, b.failInstall(ctx, target, meta, SlotEmpty, err)
	}
	if sum != meta.Digest {
		rb.abort()
		return 0, b.failInstall(ctx, target, meta, SlotBad,
			fmt.Errorf("%w: slot %v: payload digest %v, want %v", ErrVerify, target, sum, meta.Digest))
	}
	if err := dev.Sync(); err != nil {
		rb.abort()
		return 0, b.failInstall(ctx, target, meta, SlotEmpty, fmt.Errorf("%w: slot %v: sync: %w", ErrWrite, target, err))
	}
	var back Digest
	if rb != nil {
		back, err = rb.finish()
	} else {
		back, err = hashDevice(ctx, dev, meta.Size, buf)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, b.failInstall(ctx, target, meta, SlotEmpty, fmt.Errorf("bank: install interrupted: %w", ctxErr))
		}
		if errors.Is(err, errRangeSync) {
			return 0, b.failInstall(ctx, target, meta, SlotEmpty, fmt.Errorf("%w: slot %v: %w", ErrWrite, target, err))
		}
		return 0, b.failInstall(ctx, target, meta, SlotBad, fmt.Errorf("%w: slot %v: read-back: %w", ErrVerify, target, err))
	}
	if back != sum {
		return 0, b.failInstall(ctx, target, meta, SlotBad,
			fmt.Errorf("%w: slot %v: read-back digest %v, wrote %v", ErrVerify, target, back, sum))
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() { b.installing = false }()
	next := b.state.Clone()
	info := meta
	info.State = SlotValid
	// Only the software shipped with the device may skip verification.
	info.Factory = false
	next.Slots[target] = info
	if err := b.save(ctx, next); err != nil {
		// The slot stays "writing" on disk, so the next Boot empties it.
		return 0, err
	}
	b.log.Info("bank: installed", "slot", target, "version", meta.Version, "size", meta.Size, "digest", meta.Digest)
	return target, nil
}

// beginInstall picks the target, checks it can take the payload and
// persists that it is no longer bootable.
func (b *Banks) beginInstall(ctx context.Context, meta SlotInfo) (Slot, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running == 0 {
		return 0, ErrNotBooted
	}
	if b.installing {
		return 0, ErrBusy
	}
	target := b.running.Other()
	if target == b.running {
		return 0, fmt.Errorf("%w: install into slot %v", ErrSlotBusy, target)
	}
	if meta.Size < 0 {
		return 0, fmt.Errorf("bank: install: negative size %d", meta.Size)
	}
	if size := b.devices[target].Size(); meta.Size > size {
		return 0, fmt.Errorf("%w: %d bytes, slot %v holds %d", ErrNoSpace, meta.Size, target, size)
	}
	next := b.state.Clone()
	if next.Trial == target {
		next.Trial, next.TriesLeft, next.Armed = 0, 0, 0
	}
	if next.Active == target {
		// The target is the committed bank (a revert is pending). An
		// uncommitted trial must not lose its fallback; otherwise the
		// running software, which booted and runs, becomes the committed
		// bank again so that the new payload is never booted untried.
		if next.Trial == b.running {
			return 0, fmt.Errorf("%w: slot %v is the fallback of the running trial; commit or revert first", ErrSlotBusy, target)
		}
		next.Active = b.running
	}
	next.Slots[target] = SlotInfo{
		State:        SlotWriting,
		Version:      meta.Version,
		Hardware:     meta.Hardware,
		ConfigFormat: meta.ConfigFormat,
		Size:         meta.Size,
		Digest:       meta.Digest,
	}
	if err := b.save(ctx, next); err != nil {
		return 0, err
	}
	b.installing = true
	b.log.Info("bank: writing", "slot", target, "version", meta.Version, "size", meta.Size)
	return target, nil
}

// VerifyingReader is a payload reader that hashes the bytes it returns
// and fails its final Read (the one that would return io.EOF) if their
// SHA-256 is not VerifiedDigest, as image.Reader does. Install does not
// hash such a payload a second time as it writes: on a device's slow CPU
// each SHA-256 pass over the image is a large part of the upgrade. The
// read-back after the sync is still hashed and compared.
type VerifyingReader interface {
	io.Reader
	VerifiedDigest() [32]byte
}

// stream copies exactly size bytes from r to dev and returns their digest.
func (b *Banks) stream(ctx context.Context, target Slot, dev Device, size int64, want Digest, r io.Reader, progress func(int64), buf []byte, rb *readBack) (Digest, error) {
	var h hash.Hash = sha256.New()
	if v, ok := r.(VerifyingReader); ok && Digest(v.VerifiedDigest()) == want {
		// r fails below, at the read past the payload's end, if the
		// bytes do not hash to want.
		h = nil
	}
	var off int64
	for off < size {
		if err := ctx.Err(); err != nil {
			return Digest{}, fmt.Errorf("bank: install interrupted at %d of %d bytes: %w", off, size, err)
		}
		n := int(min(int64(len(buf)), size-off))
		got, rerr := io.ReadFull(r, buf[:n])
		if got > 0 {
			if _, err := dev.WriteAt(buf[:got], off); err != nil {
				return Digest{}, fmt.Errorf("%w: slot %v at offset %d: %w", ErrWrite, target, off, err)
			}
			if h != nil {
				h.Write(buf[:got])
			}
			rb.wrote(off, int64(got))
			off += int64(got)
			if progress != nil {
				progress(off)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			return Digest{}, fmt.Errorf("%w: got %d bytes, want %d: %w", ErrSizeMismatch, off, size, rerr)
		}
		if rerr != nil {
			return Digest{}, fmt.Errorf("bank: reading payload at %d: %w", off, rerr)
		}
	}
	// The payload must end exactly here.
	switch _, err := io.ReadFull(r, buf[:1]); {
	case err == nil:
		return Digest{}, fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, size)
	case !errors.Is(err, io.EOF):
		return Digest{}, fmt.Errorf("bank: reading payload at %d: %w", off, err)
	}
	if h == nil {
		return want, nil
	}
	var d Digest
	h.Sum(d[:0])
	return d, nil
}

// failInstall records the target as state (empty or bad) and ends the
// install. It returns cause; a failure to save is logged, not returned,
// because cause is what the caller must act on and Boot empties a slot
// left "writing" anyway.
func (b *Banks) failInstall(ctx context.Context, target Slot, meta SlotInfo, state SlotState, cause error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.installing = false
	next := b.state.Clone()
	info := SlotInfo{State: state}
	if state == SlotBad {
		info = meta
		info.State = SlotBad
		info.Factory = false
	}
	next.Slots[target] = info
	// The install may have failed because ctx ended; the record must still
	// be written.
	if err := b.save(context.WithoutCancel(ctx), next); err != nil {
		b.log.Error("bank: recording failed install", "slot", target, "state", state, "err", err)
	}
	b.log.Warn("bank: install abandoned", "slot", target, "state", state)
	return cause
}
