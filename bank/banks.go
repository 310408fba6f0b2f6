package bank

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"
)

// chunkSize is the unit of streaming and hashing, and the only payload
// buffer an Install or a verification allocates: large enough that a write
// costs one system call per 256 KiB, small enough to leave the agent's
// memory to the device. Slots that need erase blocks or sectors (mtd,
// block) align writes themselves, whatever the chunk.
const chunkSize = 256 << 10

// Options configures New.
type Options struct {
	// Devices holds the storage of both slots.
	Devices map[Slot]Device
	Store   StateStore
	// Logger receives decisions worth auditing; nil discards them.
	Logger *slog.Logger
	// Factory describes what slot A holds when the store has no state yet
	// (the first start of a device or a development host). It is recorded
	// as a valid factory slot with Size 0 that is never re-hashed.
	Factory SlotInfo
	// DefaultBootLimit is the boot limit of a freshly initialised state;
	// 0 means DefaultBootLimit.
	DefaultBootLimit int
	// BootCounted says that a boot stage before this software (a
	// bootloader that counts tries, such as U-Boot's bootcount, or
	// iad-boot) has already applied the boot rules to the state and
	// spent this boot's try. Boot then adopts that choice: the running
	// bank is the trial if one is armed, else the active bank; it
	// neither spends a try nor verifies nor reverts, and it reports a
	// revert the boot stage recorded (State.Abandoned) once.
	BootCounted bool
}

func (o *Options) validate() error {
	for _, s := range allSlots {
		if o.Devices[s] == nil {
			return fmt.Errorf("bank: no device for slot %v", s)
		}
	}
	if len(o.Devices) != len(allSlots) {
		return fmt.Errorf("bank: %d devices, want %d", len(o.Devices), len(allSlots))
	}
	if o.Store == nil {
		return errors.New("bank: no state store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DefaultBootLimit == 0 {
		o.DefaultBootLimit = DefaultBootLimit
	}
	if o.DefaultBootLimit < MinBootLimit || o.DefaultBootLimit > MaxBootLimit {
		return fmt.Errorf("%w: %d", ErrBadLimit, o.DefaultBootLimit)
	}
	return nil
}

// Banks manages the two slots and their boot state. All methods are safe
// for concurrent use.
type Banks struct {
	devices map[Slot]Device
	store   StateStore
	log     *slog.Logger
	counted bool

	mu         sync.Mutex
	state      State // always equal to what the store last saved
	running    Slot  // 0 until Boot succeeds
	installing bool
}

// New loads the boot state, initialising it from opts.Factory if the store
// has none. It does not touch the devices; call Boot next.
func New(ctx context.Context, opts Options) (*Banks, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	b := &Banks{
		devices: make(map[Slot]Device, len(allSlots)),
		store:   opts.Store,
		log:     opts.Logger,
		counted: opts.BootCounted,
	}
	for s, d := range opts.Devices {
		b.devices[s] = d
	}
	st, err := opts.Store.Load(ctx)
	switch {
	case errors.Is(err, ErrNoState):
		factory := opts.Factory
		factory.State = SlotValid
		factory.Factory = true
		factory.Size = 0
		st = State{
			Version:   stateVersion,
			Active:    SlotA,
			BootLimit: opts.DefaultBootLimit,
			Slots: map[Slot]SlotInfo{
				SlotA: factory,
				SlotB: {State: SlotEmpty},
			},
		}
		b.log.Info("bank: initialising boot state", "factory_version", factory.Version)
		if err := b.save(ctx, st); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		// Another StateStore implementation may not check.
		if err := st.validate(); err != nil {
			return nil, err
		}
		b.state = st
	}
	return b, nil
}

// save persists next with the next sequence number and, only if that
// succeeded, makes it the current state. The caller holds b.mu (or is New).
func (b *Banks) save(ctx context.Context, next State) error {
	next.Version = stateVersion
	next.Seq = b.state.Seq + 1
	if err := b.store.Save(ctx, next); err != nil {
		return fmt.Errorf("bank: saving state: %w", err)
	}
	b.state = next
	return nil
}

// Boot decides, once per start of the software, which bank this run is:
// it spends one try of an armed trial, abandons a trial that ran out of
// tries or no longer verifies, and falls back to the other bank if the
// active one does not verify. The decision is saved before Boot returns,
// so that a crash of the booted software cannot boot it again for free.
//
// Boot holds the lock while it verifies the chosen bank; it runs before
// the software serves anything.
func (b *Banks) Boot(ctx context.Context) (BootResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running != 0 {
		return BootResult{}, ErrBooted
	}

	next := b.state.Clone()
	var res BootResult
	var err error
	if b.counted {
		res = b.adopt(&next)
	} else {
		res, err = b.decide(ctx, &next)
	}
	if err != nil && !errors.Is(err, ErrNoBootableBank) {
		return BootResult{}, err
	}
	// Save even an unchanged state on success: Seq then records the boot.
	// A boot stage that counted has saved already: save only a change.
	if (err == nil && !b.counted) || !sameState(next, b.state) {
		if serr := b.save(ctx, next); serr != nil {
			return BootResult{}, errors.Join(err, serr)
		}
	}
	if err != nil {
		return BootResult{}, err
	}
	b.running = res.Slot
	attrs := []any{"slot", res.Slot, "trial", res.Trial, "version", next.Slots[res.Slot].Version}
	if res.Trial {
		attrs = append(attrs, "tries_left", next.TriesLeft)
	}
	if res.Reverted {
		b.log.Warn("bank: booted after abandoning a bank", append(attrs, "failed_slot", res.FailedSlot, "reason", res.Reason)...)
	} else {
		b.log.Info("bank: booted", attrs...)
	}
	return res, nil
}

func sameState(a, b State) bool {
	if a.Active != b.Active || a.Trial != b.Trial || a.TriesLeft != b.TriesLeft || a.BootLimit != b.BootLimit {
		return false
	}
	if a.Abandoned != b.Abandoned || a.AbandonReason != b.AbandonReason || a.Armed != b.Armed {
		return false
	}
	for _, s := range allSlots {
		if a.Slots[s] != b.Slots[s] {
			return false
		}
	}
	return true
}

// discardWriting empties slots left "writing": they lost power
// mid-install and their content is partial.
func (b *Banks) discardWriting(st *State) {
	for _, s := range allSlots {
		if st.Slots[s].State == SlotWriting {
			st.Slots[s] = SlotInfo{State: SlotEmpty}
			b.log.Warn("bank: discarding interrupted write", "slot", s)
		}
	}
}

// adopt takes the choice a counting boot stage made (see
// Options.BootCounted) and consumes the revert it recorded.
func (b *Banks) adopt(st *State) BootResult {
	b.discardWriting(st)
	res := BootResult{Slot: st.Active}
	// The boot stage has booted an armed trial once it spent a try; an
	// armed trial with all its tries left has not been booted yet (the
	// software restarted without a reset). Armed is 0 in states written
	// before it existed: those trials count as booted.
	if st.Trial != 0 && (st.Armed == 0 || st.TriesLeft < st.Armed) {
		res = BootResult{Slot: st.Trial, Trial: true}
	}
	if st.Abandoned != 0 {
		res.Reverted, res.FailedSlot, res.Reason = true, st.Abandoned, st.AbandonReason
		st.Abandoned, st.AbandonReason = 0, ""
	}
	return res
}

// decide applies the boot rules to st, recording a revert in
// st.Abandoned. It returns ErrNoBootableBank (with st still worth saving)
// when neither bank verifies.
func (b *Banks) decide(ctx context.Context, st *State) (BootResult, error) {
	st.Abandoned, st.AbandonReason = 0, ""
	res, err := b.decideSlot(ctx, st)
	if err == nil && res.Reverted {
		st.Abandoned, st.AbandonReason = res.FailedSlot, res.Reason
	}
	return res, err
}

func (b *Banks) decideSlot(ctx context.Context, st *State) (BootResult, error) {
	b.discardWriting(st)
	buf := make([]byte, chunkSize)
	var res BootResult
	fail := func(s Slot, reason string) {
		res.Reverted = true
		res.FailedSlot = s
		res.Reason = reason
	}
	if t := st.Trial; t != 0 {
		info := st.Slots[t]
		switch {
		case info.State != SlotValid:
			fail(t, fmt.Sprintf("trial bank %v is %s", t, info.State))
		case st.TriesLeft <= 0:
			markBad(st, t)
			fail(t, fmt.Sprintf("trial bank %v did not commit within its boot limit", t))
		default:
			err := b.verify(ctx, t, info, buf)
			if err == nil {
				st.TriesLeft--
				return BootResult{Slot: t, Trial: true}, nil
			}
			if ctx.Err() != nil {
				return BootResult{}, err
			}
			markBad(st, t)
			fail(t, fmt.Sprintf("trial bank %v: %v", t, err))
		}
		st.Trial = 0
		st.TriesLeft = 0
		st.Armed = 0
	}

	a := st.Active
	errA := b.verify(ctx, a, st.Slots[a], buf)
	if errA == nil {
		res.Slot = a
		return res, nil
	}
	if ctx.Err() != nil {
		return BootResult{}, errA
	}
	o := a.Other()
	errO := b.verify(ctx, o, st.Slots[o], buf)
	if errO != nil {
		if ctx.Err() != nil {
			return BootResult{}, errO
		}
		// The active bank is not marked bad here: if its read failed
		// transiently, a later attempt may still boot it.
		return BootResult{}, fmt.Errorf("%w: slot %v: %w; slot %v: %w", ErrNoBootableBank, a, errA, o, errO)
	}
	if st.Slots[a].State == SlotValid {
		markBad(st, a)
	}
	st.Active = o
	reason := fmt.Sprintf("active bank %v: %v", a, errA)
	if res.Reverted {
		reason = res.Reason + "; " + reason
	}
	return BootResult{Slot: o, Reverted: true, FailedSlot: a, Reason: reason}, nil
}

func markBad(st *State, s Slot) {
	info := st.Slots[s]
	info.State = SlotBad
	st.Slots[s] = info
}

// verify checks that slot s is valid and, unless it is the factory
// software, that its first info.Size bytes hash to info.Digest.
func (b *Banks) verify(ctx context.Context, s Slot, info SlotInfo, buf []byte) error {
	if info.State != SlotValid {
		return fmt.Errorf("%w: slot %v is %s", ErrNotValid, s, info.State)
	}
	if info.Factory {
		return nil
	}
	dev := b.devices[s]
	if info.Size > dev.Size() {
		return fmt.Errorf("%w: slot %v records %d bytes, device has %d", ErrVerify, s, info.Size, dev.Size())
	}
	sum, err := hashDevice(ctx, dev, info.Size, buf)
	if err != nil {
		return fmt.Errorf("%w: slot %v: %w", ErrVerify, s, err)
	}
	if sum != info.Digest {
		return fmt.Errorf("%w: slot %v digest %x, want %v", ErrVerify, s, sum, info.Digest)
	}
	return nil
}

// hashDevice hashes the first size bytes of dev through buf, checking ctx
// between chunks.
func hashDevice(ctx context.Context, dev Device, size int64, buf []byte) (Digest, error) {
	h := sha256.New()
	if err := hashRange(ctx, dev, h, 0, size, buf); err != nil {
		return Digest{}, err
	}
	var d Digest
	h.Sum(d[:0])
	return d, nil
}

// hashRange feeds [off, off+n) of dev into h through buf, checking ctx
// between chunks.
func hashRange(ctx context.Context, dev Device, h hash.Hash, off, n int64, buf []byte) error {
	for end := off + n; off < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := int(min(int64(len(buf)), end-off))
		got, err := dev.ReadAt(buf[:k], off)
		if got < k {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading at %d: %w", off, err)
		}
		h.Write(buf[:k])
		off += int64(k)
	}
	return nil
}

// Running returns the slot this process booted from, or 0 before Boot.
func (b *Banks) Running() Slot {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running
}

// Next returns the slot the next boot will choose.
func (b *Banks) Next() Slot {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Trial != 0 && b.state.TriesLeft > 0 {
		return b.state.Trial
	}
	return b.state.Active
}

// Inactive returns the slot an upgrade writes: the one the running
// software did not boot from; 0 before Boot.
func (b *Banks) Inactive() Slot {
	return b.Running().Other()
}

// Snapshot returns a copy of the boot state.
func (b *Banks) Snapshot() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.Clone()
}

// BootLimit returns the number of trial boots the next Arm grants.
func (b *Banks) BootLimit() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.BootLimit
}

// Status returns slot s's state as iadBankState reports it, or 0 if s is
// not a slot.
func (b *Banks) Status(s Slot) Status {
	if !s.Valid() {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case s == b.state.Trial:
		return StatusTrial
	case s == b.running && s == b.state.Active:
		return StatusActive
	}
	switch b.state.Slots[s].State {
	case SlotEmpty:
		return StatusEmpty
	case SlotWriting:
		return StatusWriting
	case SlotValid:
		return StatusValid
	case SlotBad:
		return StatusBad
	}
	return 0
}

// SetBootLimit sets the number of trial boots granted by the next Arm; a
// trial already armed keeps its count.
func (b *Banks) SetBootLimit(ctx context.Context, n int) error {
	if n < MinBootLimit || n > MaxBootLimit {
		return fmt.Errorf("%w: %d", ErrBadLimit, n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.BootLimit == n {
		return nil
	}
	next := b.state.Clone()
	next.BootLimit = n
	return b.save(ctx, next)
}

// Arm makes the valid slot s the trial bank of the next boot, with
// BootLimit tries. If it does not commit within them, Boot returns to the
// active bank.
func (b *Banks) Arm(ctx context.Context, s Slot) error {
	if !s.Valid() {
		return fmt.Errorf("bank: arm: invalid slot %d", int(s))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running == 0 {
		return ErrNotBooted
	}
	if s == b.running {
		return fmt.Errorf("%w: cannot arm slot %v", ErrSlotBusy, s)
	}
	if st := b.state.Slots[s].State; st != SlotValid {
		return fmt.Errorf("%w: slot %v is %s", ErrNotValid, s, st)
	}
	next := b.state.Clone()
	next.Trial = s
	next.TriesLeft = next.BootLimit
	next.Armed = next.BootLimit
	if err := b.save(ctx, next); err != nil {
		return err
	}
	b.log.Info("bank: armed trial", "slot", s, "tries", next.TriesLeft, "version", next.Slots[s].Version)
	return nil
}

// Commit makes the running trial bank the active one, once the software
// has proved healthy. It reports false, and changes nothing, when the
// running bank is not on trial.
func (b *Banks) Commit(ctx context.Context) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running == 0 {
		return false, ErrNotBooted
	}
	if b.state.Trial != b.running {
		return false, nil
	}
	next := b.state.Clone()
	next.Active = b.running
	next.Trial = 0
	next.TriesLeft = 0
	next.Armed = 0
	if err := b.save(ctx, next); err != nil {
		return false, err
	}
	b.log.Info("bank: committed", "slot", b.running, "version", next.Slots[b.running].Version)
	return true, nil
}

// Revert goes back to the previous software. It disarms a trial that has
// not booted yet (the running software stays, needsReset false); it makes
// the next boot return to the active bank if the running one is an
// uncommitted trial; and it makes the other bank active if the running one
// is committed and the other holds valid software. needsReset says whether
// a reset is needed to run the previous software. A second Revert before
// that reset keeps the first one.
func (b *Banks) Revert(ctx context.Context) (needsReset bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running == 0 {
		return false, ErrNotBooted
	}
	next := b.state.Clone()
	switch {
	case next.Trial != 0 && next.Trial != b.running:
		next.Trial, next.TriesLeft, next.Armed = 0, 0, 0
	case next.Trial == b.running:
		next.Trial, next.TriesLeft, next.Armed = 0, 0, 0
		needsReset = true
	case next.Active != b.running:
		return true, nil
	default:
		o := b.running.Other()
		if st := next.Slots[o].State; st != SlotValid {
			return false, fmt.Errorf("%w: slot %v is %s", ErrNoFallback, o, st)
		}
		next.Active = o
		needsReset = true
	}
	if err := b.save(ctx, next); err != nil {
		return false, err
	}
	b.log.Info("bank: reverted", "running", b.running, "next", next.Active, "needs_reset", needsReset)
	return needsReset, nil
}
