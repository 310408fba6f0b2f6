// Package procedure is the management station's half of the method for
// one device: backup → upgrade → reset → boot on the new software →
// commit → restore (converting the configuration if the new software
// expects another format), each step watched through the device's
// notifications and by polling its iadOpTable row, judged failed on a
// failure report or a per-step timeout, and then retried or not as a
// Decider says — reverting the device to its previous software before an
// upgrade is retried.
//
// Every decision is journalled before it is acted on (journal package), so
// a procedure started again after iadms died resumes at the step where it
// stopped, adopting the operation rows it had created.
//
// The package must never report success for a device that does not run
// and has not committed the new software with its configuration restored
// (a device that reverts by itself is a failed upgrade, with the reason),
// never start an upgrade while the device runs uncommitted software, and
// never let a secret reach its journal, its log or its observer.
package procedure

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/convert"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/creds"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/device"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/traps"
	"github.com/iadsafe/iad-agent/mib"
)

// Errors that end a procedure without a verdict on the device.
var (
	// ErrOtherRun means the journal holds an unfinished run of the device
	// with another image.
	ErrOtherRun = errors.New("procedure: an unfinished run with another image exists")
	// ErrJournal wraps a journal write failure: iadms cannot keep its
	// promise to resume, so it stops.
	ErrJournal = errors.New("procedure: journal write failed")
)

// Device is what a procedure needs of a device; *device.Client has it.
type Device interface {
	Software(ctx context.Context) (device.Software, error)
	Op(ctx context.Context, idx uint32) (device.Op, error)
	StartOp(ctx context.Context, idx uint32, r device.Request) error
	CheckWrite(ctx context.Context, bootLimit uint32) error
}

// Location is the file server an operation row names.
type Location struct {
	Protocol mib.Protocol
	Server   netip.AddrPort
	User     string
	Password creds.Secret
}

// Files is where devices fetch images and store backups: the embedded
// server or an external one (package fileserver has both).
type Files interface {
	Location() Location
	// ImageName makes the image file at path available and returns the
	// name a device requests it by.
	ImageName(ctx context.Context, path string) (string, error)
	// ExpectBackup prepares the upload of backup file of device (from
	// address from) and returns the name to give the device.
	ExpectBackup(ctx context.Context, device, file string, from netip.Addr) (string, error)
	// OpenBackup reads a stored backup.
	OpenBackup(ctx context.Context, device, file string) (io.ReadCloser, error)
	// StoreBackup stores a backup made by iadms (a converted one).
	StoreBackup(ctx context.Context, device, file string, r io.Reader) error
	// PublishBackup makes a stored backup readable by the device and
	// returns the name to give it.
	PublishBackup(ctx context.Context, device, file string, from netip.Addr) (string, error)
	// Embedded reports whether iadms itself is the server (then a
	// transfer that failed while iadms was not running is not the
	// device's fault).
	Embedded() bool
}

// Events is a device's notification feed; *traps.Sub has it.
type Events interface {
	C() <-chan traps.Event
	Watch(idx uint32)
}

// Timeouts bound each step. Zero values get defaults.
type Timeouts struct {
	Preflight time.Duration // reaching the device at all: 1m
	Backup    time.Duration // 5m
	Upgrade   time.Duration // 30m
	Reset     time.Duration // restart until the device answers again: 5m
	Commit    time.Duration // trial boot until committed: 10m
	Restore   time.Duration // 5m
	Revert    time.Duration // revert (with its reset): 10m
}

func (t *Timeouts) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Preflight, time.Minute)
	def(&t.Backup, 5*time.Minute)
	def(&t.Upgrade, 30*time.Minute)
	def(&t.Reset, 5*time.Minute)
	def(&t.Commit, 10*time.Minute)
	def(&t.Restore, 5*time.Minute)
	def(&t.Revert, 10*time.Minute)
}

// opGrace is how long iadms waits past a row's own iadOpTimeout before it
// judges the step timed out itself: the agent's verdict, with its cause,
// should come first.
const opGrace = 15 * time.Second

// Options configure a Procedure.
type Options struct {
	// Device is the name runs are journalled and files stored under.
	Device  string
	Addr    netip.AddrPort
	CredRef string
	// Image is the software to install (its Name is filled in by Run).
	Image journal.Image
	// Hardware is the image's hardware string, checked before starting.
	Hardware string
	// Format tells the config format of the new software when the device
	// does not publish it (iadConfigFormat.0); nil means the image
	// header's Image.ConfigFormat.
	Format convert.FormatSource
	// Converter converts a backup at the station whenever the formats
	// differ (the operator's own converter); nil leaves the conversion to
	// the device when it can, else to Fallback.
	Converter convert.Converter
	// Fallback converts at the station (the operator by hand) when the
	// device cannot convert itself; nil means none.
	Fallback convert.Converter
	// ForceConvert lets restores convert across a major configuration
	// format version (iadOpForce).
	ForceConvert bool
	Timeouts     Timeouts
	// Poll is the polling interval (default 1s); notifications trigger
	// extra polls in between.
	Poll time.Duration
	// Decider says whether to retry a failed step; nil means never.
	Decider  Decider
	Observer Observer
	// Journal persists the run; nil keeps it in memory only.
	Journal *journal.Store
	// WorkDir holds temporary files (conversion); default os.TempDir.
	WorkDir string
	// Force upgrades a device that already runs the image's version.
	Force  bool
	Logger *slog.Logger
	// Now is the clock; tests may fix it.
	Now func() time.Time
}

// Procedure drives one device.
type Procedure struct {
	opts   Options
	dev    Device
	files  Files
	events Events
	log    *slog.Logger
	rec    journal.Run

	lastPoll time.Time
	// freeRetry allows one redo, not counted, of a resumed transfer that
	// failed because iadms (the embedded server) was not running.
	freeRetry bool
	// reverted keeps the last iadBootRevertedNotify heard, for the report.
	reverted *traps.Event
	// resuming is set until the first step of a resumed run starts.
	resuming bool
}

// New prepares a procedure; events may be nil (polling only).
func New(opts Options, dev Device, files Files, events Events) *Procedure {
	opts.Timeouts.fill()
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.Decider == nil {
		opts.Decider = Never{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Format == nil {
		opts.Format = imageFormat{opts.Image.ConfigFormat}
	}
	return &Procedure{
		opts: opts, dev: dev, files: files, events: events,
		log: opts.Logger.With("device", opts.Device),
	}
}

type imageFormat struct{ f uint32 }

func (i imageFormat) TargetFormat(context.Context) (uint32, error) { return i.f, nil }

// Record returns the run as it stands.
func (p *Procedure) Record() journal.Run { return p.rec }

// Failure is a step judged failed.
type Failure struct {
	Step  journal.Step
	Cause string // an IadFailCause label, or one of iadms's own (see below)
	Text  string
	// adopted marks a failure of a row a resumed iadms took over.
	adopted bool
	// final means no retry can help; declined that the operator said no.
	final, declined bool
}

// iadms's own failure causes, beside the MIB's IadFailCause labels.
const (
	CauseTimeout      = "timeout"
	CauseUnreachable  = "unreachable"
	CauseReverted     = "reverted"
	CauseNotCommitted = "notCommitted"
	CauseWrongState   = "wrongState"
	CauseRefused      = "refused"
	CauseConversion   = "conversion"
	CauseBackup       = "backupUnreadable"
	CauseTrial        = "uncommittedTrial"
	CauseHardware     = "imageIncompatible"
	CauseNotIAD       = "notIAD"
	CauseNoWrite      = "noWriteAccess"
)

func (f *Failure) Error() string {
	return fmt.Sprintf("%s failed: %s: %s", f.Step, f.Cause, f.Text)
}

func fail(step journal.Step, cause, format string, args ...any) *Failure {
	return &Failure{Step: step, Cause: cause, Text: fmt.Sprintf(format, args...)}
}

// group is the retry unit a step belongs to: a failure anywhere from the
// upgrade to the commit is a failed upgrade, retried from the upgrade
// after a revert.
func group(s journal.Step) journal.Step {
	switch s {
	case journal.StepUpgrade, journal.StepReset, journal.StepBoot, journal.StepCommit:
		return journal.StepUpgrade
	}
	return s
}

// Run performs (or resumes) the whole upgrade and returns the final
// record. A returned error means the run could not be completed or judged
// (context canceled, journal broken): it stays resumable. A device that
// failed is not an error: see the record's Status and Reason.
func (p *Procedure) Run(ctx context.Context) (journal.Run, error) {
	if err := p.load(ctx); err != nil {
		return p.rec, err
	}
	for !p.rec.Status.Finished() {
		if err := ctx.Err(); err != nil {
			return p.rec, err
		}
		if err := p.runStep(ctx); err != nil {
			return p.rec, err
		}
	}
	return p.rec, nil
}

// load takes over an unfinished run of the device or starts a new one.
func (p *Procedure) load(ctx context.Context) error {
	name, err := p.files.ImageName(ctx, p.opts.Image.Path)
	if err != nil {
		return fmt.Errorf("procedure: %s: image: %w", p.opts.Device, err)
	}
	p.opts.Image.Name = name
	if p.opts.Journal != nil {
		r, ok, err := p.opts.Journal.Get(ctx, p.opts.Device)
		if err != nil {
			return err
		}
		if ok && !r.Status.Finished() {
			if r.Image.SHA256 != p.opts.Image.SHA256 {
				return fmt.Errorf("%w: %s is at step %s of run %s installing %s (%s); finish that run or abandon it",
					ErrOtherRun, p.opts.Device, r.Step, r.RunID, r.Image.Version, r.Image.Path)
			}
			p.rec = r
			p.rec.Image.Name = name
			p.rec.Resumed++
			p.freeRetry = p.files.Embedded()
			p.resuming = true
			p.observe(Update{Kind: Info, Text: fmt.Sprintf("resuming run %s at step %s", r.RunID, r.Step)})
			p.log.Info("resuming", "run", r.RunID, "step", r.Step)
			return p.save(ctx)
		}
	}
	now := p.opts.Now()
	p.rec = journal.Run{
		Device: p.opts.Device, Address: p.opts.Addr.String(), CredRef: p.opts.CredRef,
		RunID: newRunID(now), Image: p.opts.Image, Started: now,
		Status: journal.Running, Step: journal.StepPreflight,
		Attempts: map[journal.Step]int{}, Failures: map[journal.Step]int{},
	}
	return p.save(ctx)
}

func newRunID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// save journals the record.
func (p *Procedure) save(ctx context.Context) error {
	p.rec.Updated = p.opts.Now()
	if p.opts.Journal == nil {
		return nil
	}
	if err := p.opts.Journal.Put(context.WithoutCancel(ctx), p.rec); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	return nil
}

// runStep runs the current step once and moves the run on.
func (p *Procedure) runStep(ctx context.Context) error {
	step := p.rec.Step
	if p.rec.Attempts == nil {
		p.rec.Attempts = map[journal.Step]int{}
	}
	if p.rec.Failures == nil {
		p.rec.Failures = map[journal.Step]int{}
	}
	// A step a resumed run takes over continues its attempt.
	if !p.resuming || p.rec.Attempts[step] == 0 {
		p.rec.Attempts[step]++
	}
	p.resuming = false
	attempt := p.rec.Attempts[step]
	started := p.opts.Now()
	p.observe(Update{Kind: StepStarted, Step: step, Attempt: attempt})
	var next journal.Step
	var err error
	switch step {
	case journal.StepPreflight:
		next, err = p.preflight(ctx)
	case journal.StepBackup:
		next, err = journal.StepUpgrade, p.backup(ctx, attempt)
	case journal.StepUpgrade:
		next, err = journal.StepReset, p.upgrade(ctx)
	case journal.StepReset:
		next, err = journal.StepBoot, p.reset(ctx)
	case journal.StepBoot:
		next, err = journal.StepCommit, p.boot(ctx)
	case journal.StepCommit:
		next, err = journal.StepRestore, p.commit(ctx)
	case journal.StepRestore:
		next, err = journal.StepDone, p.restore(ctx, attempt)
	case journal.StepRevert:
		next, err = journal.StepUpgrade, p.revert(ctx)
	default:
		return fmt.Errorf("procedure: %s: unknown step %q in the journal", p.opts.Device, step)
	}
	var f *Failure
	if err != nil && !errors.As(err, &f) {
		return err // canceled or broken: stays resumable at this step
	}
	res := journal.Result{Step: step, Attempt: attempt, OK: f == nil, Started: started, Ended: p.opts.Now()}
	p.rec.Pending = nil
	if f == nil {
		p.rec.Results = append(p.rec.Results, res)
		p.observe(Update{Kind: StepDone, Step: step, Attempt: attempt})
		p.rec.Step = next
		switch next {
		case journal.StepDone:
			if !p.rec.Status.Finished() {
				p.finish(journal.Succeeded, "")
			}
		case journal.StepUpgrade:
			p.rec.Reset = nil
		}
		return p.save(ctx)
	}
	res.Cause, res.Text = f.Cause, f.Text
	p.rec.Results = append(p.rec.Results, res)
	p.log.Warn("step failed", "step", step, "attempt", attempt, "cause", f.Cause, "text", f.Text)
	p.observe(Update{Kind: StepFailed, Step: step, Attempt: attempt, Text: f.Cause + ": " + f.Text})
	if f.adopted && p.freeRetry && transferCause(f.Cause) {
		// The device could not reach iadms's embedded server because
		// iadms was not running: redo the step, not counted.
		p.freeRetry = false
		p.observe(Update{Kind: Info, Step: step, Text: "the transfer failed while iadms was not running; redoing the step"})
		return p.save(ctx)
	}
	p.freeRetry = false
	g := group(step)
	p.rec.Failures[g]++
	if err := p.save(ctx); err != nil {
		return err
	}
	d := Decision{Declined: f.declined, Why: "no retry can help"}
	if !f.final {
		var err error
		d, err = p.opts.Decider.Retry(ctx, Question{
			Device: p.opts.Device, Step: step, Group: g, Failures: p.rec.Failures[g], Failure: *f,
		})
		if err != nil {
			return err
		}
	}
	if !d.Retry {
		status := journal.Failed
		if d.Declined {
			status = journal.Stopped
		}
		reason := f.Error()
		if d.Why != "" {
			reason += " (" + d.Why + ")"
		}
		if f.Cause == CauseReverted {
			reason = "upgrade FAILED: " + reason
		}
		p.noteVersion(ctx)
		p.finish(status, reason)
		return p.save(ctx)
	}
	if d.Force {
		p.rec.Force = true
	}
	p.observe(Update{Kind: Info, Step: step, Text: "retrying " + string(g) + " (" + d.Why + ")"})
	if g == journal.StepUpgrade {
		// Claim 10: go back to the previous software before trying again.
		p.rec.Step = journal.StepRevert
	} else {
		p.rec.Step = g
	}
	return p.save(ctx)
}

func transferCause(c string) bool {
	switch c {
	case mib.FailTimeout.String(), mib.FailServerUnreachable.String(), mib.FailTransferError.String(), mib.FailFileNotFound.String():
		return true
	}
	return false
}

// noteVersion records what the device runs when a run ends in failure,
// for the report (best effort: the device may be unreachable).
func (p *Procedure) noteVersion(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if sw, err := p.dev.Software(ctx); err == nil {
		p.rec.FinalVersion = sw.Version
	}
}

func (p *Procedure) finish(st journal.Status, reason string) {
	p.rec.Status, p.rec.Reason = st, reason
	p.rec.Finished = p.opts.Now()
	p.rec.Pending = nil
	p.observe(Update{Kind: Finished, Step: p.rec.Step, Text: string(st) + optional(reason)})
}

func optional(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func (p *Procedure) observe(u Update) {
	u.Device = p.opts.Device
	if u.Time.IsZero() {
		u.Time = p.opts.Now()
	}
	p.opts.Observer.Update(u)
}

// newIndex picks a random iadOpTable index (1..2^31-1), so that rows of
// different runs and managers do not collide and a notification's index
// names its device.
func newIndex() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint32(b[:]) & 0x7fffffff; v != 0 {
			return v
		}
	}
}
