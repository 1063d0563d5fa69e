package ndb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/internal/plan"
)

// Change is `ndb enable` or `ndb disable` of the selected nodes of this
// host, one node at a time.
type Change struct {
	Planner   *Planner
	Status    *Status
	Selection Selection
	Enable    bool
	// StateDir keeps the plan state of each node (StatePath).
	StateDir string
}

// Verb is "enable" or "disable".
func (c *Change) Verb() string { return verb(c.Enable) }

func verb(enable bool) string {
	if enable {
		return "enable"
	}
	return "disable"
}

// Plans makes the plans with conn. The steps hold the connection by
// value: a caller makes them once without the credential, so that a
// refusal (a running node without Stop) comes before it asks for one,
// then again with it.
func (c *Change) Plans(ctx context.Context, conn admin.Conn) ([]NodePlan, error) {
	c.Planner.Conn = conn
	if c.Enable {
		return c.Planner.Enable(ctx, c.Status, c.Selection)
	}
	return c.Planner.Disable(ctx, c.Status, c.Selection)
}

// ApplyHooks are told of the progress of Change.Apply; each may be nil.
type ApplyHooks struct {
	Begin func(NodePlan)               // a node's plan starts
	Event func(plan.Event)             // the plan runner's events
	Done  func(NodePlan, *plan.Result) // a node's plan was applied
}

// StatePath is the plan state file of node id in stateDir.
func StatePath(stateDir string, id int) string {
	return filepath.Join(stateDir, fmt.Sprintf("node-%d.json", id))
}

// Apply applies plans in order, each node with its own state file, so
// that a node whose step fails is rolled back alone and a run after an
// interruption resumes it. The first step that fails stops it with a
// *NodeError; nodes after it are not touched.
func (c *Change) Apply(ctx context.Context, plans []NodePlan, h ApplyHooks) error {
	for i, p := range plans {
		if h.Begin != nil {
			h.Begin(p)
		}
		r := &plan.Runner{StatePath: StatePath(c.StateDir, p.Node.ID), Report: h.Event}
		res, err := r.Apply(ctx, p.Name, p.Steps)
		var se *plan.StepError
		if errors.As(err, &se) {
			return &NodeError{Node: p.Node.ID, Untouched: len(plans) - i - 1, StatePath: r.StatePath, Step: se, err: err}
		}
		if err != nil {
			return err
		}
		if h.Done != nil {
			h.Done(p, res)
		}
	}
	return nil
}

// NodeError is a node whose plan failed at a step. Unless the rollback
// was incomplete (Step.RollbackErr, recorded in StatePath), the node is
// as it was: files and rules unchanged, running as it was.
type NodeError struct {
	Node      int
	Untouched int // nodes after it, not touched
	StatePath string
	Step      *plan.StepError
	err       error // the runner's error, which holds Step
}

func (e *NodeError) Error() string {
	rest := ""
	if e.Untouched > 0 {
		rest = fmt.Sprintf("; %d node(s) after it were not touched", e.Untouched)
	}
	return fmt.Sprintf("node %d: %v%s", e.Node, e.err, rest)
}

func (e *NodeError) Unwrap() error { return e.err }

// Kinds maps the programs named in b, by absolute path with symlinks
// resolved, to their kinds (for Options.Programs: stand-ins and renamed
// binaries are found among the running processes).
func (b Binaries) Kinds() map[string]string {
	progs := map[string]string{}
	for _, p := range []struct{ path, kind string }{{b.Ndbd, KindData}, {b.Ndbmtd, KindData}, {b.NdbMgmd, KindMgm}} {
		if p.path == "" {
			continue
		}
		if r, err := filepath.EvalSymlinks(p.path); err == nil {
			p.path = r
		}
		if abs, err := filepath.Abs(p.path); err == nil {
			progs[abs] = p.kind
		}
	}
	return progs
}
