package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mysecure/mysecure/internal/plan"
)

// planEvent prints one event of a plan run (policy apply, engine enable):
// what was done, what failed, what was rolled back.
func (p *printer) planEvent(e plan.Event) {
	switch e.Kind {
	case plan.EventApplied:
		fmt.Fprintf(p.out, "done:      %s\n", e.Step)
	case plan.EventFailed:
		fmt.Fprintf(p.out, "failed:    %s: %s\n", e.Step, e.Detail)
	case plan.EventUndone:
		fmt.Fprintf(p.out, "undone:    %s\n", e.Step)
	case plan.EventUndoFailed:
		fmt.Fprintf(p.out, "not undone: %s: %s\n", e.Step, e.Detail)
	}
}

// applyPlan runs steps as plan name with r and prints its events; with
// notify, the daemon is told when a step was applied (rules, categories
// changed). A failed run gets its hint: where the state that could not
// be undone is recorded, or (rolled back) that nothing is left changed,
// with the failed step's own hint. again names the command to run
// again; rolledBack starts the second hint.
func applyPlan(ctx context.Context, g *globalOptions, r *plan.Runner, name string, steps []plan.Step, notify bool, again, rolledBack string) (*plan.Result, error) {
	r.Report = g.p.planEvent
	res, err := r.Apply(ctx, name, steps)
	if notify && res != nil && len(res.Applied) > 0 {
		notifyDaemon(ctx, g)
	}
	var se *plan.StepError
	switch {
	case err == nil:
		return res, nil
	case !errors.As(err, &se):
		return nil, err
	case se.RollbackErr != nil:
		return nil, withHint(err, "what could not be undone is recorded in "+r.StatePath+"; fix the cause and "+again+" (it resumes)")
	}
	_, hint := classify(se.Err)
	return nil, withHint(err, strings.TrimSpace(rolledBack+hint))
}

// checkPlan compares steps with the host and prints header and the plan
// (planFindings): the findings, and how many steps would change.
func (p *printer) checkPlan(ctx context.Context, header string, steps []plan.Step) ([]plan.Finding, int, error) {
	findings, err := plan.Check(ctx, steps)
	if err != nil {
		return nil, 0, err
	}
	fmt.Fprint(p.out, header)
	return findings, p.planFindings(findings), nil
}

// dryRun reports a --dry-run that changed nothing.
func (p *printer) dryRun(changing int) {
	fmt.Fprintf(p.out, "dry run: %d step(s) would change; nothing was changed\n", changing)
}

// planFindings prints a plan compared with the host, one numbered line a
// step, and returns how many steps would change.
func (p *printer) planFindings(findings []plan.Finding) (changing int) {
	for i, f := range findings {
		switch {
		case f.Done:
			fmt.Fprintf(p.out, "%3d. in place:  %s\n", i+1, f.Step)
		case f.CheckErr != "":
			changing++
			fmt.Fprintf(p.out, "%3d. change:    %s (cannot check: %s)\n", i+1, f.Step, f.CheckErr)
		default:
			changing++
			fmt.Fprintf(p.out, "%3d. change:    %s (%s)\n", i+1, f.Step, f.Drift)
		}
	}
	return changing
}
