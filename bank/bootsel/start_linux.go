package bootsel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/setup"
)

// BankEnv is the environment variable that tells the started software
// which bank it runs from ("A" or "B").
const BankEnv = "IAD_BOOT_BANK"

// System starts banks on the running Linux system.
type System struct {
	// NewRoot is where a bank's root is mounted; default /newroot.
	NewRoot string
}

// PrepareInit mounts what the selector reads when it runs as PID 1:
// /proc, /sys and devtmpfs on /dev, each unless already mounted.
func PrepareInit() error {
	for _, m := range []struct{ dir, fstype string }{{"/proc", "proc"}, {"/sys", "sysfs"}, {"/dev", "devtmpfs"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("bootsel: %w", err)
		}
		err := unix.Mount(m.fstype, m.dir, m.fstype, 0, "")
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("bootsel: mounting %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	return nil
}

// Start execs the bank's program, or mounts its root read-only and
// switches root to it, then execs its init.
func (s System) Start(ctx context.Context, slot bank.Slot, t setup.Target) error {
	env := append(os.Environ(), BankEnv+"="+slot.String())
	if len(t.Exec) > 0 {
		return fmt.Errorf("bootsel: exec %s: %w", t.Exec[0], syscall.Exec(t.Exec[0], t.Exec, env))
	}
	root := s.NewRoot
	if root == "" {
		root = "/newroot"
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("bootsel: %w", err)
	}
	if err := unix.Mount(t.Root, root, t.FSType, unix.MS_RDONLY, t.Options); err != nil {
		return fmt.Errorf("bootsel: mounting %s (%s) on %s: %w", t.Root, t.FSType, root, err)
	}
	init := filepath.Join(root, t.Init)
	if _, err := os.Stat(init); err != nil {
		unix.Unmount(root, 0)
		return fmt.Errorf("bootsel: bank %v has no %s: %w", slot, t.Init, err)
	}
	// Carry the kernel file systems over, then make the bank's root /.
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err == nil && fi.IsDir() {
			unix.Mount(d, filepath.Join(root, d), "", unix.MS_MOVE, "")
		}
	}
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("bootsel: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("bootsel: moving %s to /: %w", root, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("bootsel: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("bootsel: %w", err)
	}
	return fmt.Errorf("bootsel: exec %s: %w", t.Init, syscall.Exec(t.Init, []string{t.Init}, env))
}
