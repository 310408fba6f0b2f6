// Package vm boots a small ARM Linux guest in QEMU for tests: it finds
// Debian's armhf or arm64 kernel and modules (fetched by fetch-kernel.sh,
// never committed), assembles an initramfs in Go (newc cpio, gzip),
// cross-builds Go programs for the guest, runs qemu-system-arm or
// qemu-system-aarch64 -M virt with one vCPU (directly on the kernel, or
// through a firmware such as U-Boot) with no network or with user-mode
// networking only, and synchronises on console marker lines, never on
// sleeps. On failure the console log and the exact QEMU command line are
// in the error, so a run can be reproduced by hand.
//
// It is shared by the flash tests here and by the device VM of
// scripts/vm/device. It must never attach a network device other than
// QEMU user-mode networking (no tap, no bridge: the guest reaches only the
// host's loopback, as 10.0.2.2), and never leave a QEMU process running
// after the test (Stop kills it, and only it, by its process group).
package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Errors returned by the package.
var (
	ErrNoKernel = errors.New("vm: kernel not fetched (run scripts/vm/fetch-kernel.sh ARCH or make test-deps)")
	ErrExited   = errors.New("vm: QEMU exited")
)

// Arch is a Debian architecture the guest runs.
type Arch string

const (
	ArmHF Arch = "armhf" // 32-bit ARMv7: qemu-system-arm, Debian's armmp kernel
	Arm64 Arch = "arm64" // 64-bit ARMv8: qemu-system-aarch64, Debian's arm64 kernel
)

// flavour is the Debian kernel flavour of the architecture.
func (a Arch) flavour() string {
	if a == Arm64 {
		return "arm64"
	}
	return "armmp"
}

// QEMU is the system emulator of the architecture.
func (a Arch) QEMU() string {
	if a == Arm64 {
		return "qemu-system-aarch64"
	}
	return "qemu-system-arm"
}

// CPU is the emulated CPU model.
func (a Arch) CPU() string {
	if a == Arm64 {
		return "cortex-a53"
	}
	return "cortex-a15"
}

// GoEnv is the environment that cross-builds static Go programs for the
// architecture.
func (a Arch) GoEnv() []string {
	if a == Arm64 {
		return []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}
	}
	return []string{"GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0"}
}

// DefaultCache is where fetch-kernel.sh unpacks the armhf packages; the
// IAD_VM_CACHE environment variable overrides it.
const DefaultCache = "/var/cache/iad-agent/armhf"

// Cache is where fetch-kernel.sh unpacks the packages of arch:
// /var/cache/iad-agent/ARCH, or IAD_VM_CACHE (armhf) and
// IAD_VM_CACHE_ARM64 (arm64).
func (a Arch) Cache() string {
	env := "IAD_VM_CACHE"
	if a == Arm64 {
		env = "IAD_VM_CACHE_ARM64"
	}
	if c := os.Getenv(env); c != "" {
		return c
	}
	return filepath.Join(filepath.Dir(DefaultCache), string(a))
}

// Kernel is an unpacked Debian kernel with its modules, and the
// busybox-static of the same architecture.
type Kernel struct {
	Arch    Arch
	Image   string // vmlinuz
	Modules string // lib/modules/VERSION
	Version string
	Busybox string // bin/busybox (static)
}

// FindKernel locates the armhf kernel fetch-kernel.sh unpacked.
func FindKernel() (Kernel, error) { return FindKernelArch(ArmHF) }

// FindKernelArch locates the kernel of arch that fetch-kernel.sh unpacked.
func FindKernelArch(arch Arch) (Kernel, error) {
	cache := arch.Cache()
	imgs, _ := filepath.Glob(filepath.Join(cache, "root", "boot", "vmlinuz-*-"+arch.flavour()))
	if len(imgs) == 0 {
		return Kernel{}, fmt.Errorf("%w: no %s kernel in %s", ErrNoKernel, arch, cache)
	}
	sort.Strings(imgs)
	img := imgs[len(imgs)-1]
	ver := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
	mods := filepath.Join(cache, "root", "lib", "modules", ver)
	if _, err := os.Stat(mods); err != nil {
		return Kernel{}, fmt.Errorf("%w: %v", ErrNoKernel, err)
	}
	return Kernel{Arch: arch, Image: img, Modules: mods, Version: ver, Busybox: filepath.Join(cache, "root", "bin", "busybox")}, nil
}

// Module returns the path of the module file name (e.g. "nandsim.ko").
func (k Kernel) Module(name string) (string, error) {
	var found string
	err := filepath.WalkDir(k.Modules, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == name {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	if err == nil && found == "" {
		err = fmt.Errorf("vm: module %s not in %s", name, k.Modules)
	}
	return found, err
}

// Initramfs is a newc cpio archive being assembled in memory.
type Initramfs struct {
	buf    bytes.Buffer
	ino    uint32
	dirs   map[string]bool
	sealed bool
}

// NewInitramfs returns an archive with /dev, /proc, /sys, /tmp and
// /lib/modules.
func NewInitramfs() *Initramfs {
	r := &Initramfs{dirs: map[string]bool{}}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "lib/modules", "etc"} {
		r.Dir(d)
	}
	return r
}

func (r *Initramfs) entry(name string, mode uint32, data []byte) {
	r.ino++
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	fmt.Fprintf(&r.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		r.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	r.buf.WriteString(name)
	r.buf.WriteByte(0)
	r.pad()
	r.buf.Write(data)
	r.pad()
}

func (r *Initramfs) pad() {
	for r.buf.Len()%4 != 0 {
		r.buf.WriteByte(0)
	}
}

// Dir adds a directory and its parents.
func (r *Initramfs) Dir(name string) {
	name = strings.Trim(path.Clean(name), "/")
	if name == "" || name == "." || r.dirs[name] {
		return
	}
	r.Dir(path.Dir(name))
	r.dirs[name] = true
	r.entry(name, 0o40755, nil)
}

// File adds a file with mode perm (e.g. 0o755).
func (r *Initramfs) File(name string, perm uint32, data []byte) {
	r.Dir(path.Dir(name))
	r.entry(name, 0o100000|perm, data)
}

// HostFile adds the host file src as name.
func (r *Initramfs) HostFile(name string, perm uint32, src string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	r.File(name, perm, b)
	return nil
}

// Symlink adds a symbolic link.
func (r *Initramfs) Symlink(name, target string) {
	r.Dir(path.Dir(name))
	r.entry(name, 0o120777, []byte(target))
}

// Write ends the archive and writes it gzipped to path.
func (r *Initramfs) Write(p string) error {
	if !r.sealed {
		r.entry("TRAILER!!!", 0, nil)
		r.sealed = true
	}
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if _, err := zw.Write(r.buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("vm: %w", err)
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return fmt.Errorf("vm: %w", err)
	}
	return f.Close()
}

// BuildGuest cross-builds the main package pkg (relative to the module
// root dir) as a static ARMv7 binary into out.
func BuildGuest(ctx context.Context, dir, pkg, out string) error {
	return BuildGuestArch(ctx, ArmHF, dir, pkg, out, "")
}

// BuildGuestArch cross-builds the main package pkg (relative to the
// module root dir) as a static, stripped binary for arch into out;
// ldflags are added to "-s -w" (e.g. "-X main.version=2.0.0"). The build
// is reproducible (-trimpath, no build ID).
func BuildGuestArch(ctx context.Context, arch Arch, dir, pkg, out, ldflags string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	flags := strings.TrimSpace("-s -w -buildid= " + ldflags)
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags="+flags, "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), arch.GoEnv()...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vm: cross-building %s for %s: %w\n%s", pkg, arch, err, b)
	}
	return nil
}

// Config describes one guest run.
type Config struct {
	Kernel Kernel
	Initrd string
	// Append is added to the kernel command line after
	// "console=ttyAMA0 panic=1".
	Append string
	// BIOS boots this firmware (U-Boot's u-boot.bin) instead of the
	// kernel: the firmware loads kernel and initrd from a disk, and
	// Initrd and Append are not used.
	BIOS      string
	MemoryMiB int // default 256
	// Disks are raw images attached as virtio-blk devices, in order
	// (/dev/vda, /dev/vdb…).
	Disks []string
	// Net, if not nil, attaches a virtio-net device on QEMU user-mode
	// networking: the guest is 10.0.2.15 and reaches the host's loopback
	// as 10.0.2.2; the host reaches the guest only through HostFwd.
	Net     *UserNet
	Extra   []string // more QEMU arguments
	LogPath string   // console log; default in a temporary directory
	// OnLine, if set, is called with each console line as it arrives
	// (from one goroutine, in order).
	OnLine func(line string)
}

// UserNet is QEMU user-mode networking (slirp): no tap, no bridge, no
// packet leaves the QEMU process except to the host's own sockets.
type UserNet struct {
	// HostFwd are host forwards, e.g. "udp:127.0.0.1:16161-:161". Bind
	// them to 127.0.0.1 only.
	HostFwd []string
}

// End is how a guest run ended.
type End string

const (
	Running  End = ""          // QEMU still runs
	PowerOff End = "power-off" // the guest powered off ("reboot: Power down")
	Reboot   End = "reboot"    // the guest restarted ("reboot: Restarting system"; with -no-reboot QEMU exits)
	Panic    End = "panic"     // a kernel panic; with panic=1 the kernel restarts, so it is a reboot too
	Killed   End = "killed"    // the harness killed QEMU: a power cut
	Failed   End = "failed"    // QEMU exited on its own for another reason
)

// Machine is a running guest.
type Machine struct {
	Cmd     []string
	LogPath string
	proc    *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	lines   []string
	notify  chan struct{}
	done    chan struct{}
	waitErr error
	killed  bool
	end     End
	onLine  func(string)
}

// Start launches QEMU with -no-reboot: a guest reboot ends the run (End
// tells a reboot from a power-off), so that a caller can start the next
// boot as a new run with its own console log. Stop it with Stop (tests:
// t.Cleanup(m.Stop)).
func Start(c Config) (*Machine, error) {
	arch := c.Kernel.Arch
	if arch == "" {
		arch = ArmHF
	}
	qemu, err := exec.LookPath(arch.QEMU())
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	mem := c.MemoryMiB
	if mem == 0 {
		mem = 256
	}
	args := []string{qemu, "-M", "virt", "-cpu", arch.CPU(), "-smp", "1", "-m", fmt.Sprint(mem),
		"-nographic", "-no-reboot", "-nic", "none"}
	if c.BIOS != "" {
		args = append(args, "-bios", c.BIOS)
	} else {
		args = append(args, "-kernel", c.Kernel.Image, "-initrd", c.Initrd,
			"-append", strings.TrimSpace("console=ttyAMA0 panic=1 "+c.Append))
	}
	for i, d := range c.Disks {
		id := fmt.Sprintf("d%d", i)
		args = append(args, "-drive", "if=none,format=raw,file="+d+",id="+id, "-device", "virtio-blk-device,drive="+id)
	}
	if c.Net != nil {
		netdev := "user,id=n0"
		for _, f := range c.Net.HostFwd {
			netdev += ",hostfwd=" + f
		}
		args = append(args, "-netdev", netdev, "-device", "virtio-net-device,netdev=n0")
	}
	args = append(args, c.Extra...)
	m := &Machine{Cmd: args, LogPath: c.LogPath, notify: make(chan struct{}, 1), done: make(chan struct{}), onLine: c.OnLine}
	if m.LogPath == "" {
		d, err := os.MkdirTemp("", "iad-vm-")
		if err != nil {
			return nil, err
		}
		m.LogPath = filepath.Join(d, "console.log")
	}
	logf, err := os.Create(m.LogPath)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	fmt.Fprintf(logf, "# %s\n", shellQuote(args))
	pr, pw := io.Pipe()
	m.proc = exec.Command(args[0], args[1:]...)
	m.proc.Stdout, m.proc.Stderr = pw, pw
	// The serial console's input: Send writes lines to it.
	if m.stdin, err = m.proc.StdinPipe(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("vm: %w", err)
	}
	m.proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.proc.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("vm: starting QEMU: %w", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintln(logf, line)
			m.mu.Lock()
			m.lines = append(m.lines, line)
			m.mu.Unlock()
			if m.onLine != nil {
				m.onLine(line)
			}
			select {
			case m.notify <- struct{}{}:
			default:
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		err := m.proc.Wait()
		pw.Close()
		<-read
		m.mu.Lock()
		m.waitErr = err
		m.end = m.classify()
		end := m.end
		m.mu.Unlock()
		fmt.Fprintf(logf, "# vm: QEMU exited (%v): %s\n", err, end)
		logf.Close()
		close(m.done)
	}()
	return m, nil
}

// classify tells how the run ended from the last console lines; m.mu
// is held.
func (m *Machine) classify() End {
	if m.killed {
		return Killed
	}
	for i := len(m.lines) - 1; i >= 0 && i >= len(m.lines)-40; i-- {
		l := m.lines[i]
		switch {
		case strings.Contains(l, "reboot: Power down"):
			return PowerOff
		case strings.Contains(l, "reboot: Restarting system"), strings.HasPrefix(l, "resetting ..."):
			return Reboot
		case strings.Contains(l, "Kernel panic - not syncing"):
			return Panic
		}
	}
	return Failed
}

// End returns how the run ended, or Running.
func (m *Machine) End() End {
	select {
	case <-m.done:
	default:
		return Running
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.end
}

// Done is closed when QEMU has exited and the console log is complete.
func (m *Machine) Done() <-chan struct{} { return m.done }

// PID is QEMU's process ID.
func (m *Machine) PID() int { return m.proc.Process.Pid }

// Send writes s and a newline to the guest's serial console.
func (m *Machine) Send(s string) error {
	if _, err := io.WriteString(m.stdin, s+"\n"); err != nil {
		return fmt.Errorf("vm: console input: %w", err)
	}
	return nil
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \"'$;&|") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// Lines returns the console lines so far.
func (m *Machine) Lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

// WaitFor waits until a console line matches re and returns its
// submatches; it fails when QEMU exits first or ctx ends.
func (m *Machine) WaitFor(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	seen := 0
	for {
		lines := m.Lines()
		for ; seen < len(lines); seen++ {
			if sm := re.FindStringSubmatch(lines[seen]); sm != nil {
				return sm, nil
			}
		}
		select {
		case <-m.notify:
		case <-m.done:
			// Drain what the reader may still deliver.
			if l := m.Lines(); len(l) > seen {
				continue
			}
			return nil, fmt.Errorf("%w before a line matched %q", ErrExited, re)
		case <-ctx.Done():
			return nil, fmt.Errorf("vm: waiting for %q: %w", re, ctx.Err())
		}
	}
}

// Wait waits for QEMU to exit and returns its error.
func (m *Machine) Wait(ctx context.Context) error {
	select {
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.waitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop kills QEMU (SIGKILL to its own process group: a power cut) if it
// still runs, and waits for it; End then reports Killed.
func (m *Machine) Stop() {
	select {
	case <-m.done:
		return
	default:
	}
	m.mu.Lock()
	m.killed = true
	m.mu.Unlock()
	syscall.Kill(-m.proc.Process.Pid, syscall.SIGKILL)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
	}
}

// Tail returns the last n console lines and the command line, for
// failure messages.
func (m *Machine) Tail(n int) string {
	l := m.Lines()
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return fmt.Sprintf("qemu: %s\nconsole (%s, last %d lines):\n%s", shellQuote(m.Cmd), m.LogPath, len(l), strings.Join(l, "\n"))
}

// RequireKernel returns the armhf kernel, or skips the test (fails it
// when CI=true) if it was not fetched; likewise for qemu-system-arm.
func RequireKernel(t testing.TB) Kernel {
	t.Helper()
	return RequireKernelArch(t, ArmHF)
}

// RequireKernelArch is RequireKernel for arch.
func RequireKernelArch(t testing.TB, arch Arch) Kernel {
	t.Helper()
	k, err := FindKernelArch(arch)
	if err == nil {
		_, err = exec.LookPath(arch.QEMU())
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v", err)
		}
		t.Skipf("%v", err)
	}
	return k
}
