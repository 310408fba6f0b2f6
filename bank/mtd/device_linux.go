package mtd

import (
	ioctlpkg "github.com/iadsafe/iad-agent/bank/internal/ioctl"

	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device is a real chip or partition behind /dev/mtdN.
type Device struct {
	f    *os.File
	path string
	info Info
}

var _ Flash = (*Device)(nil)

// Open opens an MTD character device (/dev/mtdN) read-write and reads its
// geometry with MEMGETINFO.
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("mtd: %w", err)
	}
	var mi unix.MtdInfo
	if err := ioctl(f, unix.MEMGETINFO, unsafe.Pointer(&mi)); err != nil {
		f.Close()
		return nil, fmt.Errorf("mtd: %s: MEMGETINFO: %w", path, err)
	}
	d := &Device{f: f, path: path, info: Info{
		Type:      Type(mi.Type),
		Size:      int64(mi.Size),
		EraseSize: int64(mi.Erasesize),
		WriteSize: int64(mi.Writesize),
	}}
	if d.info.Type != NOR && !d.info.Type.IsNAND() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is MTD type %d, want NOR or NAND flash", ErrGeometry, path, mi.Type)
	}
	if err := d.info.validate(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error { return ioctlpkg.Do(f, req, arg) }

// Info returns the geometry MEMGETINFO reported.
func (d *Device) Info() Info { return d.info }

// ReadAt reads raw bytes (corrected bit flips are transparent; an
// uncorrectable ECC error fails with EBADMSG).
func (d *Device) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// WriteAt programs pages.
func (d *Device) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }

// Erase erases the block at off with MEMERASE.
func (d *Device) Erase(off int64) error {
	if off%d.info.EraseSize != 0 || off < 0 || off >= d.info.Size {
		return fmt.Errorf("%w: erase at %#x, block %d", ErrAlignment, off, d.info.EraseSize)
	}
	if off+d.info.EraseSize > 1<<32 {
		return fmt.Errorf("%w: erase at %#x beyond 4 GiB", ErrRange, off)
	}
	req := struct{ Start, Length uint32 }{uint32(off), uint32(d.info.EraseSize)}
	if err := ioctl(d.f, unix.MEMERASE, unsafe.Pointer(&req)); err != nil {
		if errors.Is(err, unix.EIO) {
			return fmt.Errorf("%w: MEMERASE at %#x: %w", ErrBadBlock, off, err)
		}
		return fmt.Errorf("mtd: MEMERASE at %#x: %w", off, err)
	}
	return nil
}

// IsBad asks MEMGETBADBLOCK; NOR has no bad blocks.
func (d *Device) IsBad(off int64) (bool, error) {
	if !d.info.Type.IsNAND() {
		return false, nil
	}
	o := off
	rc, err := d.f.SyscallConn()
	if err != nil {
		return false, err
	}
	var r uintptr
	var errno unix.Errno
	if cerr := rc.Control(func(fd uintptr) {
		r, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(unix.MEMGETBADBLOCK), uintptr(unsafe.Pointer(&o)))
	}); cerr != nil {
		return false, cerr
	}
	if errno != 0 {
		return false, fmt.Errorf("mtd: MEMGETBADBLOCK at %#x: %w", off, errno)
	}
	return r > 0, nil
}

// Sync is a no-op: MTD program and erase complete before they return.
func (d *Device) Sync() error { return nil }

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }
