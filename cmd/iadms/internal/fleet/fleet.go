package fleet

import (
	"context"
	"fmt"
	"sync"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
)

// Options shape a rollout. Zero values get defaults.
type Options struct {
	// Concurrency is how many devices run at once (default 10).
	Concurrency int
	// Canary is how many devices, from the start of the list, form the
	// first wave; every one must succeed before any other starts.
	Canary int
	// MaxFailPercent halts the rollout when more than this share of the
	// fleet has failed (default 10; 100 never halts).
	MaxFailPercent float64
}

// Outcome is what running one device produced: its journal record, or an
// error if iadms could not take the device to a verdict (canceled,
// journal broken, bad configuration).
type Outcome struct {
	Run journal.Run
	Err error
}

// failed says whether the outcome counts against the stop rule.
func (o Outcome) failed() bool {
	if o.Err != nil {
		return true
	}
	switch o.Run.Status {
	case journal.Succeeded, journal.UpToDate:
		return false
	}
	return true
}

// RunFunc takes one device through its procedure.
type RunFunc func(ctx context.Context, t Target) Outcome

// Notice tells the caller about the rollout as it goes.
type Notice struct {
	Target  Target
	Started bool
	Outcome *Outcome
	// Halt is set once, when the rollout halts, with the reason.
	Halt string
}

// Run rolls fn out over targets and returns the outcomes (in target
// order; a device never started has a nil entry) and, if the rollout
// halted, why.
func Run(ctx context.Context, targets []Target, opts Options, fn RunFunc, notify func(Notice)) ([]*Outcome, string) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 10
	}
	if opts.MaxFailPercent <= 0 {
		opts.MaxFailPercent = 10
	}
	if opts.Canary < 0 || opts.Canary > len(targets) {
		opts.Canary = len(targets)
	}
	if notify == nil {
		notify = func(Notice) {}
	}
	r := &rollout{targets: targets, opts: opts, fn: fn, notify: notify, out: make([]*Outcome, len(targets))}
	r.wave(ctx, 0, opts.Canary, true)
	if r.halt == "" {
		r.wave(ctx, opts.Canary, len(targets), false)
	}
	return r.out, r.halt
}

type rollout struct {
	targets []Target
	opts    Options
	fn      RunFunc
	notify  func(Notice)

	mu     sync.Mutex
	out    []*Outcome
	failed int
	halt   string
}

// wave runs targets[from:to] with the concurrency limit; canary waves
// halt on the first failure, others on the stop rule.
func (r *rollout) wave(ctx context.Context, from, to int, canary bool) {
	sem := make(chan struct{}, r.opts.Concurrency)
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || r.halted() {
			break
		}
		t := r.targets[i]
		r.notify(Notice{Target: t, Started: true})
		wg.Add(1)
		go func(i int, t Target) {
			defer wg.Done()
			defer func() { <-sem }()
			o := r.fn(ctx, t)
			r.done(i, t, o, canary)
		}(i, t)
	}
	wg.Wait()
	if ctx.Err() != nil {
		r.setHalt(fmt.Sprintf("interrupted: %v", context.Cause(ctx)))
	}
}

func (r *rollout) halted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.halt != ""
}

func (r *rollout) setHalt(reason string) {
	r.mu.Lock()
	first := r.halt == ""
	if first {
		r.halt = reason
	}
	r.mu.Unlock()
	if first {
		r.notify(Notice{Halt: reason})
	}
}

func (r *rollout) done(i int, t Target, o Outcome, canary bool) {
	r.mu.Lock()
	r.out[i] = &o
	failed := o.failed()
	if failed {
		r.failed++
	}
	n, total := r.failed, len(r.targets)
	r.mu.Unlock()
	r.notify(Notice{Target: t, Outcome: &o})
	switch {
	case failed && canary:
		r.setHalt(fmt.Sprintf("canary %s failed: %s", t.Name, reason(o)))
	case float64(n)*100 > r.opts.MaxFailPercent*float64(total):
		r.setHalt(fmt.Sprintf("stop rule: %d of %d devices failed (more than %g%%)", n, total, r.opts.MaxFailPercent))
	}
}

func reason(o Outcome) string {
	if o.Err != nil {
		return o.Err.Error()
	}
	if o.Run.Reason != "" {
		return o.Run.Reason
	}
	return string(o.Run.Status)
}
