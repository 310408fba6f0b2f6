package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/device"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/fleet"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/term"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/traps"
	"github.com/iadsafe/iad-agent/mib"
)

func statusCmd(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var c common
	c.register(fs, true)
	if code, ok := parse(fs, args, stdio); !ok {
		return code
	}
	e, err := setup(&c, stdio)
	if err != nil {
		return exitFor(stdio, "status", err)
	}
	defer e.close()
	ts, err := e.targets(true)
	if err != nil {
		return exitFor(stdio, "status", err)
	}
	var jr *journal.Store
	jerr := error(nil)
	if j, err := journal.Open(ctx, filepath.Join(c.state, "journal.db")); err == nil {
		jr = j
		defer j.Close()
	} else {
		jerr = err
	}
	code := ExitOK
	for _, t := range ts {
		cl, err := e.client(t, true)
		if err != nil {
			return exitFor(stdio, "status", err)
		}
		fmt.Fprintf(stdio.Stdout, "%s (%s)\n", t.Name, t.Addr)
		sw, err := cl.Software(ctx)
		if err != nil {
			fmt.Fprintf(stdio.Stdout, "  unreachable: %v\n", err)
			code = ExitFailed
		} else {
			writeSoftware(stdio.Stdout, sw)
			ops, err := cl.Ops(ctx)
			if err != nil {
				fmt.Fprintf(stdio.Stdout, "  operations: %v\n", err)
			}
			for _, op := range ops {
				fmt.Fprintf(stdio.Stdout, "  op %-10d %s\n", op.Index, opLine(op))
			}
		}
		switch {
		case jr != nil:
			r, ok, err := jr.Get(ctx, t.Name)
			switch {
			case err != nil:
				fmt.Fprintf(stdio.Stdout, "  journal: %v\n", err)
			case ok:
				d := fleet.DeviceFromRun(r)
				fmt.Fprintf(stdio.Stdout, "  iadms run %s: %s at step %s, %s -> %s", r.RunID, r.Status, r.Step, orDash(d.OldVersion), r.Image.Version)
				if r.Reason != "" {
					fmt.Fprintf(stdio.Stdout, ": %s", r.Reason)
				}
				fmt.Fprintln(stdio.Stdout)
			}
		case errors.Is(jerr, journal.ErrLocked):
			fmt.Fprintf(stdio.Stdout, "  journal: in use by a running iadms\n")
		}
	}
	return code
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeSoftware(w io.Writer, sw device.Software) {
	fmt.Fprintf(w, "  software  %s from %s (%s), next boot %s, trial tries left %d, boot limit %d, hardware %s, up %s\n",
		sw.Version, sw.Active, sw.Banks[sw.Active].State, sw.Next, sw.TriesLeft, sw.BootLimit, sw.Hardware, sw.Uptime.Round(time.Second))
	for _, b := range []mib.Bank{mib.BankA, mib.BankB} {
		fmt.Fprintf(w, "  %-9s %-12s %s\n", b, orDash(sw.Banks[b].Version), sw.Banks[b].State)
	}
}

func opLine(op device.Op) string {
	s := fmt.Sprintf("%-13s %-10s %3d%% %d bytes", op.Type, op.State, op.Progress, op.Bytes)
	if op.File != "" {
		s += " file " + op.File
	}
	if op.State == mib.OpFailed {
		s += fmt.Sprintf(" — %s: %s", op.FailCause, op.FailText)
	}
	return s
}

func watchCmd(ctx context.Context, args []string, stdio IO) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	var c common
	var tf trapFlags
	c.register(fs, true)
	tf.register(fs)
	forDur := fs.Duration("for", 0, "stop after this long (default: until interrupted)")
	if code, ok := parse(fs, args, stdio); !ok {
		return code
	}
	e, err := setup(&c, stdio)
	if err != nil {
		return exitFor(stdio, "watch", err)
	}
	defer e.close()
	ts, err := e.targets(true)
	if err != nil {
		return exitFor(stdio, "watch", err)
	}
	if *forDur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *forDur)
		defer cancel()
	}
	lis, err := e.listener(ctx, &tf)
	if err != nil {
		return exitFor(stdio, "watch", err)
	}
	w := &watcher{out: stdio.Stdout, tty: term.IsTerminal(stdio.Stdout), state: map[string]*watchState{}}
	var wg sync.WaitGroup
	for _, t := range ts {
		cl, err := e.client(t, true)
		if err != nil {
			return exitFor(stdio, "watch", err)
		}
		w.state[t.Name] = &watchState{t: t, ops: map[uint32]device.Op{}}
		wg.Add(1)
		go func(t target, cl *device.Client) {
			defer wg.Done()
			w.poll(ctx, t, cl, c.poll)
		}(t, cl)
	}
	if lis != nil {
		tap := lis.Tap()
		defer tap.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case ev := <-tap.C():
					w.event(ev)
				}
			}
		}()
	}
	wg.Wait()
	return ExitOK
}

// watcher prints what changes on the watched devices.
type watcher struct {
	out   io.Writer
	tty   bool
	mu    sync.Mutex
	state map[string]*watchState
	notes []string
}

type watchState struct {
	t     target
	sw    string
	ops   map[uint32]device.Op
	err   string
	lines []string
}

func (w *watcher) poll(ctx context.Context, t target, cl *device.Client, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		sw, swErr := cl.Software(ctx)
		ops, opsErr := cl.Ops(ctx)
		if ctx.Err() != nil {
			return
		}
		w.update(t, sw, swErr, ops, opsErr)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *watcher) update(t target, sw device.Software, swErr error, ops []device.Op, opsErr error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.state[t.Name]
	now := time.Now().Format("15:04:05")
	if err := errors.Join(swErr, opsErr); err != nil {
		if st.err == "" {
			w.printf("%s %s: unreachable: %v", now, t.Name, err)
		}
		st.err = err.Error()
		w.redraw()
		return
	}
	if st.err != "" {
		w.printf("%s %s: reachable again", now, t.Name)
		st.err = ""
	}
	s := fmt.Sprintf("%s from %s (%s), next %s", sw.Version, sw.Active, sw.Banks[sw.Active].State, sw.Next)
	if s != st.sw {
		w.printf("%s %s: software %s", now, t.Name, s)
		st.sw = s
	}
	for _, op := range ops {
		old, seen := st.ops[op.Index]
		if !seen || old.State != op.State || old.Progress/25 != op.Progress/25 {
			w.printf("%s %s: op %d %s", now, t.Name, op.Index, opLine(op))
		}
		st.ops[op.Index] = op
	}
	w.redraw()
}

// event prints a notification, naming the device it came from when the
// source address or the operation index tells.
func (w *watcher) event(ev traps.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var names []string
	for name, st := range w.state {
		if _, ok := st.ops[ev.Index]; ok && ev.Index != 0 {
			names = []string{name}
			break
		}
		if st.t.Addr.Addr().Unmap() == ev.From {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	who := "?"
	switch {
	case len(names) == 1:
		who = names[0]
	case len(names) > 1:
		who = strings.Join(names, "|")
	}
	w.printf("%s %s: notification %s", ev.Received.Format("15:04:05"), who, ev)
}

func (w *watcher) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if !w.tty {
		fmt.Fprintln(w.out, line)
		return
	}
	w.notes = append(w.notes, line)
	if len(w.notes) > 15 {
		w.notes = w.notes[len(w.notes)-15:]
	}
}

// redraw repaints the whole view on a terminal.
func (w *watcher) redraw() {
	if !w.tty {
		return
	}
	fmt.Fprint(w.out, "\x1b[H\x1b[2J")
	tw := tabwriter.NewWriter(w.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tADDRESS\tSOFTWARE\tLATEST OPERATION")
	names := make([]string, 0, len(w.state))
	for n := range w.state {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st := w.state[n]
		sw := st.sw
		if st.err != "" {
			sw = "unreachable"
		}
		var latest string
		var idx []uint32
		for i := range st.ops {
			idx = append(idx, i)
		}
		sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
		for _, i := range idx {
			if op := st.ops[i]; op.State == mib.OpRunning || latest == "" {
				latest = fmt.Sprintf("%d %s", i, opLine(op))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, st.t.Addr, sw, latest)
	}
	tw.Flush()
	fmt.Fprintln(w.out, "\nrecent:")
	for _, l := range w.notes {
		fmt.Fprintln(w.out, "  "+l)
	}
}
