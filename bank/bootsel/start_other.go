//go:build !linux

package bootsel

import (
	"context"
	"errors"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/setup"
)

// BankEnv is the environment variable that tells the started software
// which bank it runs from ("A" or "B").
const BankEnv = "IAD_BOOT_BANK"

var errNotLinux = errors.New("bootsel: starting a bank needs Linux")

// System starts banks on the running Linux system.
type System struct{ NewRoot string }

// PrepareInit needs Linux.
func PrepareInit() error { return errNotLinux }

// Start needs Linux.
func (System) Start(context.Context, bank.Slot, setup.Target) error { return errNotLinux }
