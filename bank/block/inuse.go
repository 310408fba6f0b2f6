package block

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// devID is a device number as "major:minor".
type devID string

// extent is a byte range of a whole disk.
type extent struct {
	disk       devID
	start, end int64 // end exclusive; end < 0 means the whole disk
}

func (a extent) overlaps(b extent) bool {
	if a.disk != b.disk {
		return false
	}
	if a.end < 0 || b.end < 0 {
		return true
	}
	return a.start < b.end && b.start < a.end
}

// sysfs answers questions about block devices from a sysfs tree.
type sysfs struct{ root string }

func (s sysfs) dir(d devID) string { return filepath.Join(s.root, "dev", "block", string(d)) }

func (s sysfs) readInt(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// extent returns the part of its whole disk that device d covers.
func (s sysfs) extent(d devID) (extent, error) {
	dir := s.dir(d)
	if _, err := os.Stat(filepath.Join(dir, "partition")); err != nil {
		if _, err := os.Stat(dir); err != nil {
			return extent{}, fmt.Errorf("block: device %s not in sysfs: %w", d, err)
		}
		return extent{disk: d, end: -1}, nil
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return extent{}, err
	}
	parent, err := os.ReadFile(filepath.Join(filepath.Dir(real), "dev"))
	if err != nil {
		return extent{}, fmt.Errorf("block: parent of %s: %w", d, err)
	}
	start, err := s.readInt(filepath.Join(dir, "start"))
	if err != nil {
		return extent{}, err
	}
	size, err := s.readInt(filepath.Join(dir, "size"))
	if err != nil {
		return extent{}, err
	}
	return extent{disk: devID(strings.TrimSpace(string(parent))), start: start * 512, end: (start + size) * 512}, nil
}

// under returns d and every device it is stacked on (dm, loop, md),
// following the slaves directories.
func (s sysfs) under(d devID, seen map[devID]bool) []devID {
	if seen[d] {
		return nil
	}
	seen[d] = true
	out := []devID{d}
	ents, _ := os.ReadDir(filepath.Join(s.dir(d), "slaves"))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.dir(d), "slaves", e.Name(), "dev"))
		if err == nil {
			out = append(out, s.under(devID(strings.TrimSpace(string(b))), seen)...)
		}
	}
	return out
}

// mountedDevs returns the device numbers of the mounted file systems.
func mountedDevs(mountinfo string) (map[devID]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("block: %w", err)
	}
	defer f.Close()
	out := map[devID]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || strings.HasPrefix(f[2], "0:") {
			continue // 0:N are virtual file systems (proc, tmpfs, overlay…)
		}
		out[devID(f[2])] = f[4]
	}
	return out, sc.Err()
}

// rootDev resolves root= from the kernel command line to a device
// number, or "" if it names none that can be resolved here.
func rootDev(cmdline, devRoot string, stat func(string) (devID, error)) devID {
	b, err := os.ReadFile(cmdline)
	if err != nil {
		return ""
	}
	var root string
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "root="); ok {
			root = v
		}
	}
	switch {
	case root == "":
		return ""
	case strings.HasPrefix(root, "/dev/"):
		root = filepath.Join(devRoot, strings.TrimPrefix(root, "/dev/"))
	case strings.HasPrefix(root, "PARTUUID="):
		root = filepath.Join(devRoot, "disk", "by-partuuid", strings.ToLower(strings.TrimPrefix(root, "PARTUUID=")))
	case strings.HasPrefix(root, "UUID="):
		root = filepath.Join(devRoot, "disk", "by-uuid", strings.TrimPrefix(root, "UUID="))
	case strings.HasPrefix(root, "PARTLABEL="):
		root = filepath.Join(devRoot, "disk", "by-partlabel", strings.TrimPrefix(root, "PARTLABEL="))
	default:
		if maj, min, ok := strings.Cut(root, ":"); ok {
			if _, err1 := strconv.Atoi(maj); err1 == nil {
				if _, err2 := strconv.Atoi(min); err2 == nil {
					return devID(root)
				}
			}
		}
		if n, err := strconv.ParseUint(root, 16, 32); err == nil && len(root) <= 4 {
			return devID(fmt.Sprintf("%d:%d", n>>8, n&0xff))
		}
		return ""
	}
	d, err := stat(root)
	if err != nil {
		return ""
	}
	return d
}

// checkInUse refuses target (device d, bytes [off, off+size) of it) if a
// mounted file system or the root device overlaps it.
func checkInUse(opts Options, d devID, off, size int64, stat func(string) (devID, error)) error {
	s := sysfs{root: opts.SysRoot}
	ext, err := s.extent(d)
	if err != nil {
		return err
	}
	target := extent{disk: ext.disk, start: off, end: off + size}
	if ext.end >= 0 {
		target.start, target.end = ext.start+off, ext.start+off+size
	}
	mounts, err := mountedDevs(opts.MountInfo)
	if err != nil {
		return err
	}
	users := map[devID]string{}
	for m, where := range mounts {
		users[m] = "mounted on " + where
	}
	if r := rootDev(opts.Cmdline, opts.DevRoot, stat); r != "" {
		users[r] = "the root device (root= on the kernel command line)"
	}
	for u, why := range users {
		for _, low := range s.under(u, map[devID]bool{}) {
			e, err := s.extent(low)
			if err != nil {
				continue // not a block device sysfs knows (e.g. a network fs)
			}
			if e.overlaps(target) {
				return fmt.Errorf("%w: %s overlaps device %s, %s", ErrInUse, opts.Path, u, why)
			}
		}
	}
	return nil
}
