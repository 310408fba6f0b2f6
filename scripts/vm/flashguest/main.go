// Command flashguest is the init (PID 1) of the flash test guest that
// scripts/vm boots: it loads nandsim (a simulated 128 MiB NAND with
// injected bad blocks) and UBI, then for a raw MTD slot pair and for a
// UBI volume pair it upgrades the inactive bank, kills the writer with
// SIGKILL mid-write at least five times, and each time lets the boot
// selector (bank/bootsel, as iad-boot) choose again: it must refuse the
// partial bank and boot the verified one. A final upgrade is read back
// and verified. Progress lines start with "IAD-VM-MARK:", the verdict
// with "IAD-VM-RESULT:"; then the guest powers off.
//
// Run as "flashguest write CONFIG PAYLOAD VERSION" it is the writer: the
// running system's agent installing and arming one payload.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/bootsel"
	"github.com/iadsafe/iad-agent/bank/mtd"
	"github.com/iadsafe/iad-agent/bank/setup"
	"github.com/iadsafe/iad-agent/bank/ubi"
)

const minCuts = 5

func main() {
	if len(os.Args) > 1 && os.Args[1] == "write" {
		if err := write(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(1)
		}
		return
	}
	summary, err := guest()
	if err != nil {
		fmt.Printf("IAD-VM-RESULT: FAIL %v\n", err)
	} else {
		fmt.Printf("IAD-VM-RESULT: PASS %s\n", summary)
	}
	unix.Sync()
	if os.Getpid() == 1 {
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
}

func mark(format string, a ...any) { fmt.Printf("IAD-VM-MARK: "+format+"\n", a...) }

func loadModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), params, 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("loading %s %q: %w", path, params, err)
	}
	return nil
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o644) }

func guest() (string, error) {
	if err := bootsel.PrepareInit(); err != nil {
		return "", err
	}
	// 128 MiB NAND, 2 KiB pages, 128 KiB blocks; partitions (in blocks):
	// mtd0 slot A, mtd1 slot B, mtd2 UBI, mtd3 U-Boot environment.
	if err := loadModule("/lib/modules/nandsim.ko", "id_bytes=0x20,0xf1,0x80,0x15 badblocks=5,45,46 parts=40,40,400,4"); err != nil {
		return "", err
	}
	if err := loadModule("/lib/modules/ubi.ko", "mtd=2"); err != nil {
		return "", err
	}
	if b, err := os.ReadFile("/proc/mtd"); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			mark("proc/mtd %s", l)
		}
	}
	for _, v := range []string{"rootfs_a", "rootfs_b"} {
		if _, err := ubi.MakeVolume("/dev/ubi0", v, 8<<20); err != nil {
			return "", err
		}
	}
	if err := writeFile("/etc/fw_env.config", "/dev/mtd3 0x0 0x20000 0x20000 2\n/dev/mtd3 0x40000 0x20000 0x20000 2\n"); err != nil {
		return "", err
	}
	if err := writeFile("/etc/u-boot-initial-env", "bootcmd=run iad_boot\n"); err != nil {
		return "", err
	}
	state := "[state]\ntype = uboot\nfw_env_config = /etc/fw_env.config\ndefault_env = /etc/u-boot-initial-env\nlock_file = -\nboot_counter = bootloader\n"
	if err := writeFile("/etc/mtd.conf", "[slot A]\ntype = mtd\npath = /dev/mtd0\n[slot B]\ntype = mtd\npath = /dev/mtd1\n"+state); err != nil {
		return "", err
	}
	if err := writeFile("/etc/ubi.conf", "[slot A]\ntype = ubi\nubi = 0\nname = rootfs_a\n[slot B]\ntype = ubi\nubi = 0\nname = rootfs_b\n[state]\ntype = file\npath = /tmp/ubi-state.json\nboot_counter = bootloader\n"); err != nil {
		return "", err
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	var out []string
	for _, scn := range []string{"mtd", "ubi"} {
		s, err := scenario(scn, "/etc/"+scn+".conf", rng)
		if err != nil {
			return "", fmt.Errorf("%s: %w", scn, err)
		}
		out = append(out, s)
	}
	return strings.Join(out, " "), nil
}

type run struct {
	name     string
	conf     *setup.Config
	confPath string
	rng      *rand.Rand
	digests  map[string]bank.Digest
	n        int
}

func scenario(name, confPath string, rng *rand.Rand) (string, error) {
	c, err := setup.ParseFile(confPath)
	if err != nil {
		return "", err
	}
	r := &run{name: name, conf: c, confPath: confPath, rng: rng, digests: map[string]bank.Digest{}}
	if name == "mtd" {
		if err := r.reportFlash(); err != nil {
			return "", err
		}
	}

	// v1 into B, uncut: this also measures how long a write takes.
	killed, installed, full, err := r.install("v1", 0)
	if err != nil || killed || !installed {
		return "", fmt.Errorf("first install: killed %v installed %v: %w", killed, installed, err)
	}
	mark("%s: v1 installed into B; its bytes took %v to write", name, full.Round(time.Millisecond))
	if err := r.bootAndCheck(bank.SlotB, true); err != nil {
		return "", err
	}
	if err := r.commit(); err != nil {
		return "", err
	}

	cuts, corrupted := 0, 0
	for attempt := 1; cuts < minCuts; attempt++ {
		if attempt > 6*minCuts {
			return "", fmt.Errorf("only %d mid-write kills in %d attempts", cuts, attempt-1)
		}
		delay := time.Duration(float64(full) * (0.02 + 0.96*r.rng.Float64()))
		version := fmt.Sprintf("v2.%d", attempt)
		killed, installed, _, err := r.install(version, delay)
		if err != nil {
			return "", err
		}
		if !killed || installed {
			mark("%s: attempt %d: the write finished before the kill at %v; again", name, attempt, delay.Round(time.Millisecond))
			continue
		}
		st, err := r.state()
		if err != nil {
			return "", err
		}
		if st.Slots[bank.SlotA].State != bank.SlotWriting {
			mark("%s: attempt %d: killed at %v before the write began (slot A %s); again", name, attempt, delay.Round(time.Millisecond), st.Slots[bank.SlotA].State)
			continue
		}
		cuts++
		how := "slot A left writing"
		if name == "ubi" {
			if err := r.readable(bank.SlotA); errors.Is(err, ubi.ErrCorrupted) {
				corrupted++
				how += ", the kernel marks volume A corrupted"
			} else {
				how += fmt.Sprintf(", volume A reads (%v)", err)
			}
		}
		if err := r.bootAndCheck(bank.SlotB, false); err != nil {
			return "", fmt.Errorf("after cut %d: %w", cuts, err)
		}
		st, err = r.state()
		if err != nil {
			return "", err
		}
		if st.Slots[bank.SlotA].State != bank.SlotEmpty {
			return "", fmt.Errorf("after cut %d: partial slot A is %s, want empty", cuts, st.Slots[bank.SlotA].State)
		}
		mark("%s: cut %d: writer killed (SIGKILL) %v into the write; %s; the boot selector refused A and booted B (v1, verified)", name, cuts, delay.Round(time.Millisecond), how)
	}

	killed, installed, _, err = r.install("v3", 0)
	if err != nil || killed || !installed {
		return "", fmt.Errorf("final install: killed %v installed %v: %w", killed, installed, err)
	}
	if err := r.verify(bank.SlotA, "v3"); err != nil {
		return "", err
	}
	mark("%s: v3 installed into A, read back and verified", name)
	if err := r.bootAndCheck(bank.SlotA, true); err != nil {
		return "", err
	}
	mark("%s: the boot selector booted A (v3) on trial", name)
	s := fmt.Sprintf("%s_cuts=%d", name, cuts)
	if name == "ubi" {
		s += fmt.Sprintf(" ubi_corrupted=%d", corrupted)
	}
	return s, nil
}

// reportFlash prints the raw slots' geometry and bad blocks.
func (r *run) reportFlash() error {
	for _, p := range []string{"/dev/mtd0", "/dev/mtd1"} {
		d, err := mtd.Open(p)
		if err != nil {
			return err
		}
		s, err := mtd.NewSlot(d)
		if err != nil {
			d.Close()
			return err
		}
		info := s.Info()
		mark("mtd: %s %s %d bytes, erase %d, page %d: %d bad blocks, usable %d", p, info.Type, info.Size, info.EraseSize, info.WriteSize, s.BadBlocks(), s.Size())
		bad := s.BadBlocks()
		s.Close()
		if bad == 0 {
			return fmt.Errorf("%s: no bad block found; nandsim's badblocks= did not apply", p)
		}
	}
	return nil
}

func (r *run) payload(version string) (string, error) {
	r.n++
	data := make([]byte, 2<<20+r.rng.IntN(1<<20))
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(r.rng.Uint32())
	}
	rand.NewChaCha8(seed).Read(data)
	p := "/tmp/payload-" + version
	r.digests[version] = sha256.Sum256(data)
	return p, os.WriteFile(p, data, 0o644)
}

// install runs the writer; with delay > 0 it kills it that long after
// the write began. took is the time from the start of the write until
// its last byte was written (before read-back).
func (r *run) install(version string, delay time.Duration) (killed, installed bool, took time.Duration, err error) {
	p, err := r.payload(version)
	if err != nil {
		return false, false, 0, err
	}
	defer os.Remove(p)
	cmd := exec.Command("/proc/self/exe", "write", r.confPath, p, version)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return false, false, 0, err
	}
	if err := cmd.Start(); err != nil {
		return false, false, 0, err
	}
	var began time.Time
	sc := bufio.NewScanner(out)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var timer <-chan time.Time
	for line := range lines {
		switch line {
		case "begin":
			began = time.Now()
			if delay > 0 {
				timer = time.After(delay)
				go func() {
					<-timer
					cmd.Process.Signal(syscall.SIGKILL)
				}()
			}
		case "written":
			took = time.Since(began)
		case "installed":
			installed = true
		}
	}
	werr := cmd.Wait()
	if took == 0 {
		took = time.Since(began)
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, installed, took, nil
		}
	}
	if werr != nil {
		return false, installed, took, fmt.Errorf("writer %s: %w", version, werr)
	}
	return false, installed, took, nil
}

// write is the writer process: the agent of the running system (the boot
// stage counted) installs and arms one payload.
func write(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: write CONFIG PAYLOAD VERSION")
	}
	ctx := context.Background()
	c, err := setup.ParseFile(args[0])
	if err != nil {
		return err
	}
	o, err := c.Open()
	if err != nil {
		return err
	}
	defer o.Close()
	b, err := bank.New(ctx, o.Options(c))
	if err != nil {
		return err
	}
	if _, err := b.Boot(ctx); err != nil {
		return err
	}
	f, err := os.Open(args[1])
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	f.Seek(0, io.SeekStart)
	meta := bank.SlotInfo{Version: args[2], Size: n}
	h.Sum(meta.Digest[:0])
	fmt.Println("begin")
	s, err := b.Install(ctx, meta, f, func(n int64) {
		if n == meta.Size {
			fmt.Println("written") // read-back and state saves follow
		}
	})
	if err != nil {
		return err
	}
	if err := b.Arm(ctx, s); err != nil {
		return err
	}
	fmt.Println("installed")
	return nil
}

func (r *run) state() (bank.State, error) {
	o, err := r.conf.Open()
	if err != nil {
		return bank.State{}, err
	}
	defer o.Close()
	return o.Store.Load(context.Background())
}

// readable reads the first bytes of a slot.
func (r *run) readable(s bank.Slot) error {
	o, err := r.conf.Open()
	if err != nil {
		return err
	}
	defer o.Close()
	_, err = o.Devices[s].ReadAt(make([]byte, 4096), 0)
	return err
}

// verify hashes what the state says slot s holds and compares it with
// the payload of version.
func (r *run) verify(s bank.Slot, version string) error {
	o, err := r.conf.Open()
	if err != nil {
		return err
	}
	defer o.Close()
	st, err := o.Store.Load(context.Background())
	if err != nil {
		return err
	}
	info := st.Slots[s]
	if info.State != bank.SlotValid || info.Version != version {
		return fmt.Errorf("slot %v is %s %q, want valid %q", s, info.State, info.Version, version)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < info.Size; {
		n := int(min(int64(len(buf)), info.Size-off))
		if _, err := o.Devices[s].ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("reading slot %v: %w", s, err)
		}
		h.Write(buf[:n])
		off += int64(n)
	}
	var got bank.Digest
	h.Sum(got[:0])
	if got != r.digests[version] {
		return fmt.Errorf("slot %v hashes to %v, want %v (%s)", s, got, r.digests[version], version)
	}
	return nil
}

// bootAndCheck is a restart: the boot selector decides (spending a try
// if one is armed), and the chosen bank must be want and verify.
func (r *run) bootAndCheck(want bank.Slot, trial bool) error {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ch := bootsel.Select(context.Background(), r.conf, log)
	if ch.Fallback {
		return fmt.Errorf("the boot selector fell back: %s", ch.Reason)
	}
	if got := ch.Order[0]; got != want || ch.Result.Trial != trial {
		return fmt.Errorf("the boot selector chose %v (trial %v), want %v (trial %v)", got, ch.Result.Trial, want, trial)
	}
	st, err := r.state()
	if err != nil {
		return err
	}
	return r.verify(want, st.Slots[want].Version)
}

// commit is the started software's health check passing.
func (r *run) commit() error {
	ctx := context.Background()
	o, err := r.conf.Open()
	if err != nil {
		return err
	}
	defer o.Close()
	b, err := bank.New(ctx, o.Options(r.conf))
	if err != nil {
		return err
	}
	if _, err := b.Boot(ctx); err != nil {
		return err
	}
	ok, err := b.Commit(ctx)
	if err == nil && !ok {
		err = errors.New("nothing to commit")
	}
	return err
}
