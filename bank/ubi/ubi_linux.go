package ubi

import (
	ioctlpkg "github.com/iadsafe/iad-agent/bank/internal/ioctl"

	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl numbers from <mtd/ubi-user.h>.
const (
	ubiIOCVOLUP = 0x40084f00 // _IOW('O', 0, __s64)
	ubiIOCMKVOL = 0x40986f00 // _IOW('o', 0, struct ubi_mkvol_req)
)

type kernelVolume struct{ f *os.File }

func (k kernelVolume) startUpdate(size int64) error {
	return ioctl(k.f, ubiIOCVOLUP, unsafe.Pointer(&size))
}
func (k kernelVolume) Write(p []byte) (int, error)             { return k.f.Write(p) }
func (k kernelVolume) ReadAt(p []byte, off int64) (int, error) { return k.f.ReadAt(p, off) }
func (k kernelVolume) Sync() error                             { return k.f.Sync() }
func (k kernelVolume) Close() error                            { return k.f.Close() }

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error { return ioctlpkg.Do(f, req, arg) }

// OpenVolume opens a UBI volume character device (/dev/ubiX_Y); its size
// is the volume's data_bytes from sysfs.
func OpenVolume(path string) (*Volume, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("ubi: %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return nil, fmt.Errorf("ubi: %s is not a character device", path)
	}
	sys := fmt.Sprintf("/sys/dev/char/%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	size, err := sysfsInt(filepath.Join(sys, "data_bytes"))
	if err != nil {
		return nil, fmt.Errorf("ubi: %s is not a UBI volume: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("ubi: %w", err)
	}
	return newVolume(kernelVolume{f}, path, size), nil
}

func sysfsInt(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// MakeVolume creates a dynamic volume of size bytes named name on the
// UBI device dev (/dev/ubiX) with UBI_IOCMKVOL and returns its id.
func MakeVolume(dev, name string, size int64) (int, error) {
	if len(name) == 0 || len(name) > 127 {
		return 0, fmt.Errorf("ubi: volume name %q must have 1..127 bytes", name)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("ubi: %w", err)
	}
	defer f.Close()
	var req struct {
		VolID     int32
		Alignment int32
		Bytes     int64
		VolType   int8
		Flags     uint8
		NameLen   int16
		_         [4]int8
		Name      [128]byte
	}
	req.VolID = -1 // UBI_VOL_NUM_AUTO
	req.Alignment = 1
	req.Bytes = size
	req.VolType = 3 // UBI_DYNAMIC_VOLUME
	req.NameLen = int16(len(name))
	copy(req.Name[:], name)
	if unsafe.Sizeof(req) != 152 {
		return 0, fmt.Errorf("ubi: internal: ubi_mkvol_req is %d bytes", unsafe.Sizeof(req))
	}
	if err := ioctl(f, ubiIOCMKVOL, unsafe.Pointer(&req)); err != nil {
		return 0, fmt.Errorf("ubi: %s: UBI_IOCMKVOL %q (%d bytes): %w", dev, name, size, err)
	}
	return int(req.VolID), nil
}

// FindVolume returns the /dev path of the volume named name on UBI
// device number ubiNum, from sysfs.
func FindVolume(ubiNum int, name string) (string, error) {
	dirs, err := filepath.Glob(fmt.Sprintf("/sys/class/ubi/ubi%d_*", ubiNum))
	if err != nil {
		return "", err
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "name"))
		if err == nil && string(bytes.TrimSpace(b)) == name {
			return "/dev/" + filepath.Base(d), nil
		}
	}
	return "", fmt.Errorf("ubi: no volume %q on ubi%d", name, ubiNum)
}
