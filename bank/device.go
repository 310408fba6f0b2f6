package bank

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Device is one slot's storage. It is deliberately the few calls the bank
// needs, so that a partition, an MTD/UBI volume or a test fake can stand in.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	// Size is the capacity in bytes; nothing is written at or beyond it.
	Size() int64
}

// Updater is implemented by a Device that must know the length of a
// write before its first byte, such as a UBI volume, whose update ioctl
// takes the new size and marks the volume corrupted until exactly that
// many bytes have arrived. Install calls BeginUpdate once per payload,
// after the slot is recorded as "writing" and before the first WriteAt;
// the writes that follow are sequential from offset 0.
type Updater interface {
	BeginUpdate(size int64) error
}

// File is a Device backed by a regular file, for development hosts and
// tests.
type File struct {
	f    *os.File
	size int64
}

var _ Device = (*File)(nil)

// OpenFile opens the file at path as a device of size bytes, creating it
// sparse if it is missing and growing it if it is shorter. A file longer
// than size is an error rather than being cut, because cutting it could
// destroy the software it holds.
func OpenFile(path string, size int64) (*File, error) {
	if size <= 0 {
		return nil, fmt.Errorf("bank: device %s: size %d must be positive", path, size)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bank: opening device: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("bank: device %s: %w", path, err)
	}
	switch {
	case st.Size() > size:
		f.Close()
		return nil, fmt.Errorf("%w: %s has %d bytes, configured %d", ErrDeviceSize, path, st.Size(), size)
	case st.Size() < size:
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("bank: growing device %s: %w", path, err)
		}
	}
	return &File{f: f, size: size}, nil
}

// ReadAt reads from the file; reads past Size return io.EOF.
func (d *File) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	if rest := d.size - off; int64(len(p)) > rest {
		n, err := d.f.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return d.f.ReadAt(p, off)
}

// WriteAt writes to the file; a write that would extend past Size writes
// nothing and fails, as a partition would.
func (d *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("%w: write of %d bytes at %d exceeds %d", ErrNoSpace, len(p), off, d.size)
	}
	return d.f.WriteAt(p, off)
}

// Sync flushes written data to stable storage.
func (d *File) Sync() error { return d.f.Sync() }

// Size returns the configured capacity.
func (d *File) Size() int64 { return d.size }

// Close closes the file.
func (d *File) Close() error {
	if d.f == nil {
		return errors.New("bank: device already closed")
	}
	err := d.f.Close()
	d.f = nil
	return err
}
