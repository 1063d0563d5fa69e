// Package plan is the one step engine: harden, `policy apply` and the
// other multi-step changes are plans of typed steps, each of which can
// check the host, apply itself and undo itself. A Runner applies a plan
// (skipping the steps already in place), records every applied step in
// a state file written atomically as it runs, and on the first failure
// undoes what it applied, in reverse order. Check compares every step
// with the host and reports drift.
//
// It never prints: the Runner reports through its Report callback. Steps
// are declared by the modules that own what they change (encfs moves and
// rules, backup schedules, hardening); this package knows none of them.
package plan

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Step is one change of a plan.
//
// ID is stable across runs and unique in a plan (it keys the state
// file). Describe says in one line what Apply does. Check reports
// whether the change is in place (done); when it is not, or is in place
// but no longer as it should be, drift says what is wrong in one line
// (empty when done and fine). err is for a check that could not be made.
// Apply makes the change; Undo reverts an Apply made by this engine.
type Step interface {
	ID() string
	Describe() string
	Check(ctx context.Context) (done bool, drift string, err error)
	Apply(ctx context.Context) error
	Undo(ctx context.Context) error
}

// EventKind says what happened to a step.
type EventKind string

// The events a Runner reports.
const (
	EventUnchanged  EventKind = "unchanged"   // in place already: skipped
	EventApplied    EventKind = "applied"     // applied in this run
	EventFailed     EventKind = "failed"      // Check or Apply failed: the run stops
	EventUndone     EventKind = "undone"      // rolled back after a failure
	EventUndoFailed EventKind = "undo-failed" // could not be rolled back
)

// Event is one report of a Runner.
type Event struct {
	Kind   EventKind
	Step   string // the step's Describe
	ID     string
	Detail string // drift, or the error
}

// Finding is a step compared with the host.
type Finding struct {
	ID       string `json:"id"`
	Step     string `json:"step"`
	Done     bool   `json:"done"`
	Drift    string `json:"drift,omitempty"`
	CheckErr string `json:"error,omitempty"`
}

// OK reports whether the step is in place without drift.
func (f Finding) OK() bool { return f.Done && f.Drift == "" && f.CheckErr == "" }

// StepError is the failure of an apply: which step failed, why, and
// what the rollback did.
type StepError struct {
	Step        string // Describe of the failed step
	ID          string
	Err         error
	Undone      []string // steps rolled back, in the order undone
	RollbackErr error    // steps that could not be undone (their state is kept)
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("step %q failed: %v", e.Step, e.Err)
	switch {
	case e.RollbackErr != nil:
		msg += fmt.Sprintf("; rollback incomplete: %v", e.RollbackErr)
	case len(e.Undone) > 0:
		msg += fmt.Sprintf("; rolled back %d step(s)", len(e.Undone))
	default:
		msg += "; nothing had changed"
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

// ErrDuplicateID: two steps of a plan have the same ID.
var ErrDuplicateID = errors.New("plan: duplicate step id")

func validate(steps []Step) error {
	seen := map[string]bool{}
	for _, s := range steps {
		if s.ID() == "" || seen[s.ID()] {
			return fmt.Errorf("%w %q", ErrDuplicateID, s.ID())
		}
		seen[s.ID()] = true
	}
	return nil
}

// Check compares every step with the host. It stops only if ctx is
// cancelled; a step whose check fails is a finding with CheckErr.
func Check(ctx context.Context, steps []Step) ([]Finding, error) {
	if err := validate(steps); err != nil {
		return nil, err
	}
	out := make([]Finding, 0, len(steps))
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		done, drift, err := s.Check(ctx)
		f := Finding{ID: s.ID(), Step: s.Describe(), Done: done, Drift: drift}
		if err != nil {
			f.CheckErr = oneLine(err)
		}
		out = append(out, f)
	}
	return out, nil
}

// ErrDrift: a check found a step not in place (or not as it should
// be).
var ErrDrift = errors.New("drift")

// Drifted returns the findings that are not OK.
func Drifted(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if !f.OK() {
			out = append(out, f)
		}
	}
	return out
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
