package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Status of a run, as recorded in the state file.
const (
	StatusRunning        = "running"         // applying (or the process died while it was)
	StatusDone           = "done"            // every step in place
	StatusRolledBack     = "rolled-back"     // a step failed; what this run applied was undone
	StatusRollbackFailed = "rollback-failed" // a step failed and some undo failed too
)

// State is the state file: which plan ran, how it ended, and the steps
// it applied (in order), so that a run killed half way can be resumed or
// rolled back.
type State struct {
	Plan    string    `json:"plan"`
	Status  string    `json:"status"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	Applied []string  `json:"applied"`
	Error   string    `json:"error,omitempty"`
	// Params are the caller's parameters of the run (a policy's values),
	// so that a later check compares the host with the same plan.
	Params map[string]string `json:"params,omitempty"`
}

// ErrPending: the state file records an unfinished run of another plan.
var ErrPending = errors.New("an unfinished run of another plan is recorded")

// Runner applies plans. StatePath may be empty (no state file). Report,
// when set, gets every event as it happens.
type Runner struct {
	StatePath string
	Report    func(Event)
	// Params are recorded in the state file.
	Params map[string]string
}

// Result is what an apply changed.
type Result struct {
	Applied   []string // Describe of the steps applied
	Unchanged []string // Describe of the steps already in place
	Resumed   bool     // an interrupted run of the same plan was continued
}

func (r *Runner) report(e Event) {
	if r.Report != nil {
		r.Report(e)
	}
}

// LoadState reads a state file; a missing file is (nil, nil).
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read plan state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("plan state %s: %w", path, err)
	}
	return &s, nil
}

// save writes the state atomically: a temp file, fsync, rename, fsync of
// the directory. A crash leaves the old or the new state, never half.
func (r *Runner) save(s *State) error {
	if r.StatePath == "" {
		return nil
	}
	s.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(r.StatePath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to write plan state: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(r.StatePath)+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to write plan state: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), r.StatePath)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("failed to write plan state: %w", werr)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Apply applies the steps of plan name in order: each is checked, those in
// place are skipped, the others applied and recorded in the state file.
// On the first failure the steps this run applied are undone in reverse
// order and a *StepError is returned. A state file left "running" by a
// killed run of the same plan is resumed: its recorded steps count as
// applied by this run (a failure undoes them too).
func (r *Runner) Apply(ctx context.Context, name string, steps []Step) (*Result, error) {
	if err := validate(steps); err != nil {
		return nil, err
	}
	res := &Result{}
	st := &State{Plan: name, Status: StatusRunning, Started: time.Now().UTC(), Params: r.Params}
	if r.StatePath != "" {
		old, err := LoadState(r.StatePath)
		if err != nil {
			return nil, err
		}
		if old != nil && (old.Status == StatusRunning || old.Status == StatusRollbackFailed) {
			if old.Plan != name {
				return nil, fmt.Errorf("%w (%s, %s in %s)", ErrPending, old.Plan, old.Status, r.StatePath)
			}
			st.Applied = slices.Clone(old.Applied)
			res.Resumed = len(st.Applied) > 0
		}
	}
	if err := r.save(st); err != nil {
		return nil, err
	}
	byID := map[string]Step{}
	for _, s := range steps {
		byID[s.ID()] = s
	}
	for _, s := range steps {
		err := ctx.Err()
		var done bool
		var drift string
		if err == nil {
			done, drift, err = s.Check(ctx)
		}
		if err == nil && done {
			r.report(Event{Kind: EventUnchanged, Step: s.Describe(), ID: s.ID(), Detail: drift})
			res.Unchanged = append(res.Unchanged, s.Describe())
			continue
		}
		if err == nil {
			err = s.Apply(ctx)
		}
		if err != nil {
			r.report(Event{Kind: EventFailed, Step: s.Describe(), ID: s.ID(), Detail: oneLine(err)})
			return res, r.rollback(st, byID, &StepError{Step: s.Describe(), ID: s.ID(), Err: err})
		}
		if !slices.Contains(st.Applied, s.ID()) {
			st.Applied = append(st.Applied, s.ID())
		}
		if err := r.save(st); err != nil {
			// The step is applied but not recorded: undo it with the rest.
			return res, r.rollback(st, byID, &StepError{Step: s.Describe(), ID: s.ID(), Err: err})
		}
		r.report(Event{Kind: EventApplied, Step: s.Describe(), ID: s.ID()})
		res.Applied = append(res.Applied, s.Describe())
	}
	st.Status = StatusDone
	return res, r.save(st)
}

// rollback undoes st.Applied in reverse order, recording each undo.
// Undo continues past a failed step (it is kept in the state).
func (r *Runner) rollback(st *State, byID map[string]Step, se *StepError) error {
	// Undo runs even when the apply was cancelled: leave nothing half done.
	ctx := context.Background()
	var errs []error
	for i := len(st.Applied) - 1; i >= 0; i-- {
		id := st.Applied[i]
		s, ok := byID[id]
		if !ok {
			errs = append(errs, fmt.Errorf("step %q is recorded but not in the plan", id))
			continue
		}
		if err := s.Undo(ctx); err != nil {
			r.report(Event{Kind: EventUndoFailed, Step: s.Describe(), ID: id, Detail: oneLine(err)})
			errs = append(errs, fmt.Errorf("undo %q: %w", s.Describe(), err))
			continue
		}
		st.Applied = slices.Delete(st.Applied, i, i+1)
		se.Undone = append(se.Undone, s.Describe())
		r.report(Event{Kind: EventUndone, Step: s.Describe(), ID: id})
		if err := r.save(st); err != nil {
			errs = append(errs, err)
		}
	}
	st.Status = StatusRolledBack
	if len(errs) > 0 {
		st.Status = StatusRollbackFailed
		se.RollbackErr = errors.Join(errs...)
	}
	st.Error = oneLine(se.Err)
	if err := r.save(st); err != nil && se.RollbackErr == nil {
		se.RollbackErr = err
	}
	return se
}

// Rollback undoes the steps that the state file records as applied by an
// unfinished run of plan name (one killed half way, or whose rollback
// failed), in reverse order.
func (r *Runner) Rollback(ctx context.Context, name string, steps []Step) ([]string, error) {
	if err := validate(steps); err != nil {
		return nil, err
	}
	st, err := LoadState(r.StatePath)
	if err != nil || st == nil {
		return nil, err
	}
	if st.Plan != name {
		return nil, fmt.Errorf("%w (%s, %s in %s)", ErrPending, st.Plan, st.Status, r.StatePath)
	}
	if st.Status != StatusRunning && st.Status != StatusRollbackFailed {
		return nil, nil
	}
	byID := map[string]Step{}
	for _, s := range steps {
		byID[s.ID()] = s
	}
	se := &StepError{Step: "interrupted run", Err: errors.New("rolled back on request")}
	_ = r.rollback(st, byID, se)
	return se.Undone, se.RollbackErr
}
