package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/procedure"
)

// singleFlags are the flags of backup, restore, reset and revert.
type singleFlags struct {
	common
	files    fileFlags
	traps    trapFlags
	timeouts procedure.Timeouts
}

func (s *singleFlags) register(fs *flag.FlagSet, withFiles bool) {
	s.common.register(fs, false)
	if withFiles {
		s.files.register(fs)
	}
	s.traps.register(fs)
	registerTimeouts(fs, &s.timeouts)
}

// single builds the procedure for one device.
func (e *env) single(ctx context.Context, s *singleFlags, withFiles bool) (*procedure.Procedure, view, func(), error) {
	ts, err := e.targets(false)
	if err != nil {
		return nil, nil, nil, err
	}
	t := ts[0]
	cl, err := e.client(t, false)
	if err != nil {
		return nil, nil, nil, err
	}
	var files procedure.Files
	if withFiles {
		if files, err = e.files(&s.files); err != nil {
			return nil, nil, nil, err
		}
	}
	lis, err := e.listener(ctx, &s.traps)
	if err != nil {
		return nil, nil, nil, err
	}
	var events procedure.Events
	done := func() {}
	if lis != nil {
		sub := lis.Subscribe(t.Addr.Addr())
		events, done = sub, sub.Close
	}
	v, closeView := newView(e.io, 1)
	p := procedure.New(procedure.Options{
		Device: t.Name, Addr: t.Addr, CredRef: t.CredRef,
		Timeouts: s.timeouts, Poll: s.common.poll, Observer: v, WorkDir: s.common.state, Logger: e.log,
	}, cl, files, events)
	return p, v, func() { closeView(); done() }, nil
}

func backupCmd(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	var s singleFlags
	s.register(fs, true)
	out := fs.String("out", "", "also copy the backup archive to `file`")
	if code, ok := parse(fs, args, stdio); !ok {
		return code
	}
	e, err := setup(&s.common, stdio)
	if err != nil {
		return exitFor(stdio, "backup", err)
	}
	defer e.close()
	p, _, done, err := e.single(ctx, &s, true)
	if err != nil {
		return exitFor(stdio, "backup", err)
	}
	b, err := p.BackupOnce(ctx)
	done()
	if err != nil {
		return exitFor(stdio, "backup", err)
	}
	stored := ""
	if s.files.server == "" {
		stored = filepath.Join(s.common.state, "backups", p.Record().Device, b.File)
	}
	fmt.Fprintf(stdio.Stdout, "backup of %s: %s (%d bytes, configuration format %d, software %s)\n",
		p.Record().Device, orName(stored, b.Name), b.Size, b.ConfigFormat, b.SoftwareVersion)
	if *out != "" && stored != "" {
		if err := copyFile(stored, *out); err != nil {
			return exitFor(stdio, "backup", err)
		}
		fmt.Fprintf(stdio.Stdout, "copied to %s\n", *out)
	}
	return ExitOK
}

func orName(path, name string) string {
	if path != "" {
		return path
	}
	return name + " on the server"
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func restoreCmd(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	var s singleFlags
	s.register(fs, true)
	in := fs.String("in", "", "backup archive `file` to restore (made by iadms backup or upgrade)")
	force := fs.Bool("force-convert", false, "let the device convert the configuration across a major format version (iadOpForce)")
	if code, ok := parse(fs, args, stdio); !ok {
		return code
	}
	if *in == "" {
		fmt.Fprintln(stdio.Stderr, "iadms restore: --in FILE is required")
		return ExitUsage
	}
	e, err := setup(&s.common, stdio)
	if err != nil {
		return exitFor(stdio, "restore", err)
	}
	defer e.close()
	p, _, done, err := e.single(ctx, &s, true)
	if err != nil {
		return exitFor(stdio, "restore", err)
	}
	defer done()
	fh, err := os.Open(*in)
	if err != nil {
		return exitFor(stdio, "restore", usageError{err})
	}
	defer fh.Close()
	files := p.Files()
	file := fmt.Sprintf("restore-%s.tar", time.Now().UTC().Format("20060102T150405.000000000"))
	if err := files.StoreBackup(ctx, p.Options().Device, file, fh); err != nil {
		return exitFor(stdio, "restore", err)
	}
	if err := p.RestoreOnce(ctx, file, *force); err != nil {
		return exitFor(stdio, "restore", err)
	}
	fmt.Fprintf(stdio.Stdout, "restored %s on %s\n", *in, p.Options().Device)
	return ExitOK
}

func resetCmd(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("reset", flag.ContinueOnError)
	var s singleFlags
	s.register(fs, false)
	if code, ok := parse(fs, args, stdio); !ok {
		return code
	}
	e, err := setup(&s.common, stdio)
	if err != nil {
		return exitFor(stdio, "reset", err)
	}
	defer e.close()
	p, _, done, err := e.single(ctx, &s, false)
	if err != nil {
		return exitFor(stdio, "reset", err)
	}
	defer done()
	sw, err := p.ResetOnce(ctx)
	if err != nil {
		return exitFor(stdio, "reset", err)
	}
	fmt.Fprintf(stdio.Stdout, "%s is back: running %s from %s (%s)\n", p.Options().Device, sw.Version, sw.Active, sw.Banks[sw.Active].State)
	return ExitOK
}

func revertCmd(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("revert", flag.ContinueOnError)
	var s singleFlags
	s.register(fs, false)
	reset := fs.Bool("reset", false, "reset the device to run the previous software now")
	if code, ok := parse(fs, args, stdio); !ok {
		return code
	}
	e, err := setup(&s.common, stdio)
	if err != nil {
		return exitFor(stdio, "revert", err)
	}
	defer e.close()
	p, _, done, err := e.single(ctx, &s, false)
	if err != nil {
		return exitFor(stdio, "revert", err)
	}
	defer done()
	sw, err := p.RevertOnce(ctx, *reset)
	if err != nil {
		return exitFor(stdio, "revert", err)
	}
	fmt.Fprintf(stdio.Stdout, "%s runs %s from %s; next boot: %s\n", p.Options().Device, sw.Version, sw.Active, sw.Next)
	return ExitOK
}
