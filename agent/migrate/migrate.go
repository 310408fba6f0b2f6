// Package migrate brings a configuration to the format of the running
// software and makes it live: it converts a restored backup (Restore) or
// the live configuration itself at start-up (AtStart), validates the
// result, swaps it in atomically, asks the device's services to reload,
// and puts the previous configuration back if they refuse. It keeps the
// configuration it converted away from, per format, so that software of
// that format (the other bank, after a revert) finds its own again.
//
// It joins agent/config (bytes on disk) and agent/iadconfig (what they
// mean). It must never leave the live configuration half-converted, never
// apply a configuration that failed validation, and never put a secret
// into an error or a log record: a reload hook's output is scrubbed of
// every secret of the configurations involved.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"

	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

// Errors; match them with errors.Is. Errors of iadconfig (ErrTooNew,
// ErrMajorMismatch, ErrConvert, ErrInvalid, ErrUnknownFormat) pass through
// wrapped.
var (
	// ErrReload means the reload hook rejected the new configuration;
	// the previous one is live again.
	ErrReload = errors.New("migrate: reload hook failed; previous configuration restored")
	// ErrApply means the new configuration could not be swapped in.
	ErrApply = errors.New("migrate: applying the configuration failed")
	// ErrNoKept means the live configuration is newer than the running
	// software and no configuration of the running format is kept.
	ErrNoKept = errors.New("migrate: no configuration kept in the running format")
)

// Reloader tells the device's services that the live configuration
// changed. An error means they cannot use it.
type Reloader interface {
	Reload(ctx context.Context, r ReloadRequest) (output string, err error)
}

// ReloadRequest describes one reload.
type ReloadRequest struct {
	// Reason is "restore", "start" (conversion at start-up) or "rollback"
	// (the previous configuration is back after a refused one).
	Reason string
	// Format is the format of the configuration now live.
	Format uint32
	// Dir is the live configuration directory.
	Dir string
}

// Options configure a Migrator.
type Options struct {
	Store *config.Store // required
	// Registry holds the formats and converters; default iadconfig.Default().
	Registry *iadconfig.Registry
	// Reloader is told about every change of the live configuration; nil
	// means nothing needs telling.
	Reloader Reloader
	Logger   *slog.Logger
}

// Migrator converts and applies configurations of one store.
type Migrator struct {
	store  *config.Store
	reg    *iadconfig.Registry
	reload Reloader
	log    *slog.Logger
}

// New returns a Migrator.
func New(o Options) (*Migrator, error) {
	if o.Store == nil {
		return nil, errors.New("migrate: Options.Store is nil")
	}
	if o.Registry == nil {
		o.Registry = iadconfig.Default()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Migrator{store: o.Store, reg: o.Registry, reload: o.Reloader, log: o.Logger}, nil
}

// Result says what a Restore or AtStart did.
type Result struct {
	From, To  uint32 // format of the source and of what is live now
	Converted bool   // the source was converted
	Applied   bool   // the live configuration changed
}

func stagedReader(st *config.Staged) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		b, err := st.ReadFile(name, iadconfig.MaxFileSize)
		if errors.Is(err, config.ErrTooLarge) {
			return nil, &iadconfig.SyntaxError{File: name, Msg: fmt.Sprintf("larger than %d bytes", iadconfig.MaxFileSize)}
		}
		return b, err
	}
}

// LiveFormat returns the format of the live configuration.
func (m *Migrator) LiveFormat() (uint32, error) {
	return iadconfig.DetectFormat(func(name string) ([]byte, error) {
		return m.store.ReadLiveFile(name, iadconfig.MaxFileSize)
	})
}

// liveSecrets returns the secrets of the live configuration, if it reads.
func (m *Migrator) liveSecrets() []string {
	d, err := m.reg.Decode(func(name string) ([]byte, error) { return m.store.ReadLiveFile(name, iadconfig.MaxFileSize) })
	if err != nil {
		return nil
	}
	return d.Secrets()
}

// Restore makes a staged backup the live configuration of software that
// uses format running. A backup of an older format is converted (across
// a major version only with force); a newer one is refused. The backup is
// validated in its own format, and again after conversion; every problem
// is logged with its file and field. The configuration is swapped in
// atomically and the reloader asked to take it; if it refuses, the
// previous configuration is put back (ErrReload). After a conversion, the
// backup as it was is kept for software of its format. st is consumed.
func (m *Migrator) Restore(ctx context.Context, st *config.Staged, running uint32, force bool) (res Result, err error) {
	defer st.Discard() // a no-op once applied or kept
	src, err := m.reg.Decode(stagedReader(st))
	if err != nil {
		return res, m.logProblems("backup", err)
	}
	res.From, res.To = src.Format, running
	if mf := st.Manifest().ConfigFormat; mf != 0 && mf != src.Format {
		m.log.Warn("backup manifest names another config format than its files; the files decide", "manifest", mf, "files", src.Format)
	}
	if _, err := m.reg.Plan(src.Format, running, force); err != nil {
		return res, err
	}
	if ps := m.reg.Validate(src); ps != nil {
		return res, m.logProblems(fmt.Sprintf("backup (format %d)", src.Format), ps)
	}
	target := st
	secrets := append(src.Secrets(), m.liveSecrets()...)
	if src.Format != running {
		target, err = m.convert(ctx, st, src, running, force)
		if err != nil {
			return res, err
		}
		defer target.Discard()
		res.Converted = true
		m.log.Info("backup converted", "from", src.Format, "to", running, "forced", force && m.reg.IsMajor(src.Format, running))
	}
	if err := m.apply(ctx, target, "restore", running, secrets); err != nil {
		return res, err
	}
	res.Applied = true
	if res.Converted {
		// The backup as it was, for software of its format (a revert).
		if err := st.Keep(ctx, src.Format); err != nil {
			m.log.Warn("could not keep the pre-conversion configuration", "format", src.Format, "err", err)
		}
	}
	return res, nil
}

// convert converts src (read from st) to format to and returns a staged
// configuration holding the result plus every file of st that is not a
// model file.
func (m *Migrator) convert(ctx context.Context, st *config.Staged, src *iadconfig.Doc, to uint32, force bool) (*config.Staged, error) {
	dst, err := m.reg.Convert(src, to, force)
	if err != nil {
		return nil, err
	}
	if ps := m.reg.Validate(dst); ps != nil {
		return nil, m.logProblems(fmt.Sprintf("converted configuration (format %d)", to), ps)
	}
	files, err := m.reg.Encode(dst)
	if err != nil {
		return nil, err
	}
	srcFormat, _ := m.reg.Format(src.Format)
	modes := map[string]fs.FileMode{}
	common := fs.FileMode(0o777)
	for _, f := range st.Manifest().Files {
		modes[f.Name] = fs.FileMode(f.Mode)
		if slices.Contains(srcFormat.Files, f.Name) {
			common &= fs.FileMode(f.Mode)
		}
	}
	changes := map[string]config.FileChange{}
	for _, name := range srcFormat.Files {
		if _, ok := modes[name]; ok {
			changes[name] = config.FileChange{Remove: true}
		}
	}
	for name, data := range files {
		mode, had := modes[name]
		if had && !slices.Contains(srcFormat.Files, name) {
			return nil, fmt.Errorf("%w: the backup holds a file %s, which is a model file of format %d", iadconfig.ErrConvert, name, to)
		}
		if !had {
			mode = common
		}
		changes[name] = config.FileChange{Data: data, Mode: mode | 0o400}
	}
	derived, err := st.Derive(ctx, changes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrApply, err)
	}
	return derived, nil
}

// apply swaps target in, runs the reloader, and commits or rolls back.
func (m *Migrator) apply(ctx context.Context, target *config.Staged, reason string, format uint32, secrets []string) error {
	p, err := target.ApplyPending(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrApply, err)
	}
	if m.reload != nil {
		out, rerr := m.reload.Reload(ctx, ReloadRequest{Reason: reason, Format: format, Dir: m.store.LiveDir()})
		out = iadconfig.Redact(out, secrets)
		if rerr != nil {
			msg := iadconfig.Redact(rerr.Error(), secrets)
			m.log.Warn("reload hook refused the new configuration; restoring the previous one", "reason", reason, "err", msg, "output", out)
			if err := p.Rollback(context.WithoutCancel(ctx)); err != nil {
				return fmt.Errorf("%w: %s; and the rollback failed: %w", ErrApply, msg, err)
			}
			if _, err := m.reload.Reload(context.WithoutCancel(ctx), ReloadRequest{Reason: "rollback", Dir: m.store.LiveDir()}); err != nil {
				m.log.Error("reload hook failed on the restored previous configuration", "err", iadconfig.Redact(err.Error(), secrets))
			}
			return fmt.Errorf("%w: %s", ErrReload, msg)
		}
		if out != "" {
			m.log.Info("reload hook output", "output", out)
		}
	}
	if err := p.Commit(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrApply, err)
	}
	return nil
}

// AtStart brings the live configuration to format running, once, before
// the software uses it. An older live configuration is converted (major
// steps included: installing the software was the operator's decision)
// and kept as it was for software of its format; a newer one is replaced
// by the configuration kept for format running, if there is one (a
// revert). A configuration that cannot be converted or fails validation
// is left as it is and the error returned.
func (m *Migrator) AtStart(ctx context.Context, running uint32) (res Result, err error) {
	live, err := m.LiveFormat()
	if err != nil {
		return res, err
	}
	res.From, res.To = live, live
	switch {
	case live == running:
		return res, nil
	case live < running:
		return m.upgradeLive(ctx, live, running)
	default:
		return m.revertLive(ctx, live, running)
	}
}

func (m *Migrator) upgradeLive(ctx context.Context, from, to uint32) (res Result, err error) {
	res.From, res.To = from, from
	st, err := m.store.StageLive(ctx)
	if err != nil {
		return res, err
	}
	defer st.Discard()
	src, err := m.reg.Decode(stagedReader(st))
	if err != nil {
		return res, m.logProblems("live configuration", err)
	}
	if ps := m.reg.Validate(src); ps != nil {
		return res, m.logProblems(fmt.Sprintf("live configuration (format %d)", src.Format), ps)
	}
	target, err := m.convert(ctx, st, src, to, true)
	if err != nil {
		return res, err
	}
	defer target.Discard()
	// Keep the original first: if the power fails after the swap, the
	// old format's configuration must already be safe.
	if err := st.Keep(ctx, from); err != nil {
		return res, fmt.Errorf("%w: keeping the format %d configuration: %w", ErrApply, from, err)
	}
	if err := m.apply(ctx, target, "start", to, src.Secrets()); err != nil {
		return res, err
	}
	m.log.Info("live configuration converted for the running software", "from", from, "to", to, "kept", from)
	return Result{From: from, To: to, Converted: true, Applied: true}, nil
}

func (m *Migrator) revertLive(ctx context.Context, from, to uint32) (res Result, err error) {
	res.From, res.To = from, from
	st, err := m.store.StageKept(ctx, to)
	if errors.Is(err, config.ErrNotKept) {
		return res, fmt.Errorf("%w: live configuration is format %d, the running software uses %d", ErrNoKept, from, to)
	}
	if err != nil {
		return res, err
	}
	defer st.Discard()
	kept, err := m.reg.Decode(stagedReader(st))
	if err != nil {
		return res, m.logProblems("kept configuration", err)
	}
	if kept.Format != to {
		return res, fmt.Errorf("%w: the configuration kept for format %d is format %d", iadconfig.ErrUnknownFormat, to, kept.Format)
	}
	if ps := m.reg.Validate(kept); ps != nil {
		return res, m.logProblems(fmt.Sprintf("kept configuration (format %d)", to), ps)
	}
	if err := m.apply(ctx, st, "start", to, append(kept.Secrets(), m.liveSecrets()...)); err != nil {
		return res, err
	}
	m.log.Info("configuration of the running format brought back", "was", from, "now", to)
	return Result{From: from, To: to, Applied: true}, nil
}

// logProblems logs every problem of a Problems error and returns it
// wrapped with what was checked; other errors pass through wrapped.
func (m *Migrator) logProblems(what string, err error) error {
	var ps iadconfig.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			m.log.Warn("configuration problem", "in", what, "problem", p)
		}
		return &InvalidError{What: what, Problems: ps}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// InvalidError is a configuration that failed validation: what was
// checked, and every problem. It matches iadconfig.ErrInvalid.
type InvalidError struct {
	What     string
	Problems iadconfig.Problems
}

func (e *InvalidError) Error() string { return e.What + ": " + e.Problems.Error() }

// Unwrap gives the problems.
func (e *InvalidError) Unwrap() error { return e.Problems }

// Summary fits the error into max bytes, problem by problem.
func (e *InvalidError) Summary(max int) string {
	head := e.What + ": "
	if len(head) >= max/2 {
		head = ""
	}
	return head + e.Problems.Summary(max-len(head))
}
