// Package bootsel is the boot selector that iad-boot runs at the init
// stage (PID 1 of an initramfs, or exec'd by its /init) on systems whose
// bootloader cannot count tries: it reads the boot state the bank
// configuration names, spends one try of an armed trial, verifies the
// chosen bank (bank.Banks.Boot), saves the decision, and starts the
// software of that bank: it mounts the bank's root device and
// switch_roots into its init, or execs a program.
//
// The package must never return without having tried every bank that
// could start: if the state cannot be read it starts the configured
// fallback bank (without writing anything); if the chosen bank fails to
// start it tries the other valid bank, then the fallback.
package bootsel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/setup"
)

// ErrNothingStarted is returned when no bank could be started.
var ErrNothingStarted = errors.New("bootsel: no bank could be started")

// Starter hands the machine over to a bank's software. On success Start
// does not return (it execs); an error means this bank cannot start.
type Starter interface {
	Start(ctx context.Context, slot bank.Slot, t setup.Target) error
}

// Options configure Run.
type Options struct {
	Config  *setup.Config
	Starter Starter
	// Logger receives the decision; nil discards it.
	Logger *slog.Logger
}

// Choice is the decision Select made.
type Choice struct {
	// Order lists the banks to try, best first.
	Order []bank.Slot
	// Result is the bank decision, when the state could be read.
	Result bank.BootResult
	// Fallback is true when the state could not be used and the
	// configured fallback bank was chosen without one.
	Fallback bool
	Reason   string
}

// Select applies the boot rules to the configured state and returns the
// banks to try in order. It always returns a non-empty order.
func Select(ctx context.Context, c *setup.Config, log *slog.Logger) Choice {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fb := c.Boot.Fallback
	if fb == 0 {
		fb = bank.SlotA
	}
	fallback := func(reason string) Choice {
		log.Error("iad-boot: starting the fallback bank", "bank", fb, "reason", reason)
		return Choice{Order: []bank.Slot{fb, fb.Other()}, Fallback: true, Reason: reason}
	}
	if !c.CountedByBootloader() {
		log.Warn("iad-boot: [state] boot_counter is agent: the agent will spend a second try per boot; set boot_counter = bootloader")
	}
	o, err := c.Open()
	if err != nil {
		return fallback(fmt.Sprintf("opening the banks: %v", err))
	}
	defer o.Close()
	opts := o.Options(c)
	opts.BootCounted = false // iad-boot is the one that counts
	opts.Logger = log
	b, err := bank.New(ctx, opts)
	if err != nil {
		return fallback(fmt.Sprintf("reading the boot state: %v", err))
	}
	res, err := b.Boot(ctx)
	if err != nil {
		return fallback(fmt.Sprintf("boot decision: %v", err))
	}
	order := []bank.Slot{res.Slot}
	// If the chosen bank cannot start, the other one is next, but only
	// if it holds valid software.
	if other := res.Slot.Other(); b.Snapshot().Slots[other].State == bank.SlotValid {
		order = append(order, other)
	}
	if !slices.Contains(order, fb) {
		order = append(order, fb)
	}
	log.Info("iad-boot: chose bank", "bank", res.Slot, "trial", res.Trial, "reverted", res.Reverted, "failed_bank", res.FailedSlot, "reason", res.Reason)
	return Choice{Order: order, Result: res}
}

// Run selects a bank and starts it, trying the next bank of the order
// when one fails to start. It returns only if none could start.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ch := Select(ctx, opts.Config, log)
	var errs []error
	for _, s := range ch.Order {
		t, ok := opts.Config.Boot.Targets[s]
		if !ok {
			errs = append(errs, fmt.Errorf("bank %v: no [boot] target configured", s))
			continue
		}
		log.Info("iad-boot: starting", "bank", s, "root", t.Root, "init", t.Init, "exec", t.Exec)
		err := opts.Starter.Start(ctx, s, t)
		errs = append(errs, fmt.Errorf("bank %v: %w", s, err))
		log.Error("iad-boot: bank did not start", "bank", s, "err", err)
	}
	return fmt.Errorf("%w: %w", ErrNothingStarted, errors.Join(errs...))
}
