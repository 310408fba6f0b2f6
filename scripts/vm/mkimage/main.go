// Command mkimage builds the device VM's firmware (scripts/vm/firmware)
// for `make vm-image`: kernel, initramfs, bank payloads, signed upgrade
// images and the disks, reproducibly, into -out/ARCH. It prints the
// output's files and how to boot them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/iadsafe/iad-agent/scripts/vm"
	"github.com/iadsafe/iad-agent/scripts/vm/firmware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	out := fs.String("out", "vm-out", "output directory (one subdirectory per architecture)")
	archs := fs.String("arch", "armhf,arm64", "architectures to build, comma-separated")
	root := fs.String("root", ".", "repository root")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, a := range strings.Split(*archs, ",") {
		arch := vm.Arch(strings.TrimSpace(a))
		if arch != vm.ArmHF && arch != vm.Arm64 {
			fmt.Fprintf(os.Stderr, "mkimage: unknown architecture %q (want armhf or arm64)\n", arch)
			return 2
		}
		k, err := vm.FindKernelArch(arch)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
			return 1
		}
		dir, err := filepath.Abs(filepath.Join(*out, string(arch)))
		if err != nil {
			fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
			return 1
		}
		fw, err := firmware.Build(ctx, firmware.Options{Root: *root, Out: dir, Kernel: k, Log: os.Stdout})
		if err != nil {
			fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
			return 1
		}
		fmt.Printf("\n%s firmware in %s (kernel %s, hardware %q):\n", arch, fw.Dir, k.Version, fw.Hardware)
		for _, v := range firmware.Versions {
			b := fw.Banks[v]
			fmt.Printf("  %-6s payload %9d bytes  sha256 %x  image %s\n", v, b.Size, b.SHA256[:8], rel(dir, b.Image))
		}
		sums, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
		fmt.Printf("  SHA256SUMS:\n    %s\n", strings.ReplaceAll(strings.TrimSpace(string(sums)), "\n", "\n    "))
		fmt.Printf("  boot it: %s\n", filepath.Join(dir, "run-qemu.sh"))
		if fw.UBootDisk != "" {
			fmt.Printf("  through U-Boot: %s\n", filepath.Join(dir, "run-uboot.sh"))
		}
	}
	return 0
}

func rel(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil {
		return r
	}
	return p
}
