package block

import (
	"errors"
	ioctlpkg "github.com/iadsafe/iad-agent/bank/internal/ioctl"

	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func statDev(path string) (devID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("block: %s is not a block device", path)
	}
	return devID(fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))), nil
}

// Open opens the slot after checking that nothing in use overlaps it. A
// regular file (development host) has 512-byte sectors and no checks.
func Open(opts Options) (*Device, error) {
	opts.setDefaults()
	var st unix.Stat_t
	if err := unix.Stat(opts.Path, &st); err != nil {
		return nil, fmt.Errorf("block: %s: %w", opts.Path, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		f, err := os.OpenFile(opts.Path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("block: %w", err)
		}
		d, err := newDevice(f, opts.Path, st.Size, 512, opts)
		if err != nil {
			f.Close()
		}
		return d, err
	case unix.S_IFBLK:
	default:
		return nil, fmt.Errorf("block: %s is neither a block device nor a regular file", opts.Path)
	}
	id := devID(fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
	f, err := os.OpenFile(opts.Path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("block: %w", err)
	}
	fail := func(err error) (*Device, error) { f.Close(); return nil, err }
	var devSize uint64
	if err := ioctl(f, unix.BLKGETSIZE64, unsafe.Pointer(&devSize)); err != nil {
		return fail(fmt.Errorf("block: %s: BLKGETSIZE64: %w", opts.Path, err))
	}
	var sector int32
	if err := ioctl(f, unix.BLKSSZGET, unsafe.Pointer(&sector)); err != nil {
		return fail(fmt.Errorf("block: %s: BLKSSZGET: %w", opts.Path, err))
	}
	d, err := newDevice(f, opts.Path, int64(devSize), int64(sector), opts)
	if err != nil {
		return fail(err)
	}
	if err := checkInUse(opts, id, d.off, d.size, statDev); err != nil {
		if !opts.ReadOnlyIfInUse || !errors.Is(err, ErrInUse) {
			return fail(err)
		}
		ro, rerr := os.Open(opts.Path)
		if rerr != nil {
			return fail(fmt.Errorf("block: reopening %s read-only: %w", opts.Path, rerr))
		}
		f.Close()
		d.f, d.inUse = ro, err
	}
	return d, nil
}

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error { return ioctlpkg.Do(f, req, arg) }

// SyncRange starts writing [off, off+n) of the range back to the device
// without waiting (sync_file_range SYNC_FILE_RANGE_WRITE), so that the
// device works while the rest of a payload downloads and the final Sync
// has little left (bank.RangeSyncer).
func (d *Device) SyncRange(off, n int64) error {
	if off < 0 || n < 0 || off+n > d.size {
		return fmt.Errorf("%w: sync of %d bytes at %d, range holds %d", ErrRange, n, off, d.size)
	}
	rc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), d.off+off, n, unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("block: sync_file_range %s at %d: %w", d.name, d.off+off, serr)
	}
	return nil
}
