// Package firmware builds the device image that the VM tests boot and
// that `make vm-image` writes: from Debian's kernel and busybox-static
// (fetched by scripts/vm/fetch-kernel.sh, never committed) and the
// repository's own commands cross-built for the guest, it assembles
//
//   - one bank payload per software version: a squashfs root holding the
//     agent binary of that version, busybox and the start-up script
//     (/sbin/init, files/startup.sh), and a signed upgrade image of it;
//   - an initramfs whose /init (files/init.sh) loads the drivers and hands
//     over to the boot selector iad-boot, or follows U-Boot's choice;
//   - a raw disk laid out like the device's flash (Layout): boot-state
//     area (a redundant U-Boot environment), bank A holding the factory
//     software, bank B, and the persistent data partition (ext4);
//   - for the U-Boot device, a disk whose first partition is FAT and holds
//     boot.scr (files/boot.cmd: A/B choice and try counting), the kernel,
//     the initramfs and the boot state file.
//
// Everything is made without root, loop devices or mounts (mksquashfs,
// mke2fs -d, mkfs.vfat and mcopy, mkimage, Go), and reproducibly: the
// same sources, Debian packages and Epoch give byte-identical files
// (SHA256SUMS lists them). The signing key is derived from a fixed seed:
// it is a test key, which no real device may trust.
//
// The package must never touch the host's devices or mounts, and never
// write outside the output directory it is given (and the temporary
// directory of a disk being made).
package firmware

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/iadsafe/iad-agent/scripts/vm"
)

//go:embed files/*
var files embed.FS

// ErrTool reports a host tool the build needs that is missing.
var ErrTool = errors.New("firmware: host tool missing (install with make test-deps)")

// Software versions in every build. Factory is in bank A of a new disk;
// Crash is software whose agent crashes at start; Big carries a blob
// that makes its payload BigPayload bytes or more.
const (
	Factory = "1.0.0"
	Second  = "2.0.0"
	Crash   = "3.0.0"
	Big     = "4.0.0"
)

// Versions lists the versions a build makes, in order.
var Versions = []string{Factory, Second, Crash, Big}

// DefaultEpoch is the time stamped into every file when SOURCE_DATE_EPOCH
// is not set.
var DefaultEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configure Build.
type Options struct {
	// Root is the module root (the repository).
	Root string
	// Out is the output directory; it is created.
	Out    string
	Kernel vm.Kernel
	// Epoch is the time of every file; zero means SOURCE_DATE_EPOCH, else
	// DefaultEpoch.
	Epoch time.Time
	// BigPayload is the least payload size of version Big; default 32 MiB.
	BigPayload int64
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Bank is one version's payload.
type Bank struct {
	Version string
	Path    string // the squashfs image (the payload)
	Size    int64
	SHA256  [32]byte
	Image   string // the signed upgrade image of the payload
}

// Firmware is a built device image.
type Firmware struct {
	Dir      string
	Arch     vm.Arch
	Kernel   vm.Kernel
	Hardware string // the hardware string the agents accept and the images carry
	Initrd   string
	// Disk is the iad-boot device: bank A holds Factory.
	Disk string
	// UBootDisk is the U-Boot device (armhf only; "" otherwise), and
	// UBoot the U-Boot binary that boots it.
	UBootDisk, UBoot string
	Banks            map[string]Bank
	PublicKey        string
	Layout           Layout
	Epoch            time.Time
}

// Build makes the firmware into opts.Out.
func Build(ctx context.Context, opts Options) (*Firmware, error) {
	if opts.Epoch.IsZero() {
		opts.Epoch = DefaultEpoch
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("firmware: SOURCE_DATE_EPOCH=%q: %w", s, err)
			}
			opts.Epoch = time.Unix(n, 0).UTC()
		}
	}
	if opts.BigPayload == 0 {
		opts.BigPayload = 32 << 20
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if err := RequireTools(opts.Kernel.Arch); err != nil {
		return nil, err
	}
	arch := opts.Kernel.Arch
	fw := &Firmware{
		Dir: opts.Out, Arch: arch, Kernel: opts.Kernel, Hardware: "iad-vm-" + string(arch),
		Banks: map[string]Bank{}, Layout: DefaultLayout, Epoch: opts.Epoch,
	}
	b := &builder{opts: opts, fw: fw, bin: filepath.Join(opts.Out, "build")}
	for _, d := range []string{b.bin, filepath.Join(opts.Out, "banks"), filepath.Join(opts.Out, "images"), filepath.Join(opts.Out, "keys")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("firmware: %w", err)
		}
	}
	steps := []struct {
		what string
		run  func(context.Context) error
	}{
		{"cross-building the commands", b.crossBuild},
		{"the signing key", b.key},
		{"bank payloads and upgrade images", b.banks},
		{"the initramfs", b.initramfs},
		{"the iad-boot disk", b.disk},
		{"the U-Boot disk", b.ubootDisk},
		{"run scripts and checksums", b.finish},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.run(ctx); err != nil {
			return nil, fmt.Errorf("firmware: %s: %w", s.what, err)
		}
		fmt.Fprintf(opts.Log, "firmware %s: %s (%v)\n", arch, s.what, time.Since(start).Round(time.Millisecond))
	}
	return fw, nil
}

// RequireTools checks the host tools a build runs.
func RequireTools(arch vm.Arch) error {
	tools := []string{"mksquashfs", "mke2fs", "debugfs", "mkfs.vfat", "mcopy", "mkimage"}
	var missing []string
	for _, t := range tools {
		if _, err := lookTool(t); err != nil {
			missing = append(missing, t)
		}
	}
	if arch == vm.ArmHF {
		if _, err := os.Stat(UBootBinary); err != nil {
			missing = append(missing, UBootBinary+" (u-boot-qemu)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrTool, strings.Join(missing, ", "))
	}
	return nil
}

// UBootBinary is Debian's u-boot-qemu build for qemu-system-arm -M virt.
const UBootBinary = "/usr/lib/u-boot/qemu_arm/u-boot.bin"

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrTool, name)
}

// run runs a host tool with the build's reproducibility settings.
func (b *builder) run(ctx context.Context, name string, args ...string) error {
	p, err := lookTool(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Env = append(os.Environ(),
		"SOURCE_DATE_EPOCH="+strconv.FormatInt(b.opts.Epoch.Unix(), 10),
		"E2FSPROGS_FAKE_TIME="+strconv.FormatInt(b.opts.Epoch.Unix(), 10),
		"MTOOLS_SKIP_CHECK=1", "TZ=UTC", "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

type builder struct {
	opts Options
	fw   *Firmware
	bin  string // cross-built binaries
	priv ed25519.PrivateKey
}

// binaries are the cross-built programs: the agent per version, the
// crashing agent, and iad-boot.
func (b *builder) binPath(name string) string { return filepath.Join(b.bin, name) }

func (b *builder) crossBuild(ctx context.Context) error {
	arch := b.fw.Arch
	builds := []struct{ pkg, out, ldflags string }{
		{"./cmd/iad-boot", "iad-boot", ""},
		{"./scripts/vm/firmware/crashagent", "iad-agent-" + Crash, "-X main.version=" + Crash},
	}
	for _, v := range Versions {
		if v != Crash {
			builds = append(builds, struct{ pkg, out, ldflags string }{"./cmd/iad-agent", "iad-agent-" + v, "-X main.version=" + v})
		}
	}
	for _, bl := range builds {
		if err := vm.BuildGuestArch(ctx, arch, b.opts.Root, bl.pkg, b.binPath(bl.out), bl.ldflags); err != nil {
			return err
		}
	}
	return nil
}

// keySeed derives the test signing key: fixed, so that builds are
// reproducible; public, so that no real device may ever trust it.
var keySeed = sha256.Sum256([]byte("iad-agent device VM test key: never trust it on a device"))

func (b *builder) key(context.Context) error {
	b.priv = ed25519.NewKeyFromSeed(keySeed[:])
	privDER, err := x509.MarshalPKCS8PrivateKey(b.priv)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(b.priv.Public())
	if err != nil {
		return err
	}
	b.fw.PublicKey = filepath.Join(b.fw.Dir, "keys", "vm-test.pub")
	if err := os.WriteFile(filepath.Join(b.fw.Dir, "keys", "vm-test.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(b.fw.PublicKey, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
}

func (b *builder) finish(context.Context) error {
	if err := b.runScripts(); err != nil {
		return err
	}
	var lines []string
	err := filepath.WalkDir(b.fw.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "SHA256SUMS" || strings.HasPrefix(p, b.bin+string(filepath.Separator)) {
			return err
		}
		sum, err := fileSHA256(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.fw.Dir, p)
		lines = append(lines, fmt.Sprintf("%x  %s", sum, rel))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(lines)
	return os.WriteFile(filepath.Join(b.fw.Dir, "SHA256SUMS"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func fileSHA256(p string) ([32]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}
