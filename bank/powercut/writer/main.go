// Command writer is the power-cut test helper: one "start" of a device
// whose storage a bank configuration file describes. It boots (spending a
// try, like iad-boot), then performs one action (install a payload and
// arm it, commit, or nothing), and prints the outcome as one JSON line.
//
// The -cut-* flags make it kill itself with SIGKILL once a given number
// of bytes has been written to the slots, to the U-Boot environment
// during the action, or to the environment during the boot decision: the
// write that crosses the limit is cut at exactly that byte. They exist
// for the power-cut test only.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/setup"
	"github.com/iadsafe/iad-agent/bank/ubootenv"
)

// Result is what one start printed.
type Result struct {
	Slot      string `json:"slot"`
	Trial     bool   `json:"trial"`
	Reverted  bool   `json:"reverted"`
	Installed string `json:"installed,omitempty"`
	Committed bool   `json:"committed,omitempty"`
	// Refused is why an install was refused (a trial still running on
	// the other bank); that is an outcome, not a failure.
	Refused string `json:"refused,omitempty"`
}

// budget kills the process when a byte count is exceeded.
type budget struct {
	mu     sync.Mutex
	left   int64 // < 0: unlimited
	active bool
}

// take returns how many of n bytes may be written; if fewer than n, the
// caller writes them and then calls die.
func (b *budget) take(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active || b.left < 0 {
		return n
	}
	if int64(n) <= b.left {
		b.left -= int64(n)
		return n
	}
	m := int(b.left)
	b.left = 0
	return m
}

func die() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

type cutWriter interface {
	WriteAt(p []byte, off int64) (int, error)
}

func cutWrite(w cutWriter, b *budget, p []byte, off int64) (int, error) {
	m := b.take(len(p))
	if m < len(p) {
		if m > 0 {
			w.WriteAt(p[:m], off)
		}
		die()
	}
	return w.WriteAt(p, off)
}

// cutDevice is a slot that dies at the budget's end.
type cutDevice struct {
	bank.Device
	b *budget
}

func (d cutDevice) WriteAt(p []byte, off int64) (int, error) { return cutWrite(d.Device, d.b, p, off) }

func (d cutDevice) BeginUpdate(size int64) error {
	if u, ok := d.Device.(bank.Updater); ok {
		return u.BeginUpdate(size)
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		config   = flag.String("config", "", "bank configuration file (state type uboot)")
		action   = flag.String("action", "none", "none, install or commit")
		payload  = flag.String("payload", "", "install: the payload file")
		version  = flag.String("version", "", "install: the payload's version")
		cutSlot  = flag.Int64("cut-slot", -1, "die after this many bytes written to the slots")
		cutState = flag.Int64("cut-state", -1, "die after this many environment bytes written by the action")
		cutBoot  = flag.Int64("cut-boot", -1, "die after this many environment bytes written by the boot decision")
	)
	flag.Parse()
	ctx := context.Background()
	c, err := setup.ParseFile(*config)
	if err != nil {
		return err
	}
	if c.State.Type != "uboot" {
		return fmt.Errorf("%s: the writer needs [state] type = uboot", *config)
	}
	slotBudget := &budget{left: *cutSlot, active: true}
	bootBudget := &budget{left: *cutBoot, active: true}
	actBudget := &budget{left: *cutState, active: true}

	// The slots come from the configuration; the state is opened here so
	// that its copies can be cut.
	stateless := *c
	stateless.State = setup.StateConfig{Type: "file", Path: os.DevNull}
	o, err := stateless.Open()
	if err != nil {
		return err
	}
	defer o.Close()
	devs := map[bank.Slot]bank.Device{}
	for s, d := range o.Devices {
		devs[s] = cutDevice{Device: d, b: slotBudget}
	}
	cf, err := os.Open(c.State.FWEnvConfig)
	if err != nil {
		return err
	}
	locs, err := ubootenv.ParseConfig(cf)
	cf.Close()
	if err != nil {
		return err
	}
	// Environment writes count against the boot budget until Boot has
	// returned, then against the action's.
	envBudget := &switchBudget{cur: bootBudget}
	var copies []ubootenv.Copy
	for _, l := range locs {
		f, err := os.OpenFile(l.Path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		copies = append(copies, ubootenv.Copy{Name: l.Path, Dev: envFile{f, envBudget}, Offset: l.Offset, Size: l.Size})
	}
	env, err := ubootenv.New(ubootenv.Options{Copies: copies, LockFile: c.State.LockFile})
	if err != nil {
		return err
	}
	var defaults ubootenv.Vars
	if c.State.DefaultEnv != "" {
		f, err := os.Open(c.State.DefaultEnv)
		if err != nil {
			return err
		}
		defaults, err = ubootenv.ReadDefaults(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	store, err := ubootenv.NewStore(env, ubootenv.StoreOptions{Defaults: defaults})
	if err != nil {
		return err
	}
	b, err := bank.New(ctx, bank.Options{Devices: devs, Store: store, Factory: bank.SlotInfo{Version: "factory"}, DefaultBootLimit: c.State.BootLimit})
	if err != nil {
		return err
	}
	res, err := b.Boot(ctx)
	if err != nil {
		return err
	}
	envBudget.set(actBudget)
	out := Result{Slot: res.Slot.String(), Trial: res.Trial, Reverted: res.Reverted}
	switch *action {
	case "none":
	case "install":
		f, err := os.Open(*payload)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		meta := bank.SlotInfo{Version: *version, Size: n}
		h.Sum(meta.Digest[:0])
		s, err := b.Install(ctx, meta, f, nil)
		if errors.Is(err, bank.ErrSlotBusy) {
			out.Refused = err.Error()
			break
		}
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}
		if err := b.Arm(ctx, s); err != nil {
			return fmt.Errorf("arm: %w", err)
		}
		out.Installed = s.String()
	case "commit":
		if out.Committed, err = b.Commit(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	default:
		return fmt.Errorf("unknown action %q", *action)
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// switchBudget lets the environment copies change budgets after Boot.
type switchBudget struct {
	mu  sync.Mutex
	cur *budget
}

func (s *switchBudget) set(b *budget) {
	s.mu.Lock()
	s.cur = b
	s.mu.Unlock()
}

func (s *switchBudget) get() *budget {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

type envFile struct {
	f *os.File
	s *switchBudget
}

func (e envFile) ReadAt(p []byte, off int64) (int, error)  { return e.f.ReadAt(p, off) }
func (e envFile) WriteAt(p []byte, off int64) (int, error) { return cutWrite(e.f, e.s.get(), p, off) }
func (e envFile) Sync() error                              { return e.f.Sync() }
