// Package block makes a block device, or a byte range of one, a bank
// slot: /dev/mmcblk0p2, /dev/vda2, or /dev/vda with an offset and a size.
// Writes reach the device in whole logical sectors at sector-aligned
// offsets (a partial sector at either end is read, merged and written
// back), Sync is fsync, and reads serve the bank's read-back.
//
// Open refuses a slot that overlaps anything in use: a mounted file
// system on the same partition, on an overlapping partition of the same
// disk, or on a device-mapper/loop device stacked on it (from
// /proc/self/mountinfo and sysfs), and the root device named by root= on
// the kernel command line; or, with Options.ReadOnlyIfInUse (what bank
// configurations use), opens it read-only so that the running software's
// own bank can be verified but never written.
//
// The package must never open for writing a range that a mounted file
// system or the running root lives on, and never write outside its range.
package block

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Errors returned by the package; match them with errors.Is.
var (
	ErrInUse       = errors.New("block: device is in use by a mounted file system or the running root")
	ErrRange       = errors.New("block: range outside the device")
	ErrAlignment   = errors.New("block: range not aligned to the device's sectors")
	ErrUnsupported = errors.New("block: block devices need Linux")
)

// Options describe a slot.
type Options struct {
	// Path is the block device (or, on development hosts, a regular file).
	Path string
	// Offset and Size select a byte range; Size 0 means to the end.
	Offset, Size int64
	// Where the in-use checks look; empty means the real
	// /proc/self/mountinfo, /proc/cmdline, /sys and /dev.
	MountInfo, Cmdline, SysRoot, DevRoot string
	// ReadOnlyIfInUse opens a range that something in use overlaps
	// read-only instead of refusing it: the bank of the running
	// software (mounted as its root) can then be read and verified, but
	// every write to it fails with ErrInUse.
	ReadOnlyIfInUse bool
}

func (o *Options) setDefaults() {
	if o.MountInfo == "" {
		o.MountInfo = "/proc/self/mountinfo"
	}
	if o.Cmdline == "" {
		o.Cmdline = "/proc/cmdline"
	}
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.DevRoot == "" {
		o.DevRoot = "/dev"
	}
}

// Device is a bank.Device on a block device range.
type Device struct {
	f      *os.File
	name   string
	off    int64
	size   int64
	sector int64
	// inUse is why the device was opened read-only (ReadOnlyIfInUse),
	// nil when it is writable.
	inUse error
}

func newDevice(f *os.File, name string, devSize, sector int64, opts Options) (*Device, error) {
	size := opts.Size
	if size == 0 {
		size = devSize - opts.Offset
	}
	switch {
	case opts.Offset < 0 || size <= 0 || opts.Offset+size > devSize:
		return nil, fmt.Errorf("%w: %s has %d bytes, range %d+%d", ErrRange, name, devSize, opts.Offset, size)
	case opts.Offset%sector != 0 || size%sector != 0:
		return nil, fmt.Errorf("%w: %s range %d+%d, sector %d", ErrAlignment, name, opts.Offset, size, sector)
	}
	return &Device{f: f, name: name, off: opts.Offset, size: size, sector: sector}, nil
}

// Size is the range's length.
func (d *Device) Size() int64 { return d.size }

// SectorSize is the unit writes are aligned to.
func (d *Device) SectorSize() int64 { return d.sector }

// ReadAt reads inside the range; reads past its end return io.EOF.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: offset %d", ErrRange, off)
	}
	if off >= d.size {
		return 0, io.EOF
	}
	if rest := d.size - off; int64(len(p)) > rest {
		n, err := d.f.ReadAt(p[:rest], d.off+off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return d.f.ReadAt(p, d.off+off)
}

// ReadOnly returns why the device was opened read-only (an error
// wrapping ErrInUse), or nil if it is writable.
func (d *Device) ReadOnly() error { return d.inUse }

// WriteAt writes inside the range in whole sectors.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if d.inUse != nil {
		return 0, fmt.Errorf("block: not writing %s, opened read-only: %w", d.name, d.inUse)
	}
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("%w: write of %d bytes at %d, range holds %d", ErrRange, len(p), off, d.size)
	}
	n := 0
	// A partial first sector: merge with what the device holds.
	if head := off % d.sector; head != 0 || (len(p) > 0 && int64(len(p)) < d.sector) {
		m, err := d.merge(p, off)
		n += m
		if err != nil {
			return n, err
		}
		p, off = p[m:], off+int64(m)
	}
	whole := int64(len(p)) / d.sector * d.sector
	if whole > 0 {
		m, err := d.f.WriteAt(p[:whole], d.off+off)
		n += m
		if err != nil {
			return n, fmt.Errorf("block: writing %s at %d: %w", d.name, d.off+off, err)
		}
		p, off = p[whole:], off+whole
	}
	if len(p) > 0 {
		m, err := d.merge(p, off)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// merge writes the part of p that falls in the sector holding off,
// reading the rest of that sector from the device.
func (d *Device) merge(p []byte, off int64) (int, error) {
	start := off - off%d.sector
	buf := make([]byte, d.sector)
	if _, err := d.f.ReadAt(buf, d.off+start); err != nil {
		return 0, fmt.Errorf("block: reading %s at %d: %w", d.name, d.off+start, err)
	}
	m := copy(buf[off-start:], p)
	if _, err := d.f.WriteAt(buf, d.off+start); err != nil {
		return 0, fmt.Errorf("block: writing %s at %d: %w", d.name, d.off+start, err)
	}
	return m, nil
}

// Sync flushes the device's write cache (fsync).
func (d *Device) Sync() error { return d.f.Sync() }

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }
