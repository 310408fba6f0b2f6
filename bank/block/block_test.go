package block

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileRange(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xEE}, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Path: p, Offset: 100, Size: 4096}); !errors.Is(err, ErrAlignment) {
		t.Fatalf("unaligned offset: %v, want ErrAlignment", err)
	}
	if _, err := Open(Options{Path: p, Offset: 60 << 10, Size: 8192}); !errors.Is(err, ErrRange) {
		t.Fatalf("past the end: %v, want ErrRange", err)
	}
	d, err := Open(Options{Path: p, Offset: 8192, Size: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 32<<10 {
		t.Fatalf("size %d", d.Size())
	}
	data := make([]byte, 20000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	// Unaligned pieces: head, middle and tail partial sectors.
	for _, piece := range [][2]int{{0, 100}, {100, 700}, {700, 5000}, {5000, 5001}, {5001, 20000}} {
		if n, err := d.WriteAt(data[piece[0]:piece[1]], int64(piece[0])); err != nil || n != piece[1]-piece[0] {
			t.Fatalf("WriteAt %v: %d %v", piece, n, err)
		}
	}
	if err := d.SyncRange(0, int64(len(data))); err != nil {
		t.Fatalf("SyncRange: %v", err)
	}
	if err := d.SyncRange(8<<10, 32<<10); !errors.Is(err, ErrRange) {
		t.Fatalf("SyncRange past the range: %v, want ErrRange", err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back differs (err %v)", err)
	}
	raw, _ := os.ReadFile(p)
	if !bytes.Equal(raw[:8192], bytes.Repeat([]byte{0xEE}, 8192)) || !bytes.Equal(raw[8192+20000:], bytes.Repeat([]byte{0xEE}, len(raw)-8192-20000)) {
		t.Fatal("bytes outside the written range changed")
	}
	if _, err := d.WriteAt([]byte{1}, 32<<10); !errors.Is(err, ErrRange) {
		t.Fatalf("write past the range: %v, want ErrRange", err)
	}
}

// fakeSys builds a sysfs tree: disk sda (8:0) with partitions sda1..sda3
// of 1000 sectors each from sector 2048, and dm-0 (254:0) on sda2.
func fakeSys(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(p, content string) {
		p = filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(id, target string) {
		os.MkdirAll(filepath.Join(root, "dev", "block"), 0o755)
		if err := os.Symlink(filepath.Join("..", "..", target), filepath.Join(root, "dev", "block", id)); err != nil {
			t.Fatal(err)
		}
	}
	mk("devices/sda/dev", "8:0")
	link("8:0", "devices/sda")
	for i := 1; i <= 3; i++ {
		dir := fmt.Sprintf("devices/sda/sda%d", i)
		mk(dir+"/dev", fmt.Sprintf("8:%d", i))
		mk(dir+"/partition", fmt.Sprint(i))
		mk(dir+"/start", fmt.Sprint(2048+(i-1)*1000))
		mk(dir+"/size", "1000")
		link(fmt.Sprintf("8:%d", i), dir)
	}
	mk("devices/dm-0/dev", "254:0")
	link("254:0", "devices/dm-0")
	os.MkdirAll(filepath.Join(root, "devices/dm-0/slaves"), 0o755)
	if err := os.Symlink("../../sda/sda2", filepath.Join(root, "devices/dm-0/slaves/sda2")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCheckInUse(t *testing.T) {
	sys := fakeSys(t)
	stat := func(p string) (devID, error) {
		m := map[string]devID{"/dev/sda1": "8:1", "/dev/sda3": "8:3", "/dev/disk/by-partuuid/abcd-03": "8:3"}
		if d, ok := m[p]; ok {
			return d, nil
		}
		return "", os.ErrNotExist
	}
	tests := []struct {
		name      string
		target    devID
		off, size int64
		mounts    []string // mountinfo device fields
		cmdline   string
		wantBusy  bool
	}{
		{"partition itself mounted", "8:2", 0, 1000 * 512, []string{"8:2"}, "", true},
		{"other partition mounted", "8:2", 0, 1000 * 512, []string{"8:1", "0:22"}, "root=/dev/sda1", false},
		{"root= names the partition", "8:3", 0, 1000 * 512, nil, "console=ttyS0 root=/dev/sda3 ro", true},
		{"root=PARTUUID", "8:3", 0, 1000 * 512, nil, "root=PARTUUID=ABCD-03", true},
		{"root=major:minor", "8:3", 0, 512, nil, "root=8:3", true},
		{"root= hex", "8:3", 0, 512, nil, "root=0803", true},
		{"disk range over a mounted partition", "8:0", 3000 * 512, 100 * 512, []string{"8:2"}, "", true},
		{"disk range clear of mounted partitions", "8:0", 5048 * 512, 100 * 512, []string{"8:2", "8:1"}, "", false},
		{"whole disk mounted, partition target", "8:2", 0, 512, []string{"8:0"}, "", true},
		{"device-mapper on the partition mounted", "8:2", 0, 512, []string{"254:0"}, "", true},
		{"device-mapper elsewhere", "8:1", 0, 512, []string{"254:0"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var mi strings.Builder
			for i, m := range tt.mounts {
				fmt.Fprintf(&mi, "%d 1 %s / /mnt%d rw - ext4 /dev/x rw\n", 20+i, m, i)
			}
			opts := Options{Path: "/dev/test", MountInfo: filepath.Join(dir, "mountinfo"), Cmdline: filepath.Join(dir, "cmdline"), SysRoot: sys, DevRoot: "/dev"}
			os.WriteFile(opts.MountInfo, []byte(mi.String()), 0o644)
			os.WriteFile(opts.Cmdline, []byte(tt.cmdline+"\n"), 0o644)
			err := checkInUse(opts, tt.target, tt.off, tt.size, stat)
			if busy := errors.Is(err, ErrInUse); busy != tt.wantBusy || (err != nil && !busy) {
				t.Fatalf("got %v, want busy %v", err, tt.wantBusy)
			}
		})
	}
}

// A range opened read-only because it is in use (ReadOnlyIfInUse: the
// running software's own bank) reads, and refuses every write. Open takes
// this path only for a real block device that is in use; the device VM
// test (scripts/vm/device) runs it with the running bank mounted as root.
func TestReadOnlyInUse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0x5A}, 16<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDevice(f, p, 16<<10, 512, Options{Offset: 4096, Size: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.inUse = fmt.Errorf("%w: mounted on /", ErrInUse)
	if err := d.ReadOnly(); !errors.Is(err, ErrInUse) {
		t.Fatalf("ReadOnly: got %v, want ErrInUse", err)
	}
	for _, w := range []struct {
		off int64
		n   int
	}{{0, 512}, {100, 10}, {4096, 4096}} {
		if n, err := d.WriteAt(make([]byte, w.n), w.off); n != 0 || !errors.Is(err, ErrInUse) {
			t.Fatalf("WriteAt(%d bytes at %d): got %d, %v; want 0, ErrInUse", w.n, w.off, n, err)
		}
	}
	got := make([]byte, 8192)
	if n, err := d.ReadAt(got, 0); n != len(got) || err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0x5A}, len(got))) {
		t.Fatalf("ReadAt: %d %v", n, err)
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("Sync of a read-only device: %v", err)
	}
	raw, _ := os.ReadFile(p)
	if !bytes.Equal(raw, bytes.Repeat([]byte{0x5A}, 16<<10)) {
		t.Fatal("a read-only device changed the disk")
	}
}
