package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/convert"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/fleet"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/procedure"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/term"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/traps"
	"github.com/iadsafe/iad-agent/image"
)

type upgradeFlags struct {
	common
	files       fileFlags
	traps       trapFlags
	timeouts    procedure.Timeouts
	image       string
	retries     int
	yes         bool
	concurrency int
	canary      int
	maxFail     float64
	report      string
	convert     string
	force       bool
	forceConv   bool
	abandon     bool
	trust       string
}

func upgradeCmd(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("upgrade", flag.ContinueOnError)
	var f upgradeFlags
	f.common.register(fs, true)
	f.files.register(fs)
	f.traps.register(fs)
	registerTimeouts(fs, &f.timeouts)
	fs.StringVar(&f.image, "image", "", "signed image `file` to install")
	fs.IntVar(&f.retries, "retries", 0, "retry a failed step up to `N` times without asking (a failed upgrade is retried after reverting the device)")
	fs.BoolVar(&f.yes, "yes", false, "unattended: answer yes to every question (retries default to 3)")
	fs.IntVar(&f.concurrency, "concurrency", 10, "fleet: devices upgraded at once")
	fs.IntVar(&f.canary, "canary", 1, "fleet: the first `N` devices must all succeed before the others start")
	fs.Float64Var(&f.maxFail, "max-fail", 10, "fleet: halt when more than this `percent` of the devices has failed")
	fs.StringVar(&f.report, "report", "", "also write the report as JSON to `file`")
	fs.StringVar(&f.convert, "convert", "", "configuration converter `command`, run as COMMAND FROM TO DIR when the new software expects another configuration format")
	fs.BoolVar(&f.force, "force", false, "upgrade a device even if it already runs the image's version")
	fs.BoolVar(&f.forceConv, "force-convert", false, "let restores convert the configuration across a major format version (iadOpForce)")
	fs.BoolVar(&f.abandon, "abandon", false, "abandon unfinished runs of another image instead of refusing")
	fs.StringVar(&f.trust, "trust", "", "public `key` file: verify every image (signature and payload) before starting")
	if code, ok := parse(fs, args, stdio); !ok {
		return code
	}
	retriesSet := false
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "retries" {
			retriesSet = true
		}
	})
	if f.image == "" {
		fmt.Fprintln(stdio.Stderr, "iadms upgrade: --image FILE is required")
		return ExitUsage
	}
	if f.retries < 0 || f.concurrency < 1 || f.canary < 0 || f.maxFail <= 0 || f.maxFail > 100 {
		fmt.Fprintln(stdio.Stderr, "iadms upgrade: --retries, --canary must be >= 0, --concurrency >= 1, --max-fail in (0, 100]")
		return ExitUsage
	}
	if f.yes && !retriesSet {
		f.retries, retriesSet = 3, true
	}
	e, err := setup(&f.common, stdio)
	if err != nil {
		return exitFor(stdio, "upgrade", err)
	}
	defer e.close()
	code, err := e.upgrade(ctx, &f, retriesSet)
	if err != nil {
		return exitFor(stdio, "upgrade", err)
	}
	return code
}

// imageInfo is one image file of the run.
type imageInfo struct {
	ref journal.Image
	hdr image.Header
	err error // the image failed --trust verification
}

func readImage(path string, trusted []ed25519.PublicKey) (imageInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return imageInfo{}, usageError{err}
	}
	fh, err := os.Open(abs)
	if err != nil {
		return imageInfo{}, usageError{fmt.Errorf("image: %w", err)}
	}
	defer fh.Close()
	h, _, err := image.ReadHeader(fh)
	if err != nil {
		return imageInfo{}, usageError{fmt.Errorf("image %s: %w", path, err)}
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return imageInfo{}, err
	}
	sum := sha256.New()
	size, err := io.Copy(sum, fh)
	if err != nil {
		return imageInfo{}, fmt.Errorf("image %s: %w", path, err)
	}
	info := imageInfo{
		ref: journal.Image{Path: abs, Version: h.Version, ConfigFormat: h.ConfigFormat, SHA256: hex.EncodeToString(sum.Sum(nil)), Size: size},
		hdr: h,
	}
	if len(trusted) > 0 {
		if _, err := fh.Seek(0, io.SeekStart); err != nil {
			return imageInfo{}, err
		}
		r, err := image.NewReader(fh, image.Options{Trusted: trusted})
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		info.err = err
	}
	return info, nil
}

func (e *env) upgrade(ctx context.Context, f *upgradeFlags, retriesSet bool) (int, error) {
	ts, err := e.targets(true)
	if err != nil {
		return 0, err
	}
	var trusted []ed25519.PublicKey
	if f.trust != "" {
		k, err := image.LoadPublicKey(f.trust)
		if err != nil {
			return 0, usageError{err}
		}
		trusted = append(trusted, k)
	}
	images := map[string]imageInfo{}
	for _, p := range append([]string{f.image}, imagePaths(ts)...) {
		if _, ok := images[p]; ok {
			continue
		}
		info, err := readImage(p, trusted)
		if err != nil {
			return 0, err
		}
		if info.err != nil {
			fmt.Fprintf(e.io.Stderr, "iadms upgrade: image %s does not verify: %v\n", p, info.err)
		}
		images[p] = info
	}
	jr, err := journal.Open(ctx, filepath.Join(e.c.state, "journal.db"))
	if err != nil {
		return 0, err
	}
	e.closers = append(e.closers, func() { jr.Close() })
	if err := e.checkUnfinished(ctx, jr, ts, images, f); err != nil {
		return 0, err
	}
	files, err := e.files(&f.files)
	if err != nil {
		return 0, err
	}
	lis, err := e.listener(ctx, &f.traps)
	if err != nil {
		return 0, err
	}
	isFleet := f.c().targets != ""
	v, closeView := newView(e.io, len(ts))
	interactive := !isFleet && !retriesSet && term.IsTerminal(e.io.Stdin)
	var decider procedure.Decider = procedure.Never{}
	var conv, fallback convert.Converter
	if f.convert != "" {
		conv = convert.Command{Argv: strings.Fields(f.convert), Logger: e.log}
	}
	switch {
	case retriesSet:
		decider = procedure.Retries{N: f.retries}
	case interactive:
		pr := term.NewPrompter(e.io.Stdin, e.io.Stdout)
		if b, ok := v.(*term.Bars); ok {
			pr.SetPause(b.Pause)
		}
		decider = procedure.Ask{Prompt: pr.Ask}
		fallback = convert.Manual{Ask: pr.Ask}
	}
	if lis == nil {
		v.Print("notifications off: polling only")
	}
	started := time.Now()
	run := func(ctx context.Context, t fleet.Target) fleet.Outcome {
		return e.upgradeOne(ctx, t, findTarget(ts, t.Name), images, f, jr, files, lis, decider, conv, fallback, v)
	}
	opts := fleet.Options{Concurrency: f.concurrency, Canary: f.canary, MaxFailPercent: f.maxFail}
	if !isFleet {
		opts = fleet.Options{Concurrency: 1, Canary: 0, MaxFailPercent: 100}
	}
	fts := make([]fleet.Target, len(ts))
	for i, t := range ts {
		fts[i] = t.Target
	}
	outs, halt := fleet.Run(ctx, fts, opts, run, func(n fleet.Notice) {
		if n.Halt != "" {
			v.Print("HALT: %s", n.Halt)
		}
	})
	closeView()
	rep := fleet.Build(fts, outs, halt, started, time.Now())
	if ctx.Err() != nil {
		rep.HaltReason = "interrupted: run the same command again to resume"
	}
	fmt.Fprintln(e.io.Stdout)
	if err := rep.WriteTable(e.io.Stdout); err != nil {
		return 0, err
	}
	if f.report != "" {
		if err := writeJSON(f.report, rep); err != nil {
			return 0, err
		}
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	for _, o := range outs {
		if o != nil && o.Err != nil {
			var ue usageError
			if errors.As(o.Err, &ue) || errors.Is(o.Err, procedure.ErrOtherRun) {
				return 0, o.Err
			}
		}
	}
	if rep.Failed > 0 || rep.Skipped > 0 {
		return ExitFailed, nil
	}
	return ExitOK, nil
}

func (f *upgradeFlags) c() *common { return &f.common }

func imagePaths(ts []target) []string {
	var out []string
	for _, t := range ts {
		if t.Image != "" {
			out = append(out, t.Image)
		}
	}
	return out
}

func findTarget(ts []target, name string) target {
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	return target{}
}

// checkUnfinished refuses (or, with --abandon, closes) unfinished runs of
// another image, before anything is sent to any device.
func (e *env) checkUnfinished(ctx context.Context, jr *journal.Store, ts []target, images map[string]imageInfo, f *upgradeFlags) error {
	var msgs []string
	for _, t := range ts {
		r, ok, err := jr.Get(ctx, t.Name)
		if err != nil {
			return err
		}
		img := images[imageFor(t, f)]
		if !ok || r.Status.Finished() || r.Image.SHA256 == img.ref.SHA256 {
			continue
		}
		if f.abandon {
			r.Status, r.Reason, r.Finished = journal.Failed, "abandoned by the operator (--abandon)", time.Now()
			r.Pending = nil
			if err := jr.Put(ctx, r); err != nil {
				return err
			}
			e.log.Warn("abandoned an unfinished run", "device", t.Name, "run", r.RunID, "step", r.Step)
			continue
		}
		msgs = append(msgs, fmt.Sprintf("%s is at step %s of run %s installing %s", t.Name, r.Step, r.RunID, r.Image.Version))
	}
	if len(msgs) > 0 {
		return usagef("unfinished runs with another image (finish them with that image, or use --abandon):\n  %s", strings.Join(msgs, "\n  "))
	}
	return nil
}

func imageFor(t target, f *upgradeFlags) string {
	if t.Image != "" {
		return t.Image
	}
	return f.image
}

func (e *env) upgradeOne(ctx context.Context, ft fleet.Target, t target, images map[string]imageInfo, f *upgradeFlags,
	jr *journal.Store, files procedure.Files, lis *traps.Listener, decider procedure.Decider, conv, fallback convert.Converter, v view) fleet.Outcome {
	img := images[imageFor(t, f)]
	if img.err != nil {
		return fleet.Outcome{Run: journal.Run{
			Device: t.Name, Address: t.Addr.String(), Image: img.ref, Status: journal.Failed,
			Reason: fmt.Sprintf("preflight failed: the image %s does not verify: %v", filepath.Base(img.ref.Path), img.err),
		}}
	}
	cl, err := e.client(t, false)
	if err != nil {
		return fleet.Outcome{Err: err}
	}
	var events procedure.Events
	if lis != nil {
		sub := lis.Subscribe(t.Addr.Addr())
		defer sub.Close()
		events = sub
	}
	p := procedure.New(procedure.Options{
		Device: t.Name, Addr: t.Addr, CredRef: t.CredRef,
		Image: img.ref, Hardware: img.hdr.Hardware,
		// The new software's configuration format: the device's
		// iadConfigFormat.0, or the image header for agents without it.
		Format:       convert.ImageFormat{Header: img.hdr},
		Converter:    conv,
		Fallback:     fallback,
		ForceConvert: f.forceConv,
		Timeouts:     f.timeouts,
		Poll:         f.common.poll,
		Decider:      decider,
		Observer:     v,
		Journal:      jr,
		WorkDir:      f.common.state,
		Force:        f.force,
		Logger:       e.log,
	}, cl, files, events)
	r, err := p.Run(ctx)
	return fleet.Outcome{Run: r, Err: err}
}

func writeJSON(path string, rep fleet.Report) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(fh); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}
