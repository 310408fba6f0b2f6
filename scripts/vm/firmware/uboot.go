package firmware

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/iadsafe/iad-agent/bank/ubootenv"
	"github.com/iadsafe/iad-agent/scripts/vm"
)

// ubootDisk makes the U-Boot device (armhf: Debian's u-boot-qemu has a
// qemu_arm build): partition 1 is FAT with boot.scr, the kernel
// (zImage), the initramfs and iadstate.txt holding the factory state.
func (b *builder) ubootDisk(ctx context.Context) error {
	if b.fw.Arch != vm.ArmHF {
		return nil
	}
	tmp, err := os.MkdirTemp("", "iad-vm-fat-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd, err := files.ReadFile("files/boot.cmd")
	if err != nil {
		return err
	}
	stage := filepath.Join(tmp, "stage")
	if err := b.stage(stage, []stageFile{
		{name: "boot.cmd", mode: 0o644, data: cmd},
		{name: "zImage", mode: 0o644, src: b.fw.Kernel.Image},
		{name: "initrd.gz", mode: 0o644, src: b.fw.Initrd},
	}, nil); err != nil {
		return err
	}
	scr := filepath.Join(stage, "boot.scr")
	if err := b.run(ctx, "mkimage", "-A", "arm", "-O", "linux", "-T", "script", "-C", "none",
		"-n", "iad A/B boot", "-d", filepath.Join(stage, "boot.cmd"), scr); err != nil {
		return err
	}
	store, err := ubootenv.NewStore(ubootenv.OpenText(filepath.Join(stage, "iadstate.txt")), ubootenv.StoreOptions{Defaults: ubootenv.Vars{}})
	if err != nil {
		return err
	}
	if err := store.Save(ctx, b.factoryState()); err != nil {
		return err
	}
	if err := b.stamp(stage); err != nil {
		return err
	}
	fat := filepath.Join(tmp, "boot.vfat")
	if err := b.run(ctx, "mkfs.vfat", "-C", "-n", "IADBOOT", "-i", "1AD0B007", "--invariant",
		fat, strconv.FormatInt(b.fw.Layout.FATSize>>10, 10)); err != nil {
		return err
	}
	for _, name := range []string{"boot.scr", "boot.cmd", "zImage", "initrd.gz", "iadstate.txt"} {
		if err := b.run(ctx, "mcopy", "-i", fat, "-m", filepath.Join(stage, name), "::/"+name); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(fat)
	if err != nil {
		return err
	}
	b.fw.UBootDisk = filepath.Join(b.fw.Dir, "disk-uboot.img")
	b.fw.UBoot = UBootBinary
	f, parts, err := b.newDisk(ctx, b.fw.UBootDisk, true)
	if err != nil {
		return err
	}
	if int64(len(data)) != parts[0].Size {
		f.Close()
		return fmt.Errorf("mkfs.vfat made %d bytes, want %d", len(data), parts[0].Size)
	}
	if _, err := f.WriteAt(data, parts[0].Offset); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runScripts writes run-qemu.sh (and run-uboot.sh) into the output
// directory: the command that boots the image by hand with the agent's
// SNMP port forwarded to the host's 127.0.0.1:16161. They boot a copy
// of the disk, so the image itself stays pristine.
func (b *builder) runScripts() error {
	qemu := fmt.Sprintf("%s -M virt -cpu %s -smp 1 -m 256 -nographic -no-reboot -nic none", b.fw.Arch.QEMU(), b.fw.Arch.CPU())
	tail := `-drive if=none,format=raw,file="$disk",id=d0 -device virtio-blk-device,drive=d0 \
  -netdev user,id=n0,hostfwd=udp:127.0.0.1:${SNMP_PORT:-16161}-:161 -device virtio-net-device,netdev=n0`
	head := `#!/bin/sh
# Boots the device VM by hand (see README: "The device VM"). The agent's
# SNMP port is forwarded to 127.0.0.1:${SNMP_PORT:-16161}; the guest
# reaches servers on the host's loopback as 10.0.2.2. QEMU exits when the
# guest resets or powers off (-no-reboot): run the script again to boot
# the same disk again. Quit with Ctrl-a x.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
disk=${DISK:-$here/%s}
[ -f "$disk" ] || cp --sparse=always "$here/%s" "$disk"
exec `
	run := fmt.Sprintf(head, "device.img", "disk.img") + qemu + ` \
  -kernel "$here/vmlinuz" -initrd "$here/initrd.gz" -append "console=ttyAMA0 panic=1 quiet" \
  ` + tail + "\n"
	if err := os.WriteFile(filepath.Join(b.fw.Dir, "run-qemu.sh"), []byte(run), 0o755); err != nil {
		return err
	}
	if b.fw.UBootDisk == "" {
		return nil
	}
	run = fmt.Sprintf(head, "device-uboot.img", "disk-uboot.img") + qemu + ` \
  -bios ` + UBootBinary + ` \
  ` + tail + "\n"
	return os.WriteFile(filepath.Join(b.fw.Dir, "run-uboot.sh"), []byte(run), 0o755)
}
