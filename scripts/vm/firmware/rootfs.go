package firmware

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/iadsafe/iad-agent/image"
)

// applets are the busybox commands linked in /bin of a bank and of the
// initramfs: what the start-up script and a person on the console use.
var applets = []string{
	"sh", "ash", "mount", "umount", "ip", "ifconfig", "route", "hostname", "reboot", "poweroff",
	"sync", "cat", "echo", "printf", "sed", "grep", "awk", "sha256sum", "md5sum", "find", "sort",
	"uniq", "ls", "mkdir", "rmdir", "rm", "mv", "cp", "ln", "touch", "chmod", "stat", "test", "[",
	"sleep", "stty", "tr", "date", "ps", "pidof", "kill", "head", "tail", "wc", "xargs", "cut",
	"uname", "dmesg", "tar", "od", "hexdump", "dd", "df", "du", "free", "top", "true", "false",
	"env", "basename", "dirname", "readlink", "tee", "vi", "less", "gzip", "zcat", "insmod", "lsmod",
	"switch_root", "mountpoint", "blockdev", "fsync", "wget", "tftp", "nc", "ping",
}

// Configuration files of a bank (the same in every version).
const (
	bankConf = `# Bank storage of the device VM: one virtio disk laid out like the
# flash (scripts/vm/firmware). The boot selector iad-boot counts the
# trial tries in the redundant environment on /dev/vda1.
[slot A]
type = block
path = /dev/vda2
[slot B]
type = block
path = /dev/vda3
[state]
type = uboot
fw_env_config = /etc/iad/fw_env.config
default_env = /etc/iad/u-boot-initial-env
lock_file = -
boot_counter = bootloader
[boot]
root_A = /dev/vda2
root_B = /dev/vda3
fstype_A = squashfs
fstype_B = squashfs
`
	bankUBootConf = `# Bank storage of the device VM booted through U-Boot: U-Boot's boot.scr
# counts the trial tries in a text file on the FAT partition (/dev/vda1,
# mounted on /boot), which the agent reads and writes too.
[slot A]
type = block
path = /dev/vda2
[slot B]
type = block
path = /dev/vda3
[state]
type = uboot-text
path = /boot/iadstate.txt
boot_counter = bootloader
`
	defaultEnv = "board=iad-vm\n"
)

// fwEnvConfig locates the two environment copies in the boot-state area.
func fwEnvConfig(l Layout) string {
	return fmt.Sprintf("/dev/vda1 0x0 %#x\n/dev/vda1 %#x %#x\n", l.EnvSize, l.EnvSize, l.EnvSize)
}

// stageFile is one file of a staged tree.
type stageFile struct {
	name string
	mode os.FileMode
	data []byte
	src  string // a host file instead of data
	link string // a symlink instead
}

// stage writes files under dir with the build's time stamp.
func (b *builder) stage(dir string, fs []stageFile, dirs []string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	mk := func(d string) error {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		return os.Chmod(d, 0o755)
	}
	for _, d := range append([]string{"."}, dirs...) {
		if err := mk(filepath.Join(dir, d)); err != nil {
			return err
		}
	}
	for _, f := range fs {
		p := filepath.Join(dir, f.name)
		if err := mk(filepath.Dir(p)); err != nil {
			return err
		}
		if f.link != "" {
			if err := os.Symlink(f.link, p); err != nil {
				return err
			}
			continue
		}
		data := f.data
		if f.src != "" {
			var err error
			if data, err = os.ReadFile(f.src); err != nil {
				return err
			}
		}
		if err := os.WriteFile(p, data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	return b.stamp(dir)
}

// stamp sets the time of everything under dir to the epoch.
func (b *builder) stamp(dir string) error {
	t := b.opts.Epoch
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&os.ModeSymlink != 0 {
			return nil // mksquashfs -all-time covers links
		}
		return os.Chtimes(p, t, t)
	})
}

func (b *builder) busybox() []stageFile {
	fs := []stageFile{{name: "bin/busybox", mode: 0o755, src: b.fw.Kernel.Busybox}}
	for _, a := range applets {
		fs = append(fs, stageFile{name: "bin/" + a, link: "busybox"})
	}
	return fs
}

func (b *builder) banks(ctx context.Context) error {
	pub, err := os.ReadFile(b.fw.PublicKey)
	if err != nil {
		return err
	}
	startup, err := files.ReadFile("files/startup.sh")
	if err != nil {
		return err
	}
	for _, v := range Versions {
		fs := append(b.busybox(),
			stageFile{name: "sbin/init", mode: 0o755, data: startup},
			stageFile{name: "usr/bin/iad-agent", mode: 0o755, src: b.binPath("iad-agent-" + v)},
			stageFile{name: "etc/iad/bank.conf", mode: 0o644, data: []byte(bankConf)},
			stageFile{name: "etc/iad/bank-uboot.conf", mode: 0o644, data: []byte(bankUBootConf)},
			stageFile{name: "etc/iad/fw_env.config", mode: 0o644, data: []byte(fwEnvConfig(b.fw.Layout))},
			stageFile{name: "etc/iad/u-boot-initial-env", mode: 0o644, data: []byte(defaultEnv)},
			stageFile{name: "etc/iad/trusted.pub", mode: 0o644, data: pub},
			stageFile{name: "etc/iad/version", mode: 0o644, data: []byte(v + "\n")},
			stageFile{name: "etc/iad/hardware", mode: 0o644, data: []byte(b.fw.Hardware + "\n")},
		)
		if v == Big {
			// Firmware for the line cards, say: random, so nothing
			// compresses it, sized so that the payload is BigPayload
			// (the rest of the bank is what version Second holds).
			n := b.opts.BigPayload - b.fw.Banks[Second].Size
			fs = append(fs, stageFile{name: "usr/share/iad/blob.bin", mode: 0o644, data: blob(max(n, 1<<20))})
		}
		dir := filepath.Join(b.bin, "stage-"+v)
		if err := b.stage(dir, fs, []string{"dev", "proc", "sys", "tmp", "run", "data", "boot", "usr/sbin"}); err != nil {
			return err
		}
		out := filepath.Join(b.fw.Dir, "banks", v+".sqfs")
		os.Remove(out)
		// SOURCE_DATE_EPOCH (set by run) stamps the image and its files.
		// Random data does not compress: do not try.
		if err := b.run(ctx, "mksquashfs", dir, out, "-noappend", "-comp", "gzip", "-all-root", "-no-xattrs",
			"-quiet", "-no-progress", "-action", "uncompressed@name(blob.bin)"); err != nil {
			return err
		}
		bank, err := b.signedImage(v, out)
		if err != nil {
			return err
		}
		b.fw.Banks[v] = bank
		os.RemoveAll(dir)
	}
	return nil
}

// blob is n pseudo-random bytes from a fixed seed.
func blob(n int64) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{'i', 'a', 'd'}))
	out := make([]byte, n)
	for i := 0; i+8 <= len(out); i += 8 {
		x := r.Uint64()
		for j := range 8 {
			out[i+j] = byte(x >> (8 * j))
		}
	}
	return out
}

// signedImage writes images/v<version>.img for the payload at path.
func (b *builder) signedImage(version, path string) (Bank, error) {
	payload, err := os.ReadFile(path)
	if err != nil {
		return Bank{}, err
	}
	sum := sha256.Sum256(payload)
	h := image.Header{
		Hardware: b.fw.Hardware, Version: version, ConfigFormat: 1,
		PayloadSize: int64(len(payload)), PayloadSHA256: sum, Created: b.opts.Epoch.Truncate(time.Second),
	}
	var buf bytes.Buffer
	if err := image.Build(&buf, h, bytes.NewReader(payload), b.priv); err != nil {
		return Bank{}, err
	}
	img := filepath.Join(b.fw.Dir, "images", "v"+version+".img")
	if err := os.WriteFile(img, buf.Bytes(), 0o644); err != nil {
		return Bank{}, err
	}
	return Bank{Version: version, Path: path, Size: int64(len(payload)), SHA256: sum, Image: img}, nil
}
