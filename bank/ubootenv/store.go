package ubootenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/iadsafe/iad-agent/bank"
)

// Names are the variables U-Boot's boot-count scheme reads.
type Names struct {
	BootBank         string // default "boot_bank": the bank to boot
	UpgradeAvailable string // default "upgrade_available": 1 while a trial runs
	BootCount        string // default "bootcount": boots spent on the trial
	BootLimit        string // default "bootlimit": boots the trial may take
}

func (n *Names) setDefaults() {
	if n.BootBank == "" {
		n.BootBank = "boot_bank"
	}
	if n.UpgradeAvailable == "" {
		n.UpgradeAvailable = "upgrade_available"
	}
	if n.BootCount == "" {
		n.BootCount = "bootcount"
	}
	if n.BootLimit == "" {
		n.BootLimit = "bootlimit"
	}
}

// The variables the store owns besides Names. They hold what U-Boot does
// not: the committed bank, the trial, the limit the next trial gets, each
// slot's metadata (JSON of bank.SlotInfo) and the save sequence.
const (
	VarActive        = "iad_active"
	VarTrial         = "iad_trial"
	VarNextLimit     = "iad_bootlimit"
	VarSlotA         = "iad_slot_a"
	VarSlotB         = "iad_slot_b"
	VarSeq           = "iad_seq"
	VarAbandoned     = "iad_abandoned"
	VarAbandonReason = "iad_abandon_reason"
)

// StoreOptions configure NewStore.
type StoreOptions struct {
	Names Names
	// BankValues are the values of Names.BootBank for banks A and B;
	// default "A" and "B".
	BankValues [2]string
	// Defaults is the environment to start from when no copy is valid
	// (a blank device). Without it, saving onto a blank device fails,
	// because an environment without the board's own variables
	// (bootcmd…) would stop U-Boot from booting.
	Defaults Vars
}

// Store is a bank.StateStore kept in the U-Boot environment:
//
//	boot_bank          bank the bootloader boots next (the trial if one is armed)
//	upgrade_available  1 while a trial is armed, else 0
//	bootcount          boots spent on the trial (bootlimit - tries left); 0 without a trial
//	bootlimit          boots the trial may take (the tries it was armed with)
//	iad_active         the committed bank (the fallback of a trial)
//	iad_trial          the armed trial bank, kept until commit or revert
//	iad_bootlimit      the limit the next armed trial gets (iadSwBootLimit)
//	iad_slot_a/_b      JSON of each slot's bank.SlotInfo
//	iad_seq            save sequence
//	iad_abandoned, iad_abandon_reason   the bank the last boot gave up on
//
// A bootloader that counts in U-Boot's way (increment bootcount while
// upgrade_available=1; when bootcount exceeds bootlimit, set boot_bank to
// iad_active and upgrade_available to 0) stays consistent with it: Load
// reads upgrade_available=0 with iad_trial still set as "the bootloader
// abandoned the trial", and marks that bank bad.
type Store struct {
	env  Backend
	opts StoreOptions
}

// Backend holds the variables a Store reads and writes: an *Env (the
// binary environment on flash or disk, as fw_printenv sees it) or a
// *TextFile (a file a boot script reads with "env import -t" and writes
// with "env export -t" and fatwrite).
type Backend interface {
	// Read returns the variables, or an error wrapping ErrNoEnv when
	// there are none yet (a blank device).
	Read() (Vars, error)
	// Write replaces the variables atomically.
	Write(Vars) error
}

var _ bank.StateStore = (*Store)(nil)

// NewStore returns a store in env.
func NewStore(env Backend, opts StoreOptions) (*Store, error) {
	opts.Names.setDefaults()
	if opts.BankValues[0] == "" {
		opts.BankValues[0] = "A"
	}
	if opts.BankValues[1] == "" {
		opts.BankValues[1] = "B"
	}
	if opts.BankValues[0] == opts.BankValues[1] {
		return nil, fmt.Errorf("%w: both banks are %q", ErrConfig, opts.BankValues[0])
	}
	n := opts.Names
	seen := map[string]bool{}
	for _, v := range []string{n.BootBank, n.UpgradeAvailable, n.BootCount, n.BootLimit, VarActive, VarTrial, VarNextLimit, VarSlotA, VarSlotB, VarSeq, VarAbandoned, VarAbandonReason} {
		if seen[v] {
			return nil, fmt.Errorf("%w: variable %s named twice", ErrConfig, v)
		}
		if err := checkVar(v, ""); err != nil {
			return nil, err
		}
		seen[v] = true
	}
	return &Store{env: env, opts: opts}, nil
}

// Backend returns where the store keeps its variables.
func (s *Store) Backend() Backend { return s.env }

func (s *Store) bankValue(sl bank.Slot) string {
	if sl == bank.SlotB {
		return s.opts.BankValues[1]
	}
	return s.opts.BankValues[0]
}

func (s *Store) parseBank(v string) (bank.Slot, error) {
	switch v {
	case s.opts.BankValues[0]:
		return bank.SlotA, nil
	case s.opts.BankValues[1]:
		return bank.SlotB, nil
	}
	return 0, fmt.Errorf("%w: bank %q is neither %q nor %q", bank.ErrCorruptState, v, s.opts.BankValues[0], s.opts.BankValues[1])
}

func slotVar(sl bank.Slot) string {
	if sl == bank.SlotB {
		return VarSlotB
	}
	return VarSlotA
}

// Load reads the state. An environment without iad_seq (never written by
// the store) or with no valid copy is ErrNoState.
func (s *Store) Load(ctx context.Context) (bank.State, error) {
	if err := ctx.Err(); err != nil {
		return bank.State{}, err
	}
	v, err := s.env.Read()
	if errors.Is(err, ErrNoEnv) {
		return bank.State{}, fmt.Errorf("%w: %w", bank.ErrNoState, err)
	}
	if err != nil {
		return bank.State{}, err
	}
	if _, ok := v[VarSeq]; !ok {
		return bank.State{}, fmt.Errorf("%w: the environment has no %s", bank.ErrNoState, VarSeq)
	}
	st, err := s.decodeState(v)
	if err != nil {
		return bank.State{}, fmt.Errorf("ubootenv: %w", err)
	}
	return st, nil
}

func num(v Vars, name string, dflt int) (int, error) {
	x, ok := v[name]
	if !ok || x == "" {
		return dflt, nil
	}
	n, err := strconv.Atoi(x)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s=%q", bank.ErrCorruptState, name, x)
	}
	return n, nil
}

func (s *Store) decodeState(v Vars) (bank.State, error) {
	n := s.opts.Names
	st := bank.State{Version: 1, Slots: map[bank.Slot]bank.SlotInfo{}}
	var err error
	seq, err := strconv.ParseUint(v[VarSeq], 10, 64)
	if err != nil {
		return st, fmt.Errorf("%w: %s=%q", bank.ErrCorruptState, VarSeq, v[VarSeq])
	}
	st.Seq = seq
	bootBank, err := s.parseBank(v[n.BootBank])
	if err != nil {
		return st, err
	}
	count, err := num(v, n.BootCount, 0)
	if err != nil {
		return st, err
	}
	limit, err := num(v, n.BootLimit, bank.DefaultBootLimit)
	if err != nil {
		return st, err
	}
	if st.BootLimit, err = num(v, VarNextLimit, limit); err != nil {
		return st, err
	}
	for _, sl := range []bank.Slot{bank.SlotA, bank.SlotB} {
		var info bank.SlotInfo
		if err := json.Unmarshal([]byte(v[slotVar(sl)]), &info); err != nil {
			return st, fmt.Errorf("%w: %s: %w", bank.ErrCorruptState, slotVar(sl), err)
		}
		st.Slots[sl] = info
	}
	var trial bank.Slot
	if x := v[VarTrial]; x != "" {
		if trial, err = s.parseBank(x); err != nil {
			return st, err
		}
	}
	if x := v[VarAbandoned]; x != "" {
		if st.Abandoned, err = s.parseBank(x); err != nil {
			return st, err
		}
		st.AbandonReason = v[VarAbandonReason]
	}
	if v[n.UpgradeAvailable] == "1" {
		st.Trial = bootBank
		if st.Active, err = s.parseBank(v[VarActive]); err != nil {
			return st, err
		}
		st.TriesLeft = max(0, min(limit-count, bank.MaxBootLimit))
		st.Armed = min(limit, bank.MaxBootLimit)
		return st, nil
	}
	// No trial runs: the bootloader boots boot_bank, which is therefore
	// the committed bank, whoever wrote it last.
	st.Active = bootBank
	if trial != 0 {
		// The store clears iad_trial whenever it clears
		// upgrade_available, so the bootloader has given up on the trial.
		if info := st.Slots[trial]; info.State == bank.SlotValid {
			info.State = bank.SlotBad
			st.Slots[trial] = info
		}
		st.Abandoned = trial
		st.AbandonReason = fmt.Sprintf("the bootloader abandoned trial bank %v after %d of %d boots", trial, count, limit)
	}
	return st, nil
}

// Save writes the state into the environment, keeping every variable the
// store does not own.
func (s *Store) Save(ctx context.Context, st bank.State) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !st.Active.Valid() || (st.Trial != 0 && !st.Trial.Valid()) || st.BootLimit < bank.MinBootLimit || st.TriesLeft < 0 {
		return fmt.Errorf("ubootenv: refusing to save: %w: active %v trial %v limit %d tries %d", bank.ErrCorruptState, st.Active, st.Trial, st.BootLimit, st.TriesLeft)
	}
	v, err := s.env.Read()
	if errors.Is(err, ErrNoEnv) {
		if s.opts.Defaults == nil {
			return fmt.Errorf("ubootenv: %w, and no default environment was configured", err)
		}
		v = s.opts.Defaults.Clone()
	} else if err != nil {
		return err
	}
	n := s.opts.Names
	if st.Trial != 0 {
		limit := st.Armed
		if limit < st.TriesLeft {
			limit = max(st.BootLimit, st.TriesLeft)
		}
		v[n.BootBank] = s.bankValue(st.Trial)
		v[n.UpgradeAvailable] = "1"
		v[n.BootLimit] = strconv.Itoa(limit)
		v[n.BootCount] = strconv.Itoa(limit - st.TriesLeft)
		v[VarTrial] = s.bankValue(st.Trial)
	} else {
		v[n.BootBank] = s.bankValue(st.Active)
		v[n.UpgradeAvailable] = "0"
		v[n.BootLimit] = strconv.Itoa(st.BootLimit)
		v[n.BootCount] = "0"
		delete(v, VarTrial)
	}
	v[VarActive] = s.bankValue(st.Active)
	v[VarNextLimit] = strconv.Itoa(st.BootLimit)
	for _, sl := range []bank.Slot{bank.SlotA, bank.SlotB} {
		b, err := json.Marshal(st.Slots[sl])
		if err != nil {
			return fmt.Errorf("ubootenv: encoding slot %v: %w", sl, err)
		}
		v[slotVar(sl)] = string(b)
	}
	v[VarSeq] = strconv.FormatUint(st.Seq, 10)
	if st.Abandoned != 0 {
		v[VarAbandoned] = s.bankValue(st.Abandoned)
		v[VarAbandonReason] = st.AbandonReason
	} else {
		delete(v, VarAbandoned)
		delete(v, VarAbandonReason)
	}
	return s.env.Write(v)
}
