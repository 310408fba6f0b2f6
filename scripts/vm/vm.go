// Package vm boots a small ARM Linux guest in QEMU for tests: it finds
// Debian's armhf kernel and modules (fetched by fetch-armhf.sh, never
// committed), assembles an initramfs in Go (newc cpio, gzip), cross-builds
// Go programs for the guest, runs qemu-system-arm -M virt with one vCPU
// and no network, and synchronises on console marker lines, never on
// sleeps. On failure the console log and the exact QEMU command line are
// in the error, so a run can be reproduced by hand.
//
// It is shared by the flash tests here and by the device VM tests of
// other packages. It must never attach a network device other than QEMU
// user-mode networking, and never leave a QEMU process running after
// the test (Stop kills it by PID).
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
	ErrNoKernel = errors.New("vm: armhf kernel not fetched (run scripts/vm/fetch-armhf.sh or make test-deps)")
	ErrExited   = errors.New("vm: QEMU exited")
)

// DefaultCache is where fetch-armhf.sh unpacks the armhf packages; the
// IAD_VM_CACHE environment variable overrides it.
const DefaultCache = "/var/cache/iad-agent/armhf"

// Kernel is an unpacked Debian armmp kernel.
type Kernel struct {
	Image   string // vmlinuz
	Modules string // lib/modules/VERSION
	Version string
}

// FindKernel locates the kernel fetch-armhf.sh unpacked.
func FindKernel() (Kernel, error) {
	cache := os.Getenv("IAD_VM_CACHE")
	if cache == "" {
		cache = DefaultCache
	}
	imgs, _ := filepath.Glob(filepath.Join(cache, "root", "boot", "vmlinuz-*-armmp"))
	if len(imgs) == 0 {
		return Kernel{}, fmt.Errorf("%w: nothing in %s", ErrNoKernel, cache)
	}
	sort.Strings(imgs)
	img := imgs[len(imgs)-1]
	ver := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
	mods := filepath.Join(cache, "root", "lib", "modules", ver)
	if _, err := os.Stat(mods); err != nil {
		return Kernel{}, fmt.Errorf("%w: %v", ErrNoKernel, err)
	}
	return Kernel{Image: img, Modules: mods, Version: ver}, nil
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
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vm: cross-building %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// Config describes one guest run.
type Config struct {
	Kernel Kernel
	Initrd string
	// Append is added to the kernel command line after
	// "console=ttyAMA0 panic=1".
	Append    string
	MemoryMiB int      // default 256
	Extra     []string // more QEMU arguments (drives, user-mode netdevs)
	LogPath   string   // console log; default in a temporary directory
}

// Machine is a running guest.
type Machine struct {
	Cmd     []string
	LogPath string
	proc    *exec.Cmd
	mu      sync.Mutex
	lines   []string
	notify  chan struct{}
	done    chan struct{}
	waitErr error
}

// Start launches QEMU. Stop it with Stop (tests: t.Cleanup(m.Stop)).
func Start(c Config) (*Machine, error) {
	qemu, err := exec.LookPath("qemu-system-arm")
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	mem := c.MemoryMiB
	if mem == 0 {
		mem = 256
	}
	args := []string{qemu, "-M", "virt", "-cpu", "cortex-a15", "-smp", "1", "-m", fmt.Sprint(mem),
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", c.Kernel.Image, "-initrd", c.Initrd,
		"-append", strings.TrimSpace("console=ttyAMA0 panic=1 " + c.Append)}
	args = append(args, c.Extra...)
	m := &Machine{Cmd: args, LogPath: c.LogPath, notify: make(chan struct{}, 1), done: make(chan struct{})}
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
	m.proc.Stdin = nil
	m.proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.proc.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("vm: starting QEMU: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintln(logf, line)
			m.mu.Lock()
			m.lines = append(m.lines, line)
			m.mu.Unlock()
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
		m.mu.Lock()
		m.waitErr = err
		m.mu.Unlock()
		logf.Close()
		close(m.done)
	}()
	return m, nil
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

// Stop kills QEMU (by its process group) if it still runs.
func (m *Machine) Stop() {
	select {
	case <-m.done:
		return
	default:
	}
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

// RequireKernel returns the kernel, or skips the test (fails it when
// CI=true) if it was not fetched; likewise for qemu-system-arm.
func RequireKernel(t testing.TB) Kernel {
	t.Helper()
	k, err := FindKernel()
	if err == nil {
		_, err = exec.LookPath("qemu-system-arm")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v", err)
		}
		t.Skipf("%v", err)
	}
	return k
}
