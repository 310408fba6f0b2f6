package bank

import "golang.org/x/sys/unix"

// SyncRange starts writing [off, off+n) of the file back to the disk
// (sync_file_range SYNC_FILE_RANGE_WRITE) without waiting for it: the
// disk works while the rest of the payload downloads, and the final Sync
// has little left to wait for. Waiting here instead made every 256 KiB a
// synchronous write and the install slower.
func (d *File) SyncRange(off, n int64) error {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), off, n,
			unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return err
	}
	return serr
}
