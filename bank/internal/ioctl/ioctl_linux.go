package ioctl

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Do runs ioctl request req with argument arg on f's descriptor, keeping
// f alive and its descriptor valid for the duration of the call.
func Do(f *os.File, req uint, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if cerr := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
	}); cerr != nil {
		return cerr
	}
	if errno != 0 {
		return errno
	}
	return nil
}
