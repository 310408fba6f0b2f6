// Package ubi makes a UBI volume (/dev/ubiX_Y) a bank slot. A payload is
// written as one volume update: the UBI_IOCVOLUP ioctl announces its
// length and sets the volume's update marker on flash; the kernel clears
// the marker only when exactly that many bytes have arrived. An update cut
// short by a crash or power cut therefore leaves a volume the kernel
// reports as corrupted (reads fail) instead of a half-old, half-new one.
//
// The package must never write a volume outside an update, never write
// past the announced length, and never treat a corrupted volume as
// readable.
package ubi

import (
	"errors"
	"fmt"
	"io"
	"syscall"
)

// Errors returned by the package; match them with errors.Is.
var (
	ErrNoUpdate      = errors.New("ubi: write outside a volume update")
	ErrNotSequential = errors.New("ubi: update writes must be sequential")
	ErrOverrun       = errors.New("ubi: write beyond the announced update length")
	ErrCorrupted     = errors.New("ubi: volume corrupted (an update was interrupted)")
	ErrUnsupported   = errors.New("ubi: UBI volumes need Linux")
)

// volumeIO is the kernel side of a volume: the few calls Volume makes.
type volumeIO interface {
	startUpdate(size int64) error
	Write(p []byte) (int, error)
	io.ReaderAt
	Sync() error
	Close() error
}

// Volume is a bank.Device (and bank.Updater) on a UBI volume.
type Volume struct {
	io        volumeIO
	name      string
	size      int64
	updating  bool
	written   int64
	announced int64
}

func newVolume(v volumeIO, name string, size int64) *Volume {
	return &Volume{io: v, name: name, size: size}
}

// Size is the volume's capacity.
func (v *Volume) Size() int64 { return v.size }

// BeginUpdate starts a volume update of size bytes (UBI_IOCVOLUP). From
// here until the last byte is written the volume reads as corrupted.
func (v *Volume) BeginUpdate(size int64) error {
	if size < 0 || size > v.size {
		return fmt.Errorf("%w: %d bytes, volume %s holds %d", ErrOverrun, size, v.name, v.size)
	}
	if err := v.io.startUpdate(size); err != nil {
		return fmt.Errorf("ubi: %s: UBI_IOCVOLUP(%d): %w", v.name, size, err)
	}
	v.updating, v.written, v.announced = size > 0, 0, size
	return nil
}

// WriteAt continues the update; off must be where the last write ended.
func (v *Volume) WriteAt(p []byte, off int64) (int, error) {
	switch {
	case !v.updating:
		return 0, fmt.Errorf("%w: %s at %d", ErrNoUpdate, v.name, off)
	case off != v.written:
		return 0, fmt.Errorf("%w: %s write at %d, update at %d", ErrNotSequential, v.name, off, v.written)
	case off+int64(len(p)) > v.announced:
		return 0, fmt.Errorf("%w: %s: %d bytes at %d of %d", ErrOverrun, v.name, len(p), off, v.announced)
	}
	n := 0
	for n < len(p) {
		m, err := v.io.Write(p[n:])
		n += m
		v.written += int64(m)
		if err != nil {
			return n, fmt.Errorf("ubi: writing %s at %d: %w", v.name, v.written, err)
		}
		if m == 0 {
			return n, fmt.Errorf("ubi: writing %s at %d: %w", v.name, v.written, io.ErrShortWrite)
		}
	}
	if v.written == v.announced {
		v.updating = false
	}
	return n, nil
}

// ReadAt reads the volume; a volume whose update was interrupted fails
// with ErrCorrupted.
func (v *Volume) ReadAt(p []byte, off int64) (int, error) {
	n, err := v.io.ReadAt(p, off)
	if errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.EBUSY) {
		return n, fmt.Errorf("%w: %s: %w", ErrCorrupted, v.name, err)
	}
	return n, err
}

// Sync flushes the volume.
func (v *Volume) Sync() error { return v.io.Sync() }

// Close closes the volume.
func (v *Volume) Close() error { return v.io.Close() }
