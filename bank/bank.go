// Package bank is the A/B dual bank: two slots that each hold one copy of
// the device software, and a persisted boot state that says which slot is
// committed, which one is on trial and how many trial boots remain.
//
// An upgrade always goes into the slot the running software did not boot
// from, in the order that keeps the device bootable at every instant: mark
// the target not bootable and persist that, write, fsync, read back and
// re-hash, mark it valid, and only then (a separate call) arm it for a
// limited number of trial boots. The running software commits the trial
// once it has proved healthy; a trial that runs out of boots, or a bank
// whose content no longer matches its digest, is abandoned at the next
// Boot in favour of the other bank.
//
// The package must never write the slot the running software booted from,
// never arm or boot a slot whose content has not been verified, and never
// leave the device without one verified bootable bank. Storage and state
// persistence sit behind the small Device and StateStore interfaces so that
// block-device, MTD/UBI and U-Boot-environment backends can replace the
// file-backed ones.
package bank

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Errors returned by the package; match them with errors.Is.
var (
	ErrNoState        = errors.New("bank: no saved state")
	ErrCorruptState   = errors.New("bank: corrupt state")
	ErrNoSpace        = errors.New("bank: payload larger than the bank")
	ErrDeviceSize     = errors.New("bank: existing device larger than the configured size")
	ErrSlotBusy       = errors.New("bank: slot in use by the running software")
	ErrBusy           = errors.New("bank: another install is running")
	ErrSizeMismatch   = errors.New("bank: payload size differs from the declared size")
	ErrVerify         = errors.New("bank: verification failed")
	ErrWrite          = errors.New("bank: write failed")
	ErrNotValid       = errors.New("bank: slot does not hold valid software")
	ErrNoFallback     = errors.New("bank: no valid software to fall back to")
	ErrNoBootableBank = errors.New("bank: no bootable bank")
	ErrBadLimit       = errors.New("bank: boot limit out of range 1..10")
	ErrNotBooted      = errors.New("bank: Boot has not run")
	ErrBooted         = errors.New("bank: Boot has already run")
)

// stateVersion is the on-disk format of State. Bump it, and teach
// FileStore.Load to convert, whenever the meaning of a field changes.
const stateVersion = 1

// Boot limits accepted by SetBootLimit, as in the MIB's iadSwBootLimit.
const (
	MinBootLimit     = 1
	MaxBootLimit     = 10
	DefaultBootLimit = 3
)

// Slot names one of the two banks. The numbers are the MIB's IadBank values
// and must not change.
type Slot int

const (
	SlotA Slot = 1
	SlotB Slot = 2
)

// allSlots lists both slots in a fixed order.
var allSlots = [2]Slot{SlotA, SlotB}

// Valid reports whether s is SlotA or SlotB.
func (s Slot) Valid() bool { return s == SlotA || s == SlotB }

// Other returns the other slot, or 0 if s is not valid.
func (s Slot) Other() Slot {
	switch s {
	case SlotA:
		return SlotB
	case SlotB:
		return SlotA
	}
	return 0
}

func (s Slot) String() string {
	switch s {
	case SlotA:
		return "A"
	case SlotB:
		return "B"
	case 0:
		return "none"
	}
	return fmt.Sprintf("Slot(%d)", int(s))
}

// MarshalText writes "A", "B", or "" for no slot, so that the state file
// reads naturally and map keys stay stable.
func (s Slot) MarshalText() ([]byte, error) {
	switch s {
	case 0:
		return []byte{}, nil
	case SlotA, SlotB:
		return []byte(s.String()), nil
	}
	return nil, fmt.Errorf("bank: invalid slot %d", int(s))
}

// UnmarshalText is the inverse of MarshalText.
func (s *Slot) UnmarshalText(b []byte) error {
	switch string(b) {
	case "":
		*s = 0
	case "A":
		*s = SlotA
	case "B":
		*s = SlotB
	default:
		return fmt.Errorf("bank: invalid slot %q", b)
	}
	return nil
}

// SlotState is the persisted condition of a slot's content. Whether a
// valid slot is on trial or active is derived from State (see
// Banks.Status), not stored here.
type SlotState string

const (
	SlotEmpty   SlotState = "empty"
	SlotWriting SlotState = "writing"
	SlotValid   SlotState = "valid"
	SlotBad     SlotState = "bad"
)

func (s SlotState) known() bool {
	switch s {
	case SlotEmpty, SlotWriting, SlotValid, SlotBad:
		return true
	}
	return false
}

// Digest is a SHA-256 digest; it is written as hex in JSON.
type Digest [32]byte

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText writes the digest as 64 lowercase hex digits.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText accepts exactly 64 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 2*len(d) {
		return fmt.Errorf("bank: digest has %d hex digits, want %d", len(b), 2*len(d))
	}
	_, err := hex.Decode(d[:], b)
	if err != nil {
		return fmt.Errorf("bank: digest: %w", err)
	}
	return nil
}

// SlotInfo describes what a slot holds.
type SlotInfo struct {
	State        SlotState `json:"state"`
	Version      string    `json:"version"`
	Hardware     string    `json:"hardware"`
	ConfigFormat uint32    `json:"config_format"`
	// Size is the number of payload bytes from offset 0 that Digest covers.
	Size   int64  `json:"size"`
	Digest Digest `json:"digest"`
	// Factory marks the software the device shipped with: its extent is
	// unknown, so it has Size 0 and is never re-hashed.
	Factory bool `json:"factory"`
}

// State is the persisted boot state.
type State struct {
	Version int `json:"version"`
	// Active is the committed bank: the one booted when no trial is armed.
	Active Slot `json:"active"`
	// Trial is the bank armed for (or running) a trial boot; 0 if none.
	Trial     Slot `json:"trial"`
	TriesLeft int  `json:"tries_left"`
	// Armed is the number of tries the trial was armed with; a trial
	// with TriesLeft < Armed has been booted at least once. 0 without a
	// trial (and in states written before the field existed).
	Armed     int               `json:"armed,omitempty"`
	BootLimit int               `json:"boot_limit"`
	Slots     map[Slot]SlotInfo `json:"slots"`
	// Seq increases with every save, so that two copies can be ordered.
	Seq uint64 `json:"seq"`
	// Abandoned is the bank the last boot decision gave up on (0 if
	// none), and AbandonReason says why. A boot stage that counts tries
	// (iad-boot, or the store's reading of a bootloader's revert) records
	// it so that the software it starts can report the revert once.
	Abandoned     Slot   `json:"abandoned,omitempty"`
	AbandonReason string `json:"abandon_reason,omitempty"`
}

// Clone returns a deep copy of s.
func (s State) Clone() State {
	c := s
	c.Slots = make(map[Slot]SlotInfo, len(s.Slots))
	for k, v := range s.Slots {
		c.Slots[k] = v
	}
	return c
}

// validate checks the invariants any stored state must satisfy; a state
// that fails them is never acted upon.
func (s State) validate() error {
	if s.Version != stateVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrCorruptState, s.Version, stateVersion)
	}
	if !s.Active.Valid() {
		return fmt.Errorf("%w: active slot %v", ErrCorruptState, s.Active)
	}
	if s.Trial != 0 && !s.Trial.Valid() {
		return fmt.Errorf("%w: trial slot %v", ErrCorruptState, s.Trial)
	}
	if s.Abandoned != 0 && !s.Abandoned.Valid() {
		return fmt.Errorf("%w: abandoned slot %v", ErrCorruptState, s.Abandoned)
	}
	if s.Armed < 0 || s.Armed > MaxBootLimit {
		return fmt.Errorf("%w: armed tries %d", ErrCorruptState, s.Armed)
	}
	if s.TriesLeft < 0 || s.TriesLeft > MaxBootLimit {
		return fmt.Errorf("%w: tries left %d", ErrCorruptState, s.TriesLeft)
	}
	if s.BootLimit < MinBootLimit || s.BootLimit > MaxBootLimit {
		return fmt.Errorf("%w: boot limit %d", ErrCorruptState, s.BootLimit)
	}
	if len(s.Slots) != len(allSlots) {
		return fmt.Errorf("%w: %d slots, want %d", ErrCorruptState, len(s.Slots), len(allSlots))
	}
	for _, sl := range allSlots {
		info, ok := s.Slots[sl]
		if !ok {
			return fmt.Errorf("%w: slot %v missing", ErrCorruptState, sl)
		}
		if !info.State.known() {
			return fmt.Errorf("%w: slot %v state %q", ErrCorruptState, sl, info.State)
		}
		if info.Size < 0 {
			return fmt.Errorf("%w: slot %v size %d", ErrCorruptState, sl, info.Size)
		}
	}
	return nil
}

// Status is a slot's state as the MIB's iadBankState reports it. The
// numbers are the MIB's and must not change.
type Status int

const (
	StatusEmpty   Status = 1
	StatusWriting Status = 2
	StatusValid   Status = 3
	StatusTrial   Status = 4
	StatusActive  Status = 5
	StatusBad     Status = 6
)

func (s Status) String() string {
	switch s {
	case StatusEmpty:
		return "empty"
	case StatusWriting:
		return "writing"
	case StatusValid:
		return "valid"
	case StatusTrial:
		return "trial"
	case StatusActive:
		return "active"
	case StatusBad:
		return "bad"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// BootResult says which bank this run of the software is and why.
type BootResult struct {
	Slot Slot
	// Trial is true when Slot is an armed bank booted on trial.
	Trial bool
	// Reverted is true when the bank that should have booted was abandoned;
	// FailedSlot names it and Reason says why.
	Reverted   bool
	FailedSlot Slot
	Reason     string
}
