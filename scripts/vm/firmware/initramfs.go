package firmware

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/iadsafe/iad-agent/scripts/vm"
)

// Modules are the kernel modules the initramfs loads, in dependency
// order (Debian's kernel has these drivers as modules, and the package
// has no modules.dep): virtio transport, disk and network, ext4 for the
// data partition, squashfs for the banks, vfat for U-Boot's partition.
var Modules = []string{
	"virtio_mmio", "virtio_blk", "failover", "net_failover", "virtio_net",
	"crc16", "crc32c_generic", "mbcache", "jbd2", "ext4", "squashfs",
	"fat", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859-1", "nls_utf8",
}

func (b *builder) initramfs(context.Context) error {
	rd := vm.NewInitramfs()
	init, err := files.ReadFile("files/init.sh")
	if err != nil {
		return err
	}
	rd.File("init", 0o755, init)
	if err := rd.HostFile("bin/busybox", 0o755, b.fw.Kernel.Busybox); err != nil {
		return err
	}
	rd.Symlink("bin/sh", "busybox")
	if err := rd.HostFile("sbin/iad-boot", 0o755, b.binPath("iad-boot")); err != nil {
		return err
	}
	for _, m := range Modules {
		p, err := b.fw.Kernel.Module(m + ".ko")
		if err != nil {
			return err
		}
		if err := rd.HostFile("lib/modules/"+m+".ko", 0o644, p); err != nil {
			return err
		}
	}
	rd.File("etc/modules", 0o644, []byte(strings.Join(Modules, "\n")+"\n"))
	rd.File("etc/iad/bank.conf", 0o644, []byte(bankConf))
	rd.File("etc/iad/fw_env.config", 0o644, []byte(fwEnvConfig(b.fw.Layout)))
	rd.File("etc/iad/u-boot-initial-env", 0o644, []byte(defaultEnv))
	rd.Dir("newroot")
	b.fw.Initrd = filepath.Join(b.fw.Dir, "initrd.gz")
	if err := rd.Write(b.fw.Initrd); err != nil {
		return err
	}
	// The kernel goes next to it, so the output directory boots alone.
	kernel, err := os.ReadFile(b.fw.Kernel.Image)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.fw.Dir, "vmlinuz"), kernel, 0o644)
}
