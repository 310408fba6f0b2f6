package powercut_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/setup"
)

var (
	seedFlag = flag.Uint64("powercut.seed", 0, "seed of TestPowerCuts; 0 picks one")
	minCuts  = flag.Int("powercut.cuts", 200, "power cuts TestPowerCuts must survive")
)

func TestMain(m *testing.M) { os.Exit(itest.Main(m)) }

const (
	envCopy  = 0x4000
	slotSize = 4 << 20
)

// backends are the slot storages the cuts rotate through; the boot state
// is always a redundant U-Boot environment.
var backends = []struct {
	name string
	slot string // [slot X] body, %s is the slot letter
}{
	{"file", "type = file\npath = slot-%s.img\nsize = 4MiB\n"},
	{"block", "type = block\npath = disk.img\noffset = %s\nsize = 4MiB\n"},
	{"nor", "type = mtd-sim\npath = nor-%s.flash\nflash = nor\nsize = 4MiB\nerase_size = 64KiB\n"},
	{"nand", "type = mtd-sim\npath = nand-%s.flash\nflash = nand\nsize = 5MiB\nerase_size = 128KiB\npage_size = 2KiB\nbad_blocks = 3, 17, 30\n"},
}

type rig struct {
	t        *testing.T
	dir      string
	conf     string
	fwcfg    string
	writer   string
	printenv string
	payloads map[string]bank.Digest // version -> digest
	// counters
	cuts     map[string]int
	restarts int
	verified int
}

func newRig(t *testing.T, backend int, writer, printenv string) *rig {
	t.Helper()
	dir := fastDir(t)
	r := &rig{t: t, dir: dir, writer: writer, printenv: printenv, payloads: map[string]bank.Digest{}, cuts: map[string]int{}}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("env0", bytes.Repeat([]byte{0xFF}, envCopy))
	write("env1", bytes.Repeat([]byte{0xFF}, envCopy))
	r.fwcfg = filepath.Join(dir, "fw_env.config")
	write("fw_env.config", fmt.Appendf(nil, "%s 0x0 0x%x\n%s 0x0 0x%x\n", filepath.Join(dir, "env0"), envCopy, filepath.Join(dir, "env1"), envCopy))
	write("u-boot-initial-env", []byte("bootcmd=run iad_boot\nbootdelay=0\n"))
	b := backends[backend]
	slotA, slotB := fmt.Sprintf(b.slot, "A"), fmt.Sprintf(b.slot, "B")
	if b.name == "block" {
		write("disk.img", make([]byte, 2*slotSize+1<<20))
		slotA, slotB = fmt.Sprintf(b.slot, "512KiB"), fmt.Sprintf(b.slot, "0x480000")
	}
	r.conf = filepath.Join(dir, "bank.conf")
	write("bank.conf", []byte("[slot A]\n"+slotA+"[slot B]\n"+slotB+
		"[state]\ntype = uboot\nfw_env_config = fw_env.config\ndefault_env = u-boot-initial-env\nlock_file = -\nboot_counter = agent\n"))
	return r
}

// fastDir is a temporary directory in memory when the machine has one:
// the cuts are SIGKILLs, not power losses, so the files need no disk, and
// fsync on a disk shared with other busy tests would set the pace.
func fastDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "iad-powercut-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

type result struct {
	Slot      string `json:"slot"`
	Trial     bool   `json:"trial"`
	Reverted  bool   `json:"reverted"`
	Installed string `json:"installed"`
	Committed bool   `json:"committed"`
}

// start runs the writer; killed reports whether it died of SIGKILL.
func (r *rig) start(args ...string) (res result, killed bool) {
	r.t.Helper()
	cmd := exec.Command(r.writer, append([]string{"-config", r.conf}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return result{}, true
		}
	}
	if err != nil {
		r.t.Fatalf("writer %q: %v\n%s", args, err, errb.String())
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		r.t.Fatalf("writer %q output %q: %v", args, out.String(), err)
	}
	return res, false
}

// restart boots once more and checks, independently of the writer, that
// the booted bank hashes to the image installed there and that
// fw_printenv reads the environment.
func (r *rig) restart(what string) result {
	r.t.Helper()
	res, killed := r.start()
	if killed {
		r.t.Fatalf("%s: the restart was killed without a cut", what)
	}
	r.restarts++
	r.checkPrintenv(what, res)

	c, err := setup.ParseFile(r.conf)
	if err != nil {
		r.t.Fatal(err)
	}
	c.State = setup.StateConfig{Type: "file", Path: os.DevNull}
	o, err := c.Open()
	if err != nil {
		r.t.Fatal(err)
	}
	defer o.Close()
	var s bank.Slot
	if err := s.UnmarshalText([]byte(res.Slot)); err != nil || s == 0 {
		r.t.Fatalf("%s: booted slot %q", what, res.Slot)
	}
	info := r.slotInfo(what, s)
	if info.State != bank.SlotValid {
		r.t.Fatalf("%s: booted slot %v is %s", what, s, info.State)
	}
	if info.Factory {
		return res
	}
	want, ok := r.payloads[info.Version]
	if !ok || want != info.Digest {
		r.t.Fatalf("%s: slot %v claims version %q digest %v, which was never installed", what, s, info.Version, info.Digest)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < info.Size; {
		n := int(min(int64(len(buf)), info.Size-off))
		if _, err := o.Devices[s].ReadAt(buf[:n], off); err != nil {
			r.t.Fatalf("%s: reading slot %v: %v", what, s, err)
		}
		h.Write(buf[:n])
		off += int64(n)
	}
	var got bank.Digest
	h.Sum(got[:0])
	if got != want {
		r.t.Fatalf("%s: booted slot %v holds digest %v, want %v (version %s)", what, s, got, want, info.Version)
	}
	r.verified++
	return res
}

// checkPrintenv runs fw_printenv on the environment: it must read a
// valid copy, and boot_bank must be the bank the next boot takes.
func (r *rig) checkPrintenv(what string, res result) {
	r.t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(r.printenv, "-c", r.fwcfg)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || strings.Contains(errb.String(), "Cannot read") {
		r.t.Fatalf("%s: fw_printenv: %v %s", what, err, errb.String())
	}
	vars := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	if vars["bootcmd"] != "run iad_boot" {
		r.t.Fatalf("%s: fw_printenv lost the board's bootcmd: %v", what, vars)
	}
	if vars["upgrade_available"] == "1" {
		if vars["boot_bank"] != vars["iad_trial"] {
			r.t.Fatalf("%s: trial armed but boot_bank %q, iad_trial %q", what, vars["boot_bank"], vars["iad_trial"])
		}
	} else if vars["boot_bank"] != vars["iad_active"] || vars["bootcount"] != "0" {
		r.t.Fatalf("%s: no trial, but boot_bank %q iad_active %q bootcount %q", what, vars["boot_bank"], vars["iad_active"], vars["bootcount"])
	}
	if res.Trial && vars["boot_bank"] != res.Slot {
		r.t.Fatalf("%s: booted trial %s but boot_bank is %q", what, res.Slot, vars["boot_bank"])
	}
}

func (r *rig) slotInfo(what string, s bank.Slot) bank.SlotInfo {
	r.t.Helper()
	out, err := exec.Command(r.printenv, "-c", r.fwcfg, "-n", map[bank.Slot]string{bank.SlotA: "iad_slot_a", bank.SlotB: "iad_slot_b"}[s]).Output()
	if err != nil {
		r.t.Fatalf("%s: fw_printenv slot %v: %v", what, s, err)
	}
	var info bank.SlotInfo
	if err := json.Unmarshal(bytes.TrimSpace(out), &info); err != nil {
		r.t.Fatalf("%s: slot %v metadata %q: %v", what, s, out, err)
	}
	return info
}

// seq returns iad_seq as fw_printenv reads it.
func (r *rig) seq(what string) uint64 {
	r.t.Helper()
	out, err := exec.Command(r.printenv, "-c", r.fwcfg, "-n", "iad_seq").CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Cannot read")) {
		r.t.Fatalf("%s: fw_printenv iad_seq: %v %s", what, err, out)
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(out)), 10, 64)
	if err != nil {
		r.t.Fatalf("%s: iad_seq %q", what, out)
	}
	return n
}

func (r *rig) payload(rng *rand.Rand, version string) string {
	r.t.Helper()
	data := make([]byte, 256<<10+rng.IntN(3<<20))
	for i := 0; i < len(data); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(data); j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	p := filepath.Join(r.dir, "payload.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.payloads[version] = sha256.Sum256(data)
	return p
}

// TestPowerCuts cuts the writer at uniformly random bytes of slot writes,
// of the environment writes of an install, of a commit, and of a boot
// decision, rotating through file, block, NOR and NAND slots, until at
// least -powercut.cuts cuts were survived.
func TestPowerCuts(t *testing.T) {
	printenv := itest.RequireTool(t, "fw_printenv")
	writer := itest.BuildCommand(t, "./bank/powercut/writer")
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -powercut.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x1ad))

	total := map[string]int{}
	var restarts, verified, cuts, n int
	// Run until enough cuts, with at least 10 in each kind of write.
	enough := func() bool {
		for _, k := range []string{"slot", "state", "commit", "boot"} {
			if total[k] < 10 {
				return false
			}
		}
		return cuts >= *minCuts
	}
	for round := 0; !enough(); round++ {
		if round >= 4*len(backends) {
			t.Fatalf("only %d cuts after %d rounds", cuts, round)
		}
		bi := round % len(backends)
		r := newRig(t, bi, writer, printenv)
		r.restart("first start")
		for range 20 {
			n++
			version := fmt.Sprintf("v%d", n)
			what := ""
			var killed bool
			seq0 := r.seq("before the cut")
			switch phase := rng.IntN(4); phase {
			case 0: // a slot write
				p := r.payload(rng, version)
				st, _ := os.Stat(p)
				cut := rng.Int64N(st.Size())
				what = fmt.Sprintf("%s: slot write cut at byte %d of %d", backends[bi].name, cut, st.Size())
				_, killed = r.start("-action", "install", "-payload", p, "-version", version, "-cut-slot", fmt.Sprint(cut))
				if killed {
					r.cuts["slot"]++
				}
			case 1: // the environment writes of an install (writing, valid, arm)
				p := r.payload(rng, version)
				cut := rng.Int64N(3 * envCopy)
				what = fmt.Sprintf("%s: boot-state write cut at byte %d of %d", backends[bi].name, cut, 3*envCopy)
				_, killed = r.start("-action", "install", "-payload", p, "-version", version, "-cut-state", fmt.Sprint(cut))
				if killed {
					r.cuts["state"]++
				}
			case 2: // the commit's environment write
				cut := rng.Int64N(envCopy)
				what = fmt.Sprintf("%s: commit cut at byte %d of %d", backends[bi].name, cut, envCopy)
				var res result
				res, killed = r.start("-action", "commit", "-cut-state", fmt.Sprint(cut))
				if killed {
					r.cuts["commit"]++
				} else if !res.Trial {
					// Nothing to commit: arm a trial for the next rounds.
					p := r.payload(rng, version)
					r.start("-action", "install", "-payload", p, "-version", version)
				}
			case 3: // the boot decision's environment write
				cut := rng.Int64N(envCopy)
				what = fmt.Sprintf("%s: boot decision cut at byte %d of %d", backends[bi].name, cut, envCopy)
				_, killed = r.start("-cut-boot", fmt.Sprint(cut))
				if killed {
					r.cuts["boot"]++
				}
			}
			if killed {
				cuts++
				// A cut write may lose the save in progress, never one
				// that completed: the environment is at least as new as
				// before the start.
				if seq := r.seq(what); seq < seq0 {
					t.Fatalf("%s: the environment went back from save %d to %d", what, seq0, seq)
				}
			}
			r.restart(what)
		}
		for k, v := range r.cuts {
			total[k] += v
		}
		restarts += r.restarts
		verified += r.verified
	}
	t.Logf("seed %d: %d power cuts survived (slot writes %d, install boot-state writes %d, commits %d, boot decisions %d); %d restarts, %d booted a hashed image, all read by fw_printenv",
		seed, cuts, total["slot"], total["state"], total["commit"], total["boot"], restarts, verified)
}
