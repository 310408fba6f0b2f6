package procedure

import (
	"context"
	"fmt"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/mib"
)

// Question is what a Decider is asked after a failed step.
type Question struct {
	Device string
	Step   journal.Step
	// Group is the retry unit (backup, upgrade, restore, revert,
	// preflight); Failures counts its failures so far, this one included.
	Group    journal.Step
	Failures int
	Failure  Failure
}

// Decision is a Decider's answer.
type Decision struct {
	Retry bool
	// Declined means the operator said no (the run is "stopped", not
	// "failed").
	Declined bool
	// Why is said in the report ("retry 1 of 3", "operator said no").
	Why string
	// Force lets the retried restore convert across a major
	// configuration format version: the operator's explicit consent.
	Force bool
}

// Decider says whether to retry a failed step.
type Decider interface {
	Retry(ctx context.Context, q Question) (Decision, error)
}

// Never retries nothing.
type Never struct{}

func (Never) Retry(context.Context, Question) (Decision, error) {
	return Decision{Why: "no retries allowed"}, nil
}

// Retries retries each group up to N times.
type Retries struct{ N int }

func (r Retries) Retry(_ context.Context, q Question) (Decision, error) {
	if q.Failure.Cause == mib.FailConfigMajorMismatch.String() {
		return Decision{Why: "the same restore would be refused again; --force-convert converts across a major version"}, nil
	}
	if q.Failures <= r.N {
		return Decision{Retry: true, Why: fmt.Sprintf("retry %d of %d", q.Failures, r.N)}, nil
	}
	return Decision{Why: fmt.Sprintf("%d retries used up", r.N)}, nil
}

// Ask asks the operator; Max bounds the retries per group even if the
// operator keeps saying yes (0 means unbounded).
type Ask struct {
	// Prompt shows question and returns true for yes.
	Prompt func(ctx context.Context, question string) (bool, error)
	Max    int
}

func (a Ask) Retry(ctx context.Context, q Question) (Decision, error) {
	if a.Max > 0 && q.Failures > a.Max {
		return Decision{Why: fmt.Sprintf("%d retries used up", a.Max)}, nil
	}
	if q.Failure.Cause == mib.FailConfigMajorMismatch.String() {
		ok, err := a.Prompt(ctx, fmt.Sprintf("%s: %s failed: %s: %s\n"+
			"The backup's configuration format is of another major version than the new software's.\n"+
			"Retry the restore, converting across the major version (iadOpForce)?", q.Device, q.Step, q.Failure.Cause, q.Failure.Text))
		if err != nil || !ok {
			return Decision{Declined: !ok, Why: "operator declined the forced conversion"}, err
		}
		return Decision{Retry: true, Force: true, Why: "operator said yes to a forced conversion"}, nil
	}
	what := string(q.Group)
	extra := ""
	if q.Group == journal.StepUpgrade {
		extra = " (the device is first reverted to its previous software)"
	}
	ok, err := a.Prompt(ctx, fmt.Sprintf("%s: %s failed: %s: %s\nRetry the %s%s?",
		q.Device, q.Step, q.Failure.Cause, q.Failure.Text, what, extra))
	if err != nil {
		return Decision{}, err
	}
	if !ok {
		return Decision{Declined: true, Why: "operator declined the retry"}, nil
	}
	return Decision{Retry: true, Why: "operator said yes"}, nil
}

// UpdateKind says what an Update reports.
type UpdateKind int

const (
	StepStarted UpdateKind = iota
	Progress
	StepDone
	StepFailed
	Info
	Notification
	Finished
)

// Update is one thing a procedure reports as it goes.
type Update struct {
	Device  string
	Time    time.Time
	Kind    UpdateKind
	Step    journal.Step
	Attempt int
	Percent uint32
	Bytes   uint64
	Text    string
}

// Observer receives updates (the terminal view, a log). Update must not
// block for long.
type Observer interface{ Update(Update) }

type nopObserver struct{}

func (nopObserver) Update(Update) {}

// ObserverFunc adapts a function.
type ObserverFunc func(Update)

func (f ObserverFunc) Update(u Update) { f(u) }
