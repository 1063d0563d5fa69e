package ndb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/internal/plan"
)

// ErrRunning: a node whose files would move runs, and stopping it was
// not asked for.
var ErrRunning = errors.New("the node is running")

// ErrNoNode: the node asked for is not on this host (or unknown).
var ErrNoNode = errors.New("no such node on this host")

// Selection says which nodes and how.
type Selection struct {
	Node        int  // one node by id, or
	AllLocal    bool // every data node of this host
	Stop        bool // stop (and restart) running nodes
	IncludeMgmd bool // also encrypt the local ndb_mgmd's DataDir and allow it
}

// Binaries are the programs the rules allow; "" finds them (the running
// node's program, PATH, next to a running node's program, /usr/sbin).
type Binaries struct {
	Ndbd, Ndbmtd, NdbMgmd string
}

// Planner makes the plans of ndb enable and disable.
type Planner struct {
	Control  *Control
	Conn     admin.Conn
	Category string // "ndbdata"
	Binaries Binaries
	Log      func(string)
}

// NodePlan is the plan of one node: nodes are changed one at a time, each
// plan rolled back on its own.
type NodePlan struct {
	Node  *Node
	Name  string // the plan's name (its state file)
	Steps []plan.Step
}

func (p *Planner) log(format string, a ...any) {
	if p.Log != nil {
		p.Log(fmt.Sprintf(format, a...))
	}
}

// selected returns the local data nodes of sel.
func selected(st *Status, sel Selection) ([]*Node, error) {
	var out []*Node
	switch {
	case sel.AllLocal:
		for _, n := range st.Nodes {
			if n.Kind == KindData && n.Local {
				out = append(out, n)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: no data node found on this host", ErrNoNode)
		}
	default:
		n := st.Node(sel.Node)
		if n == nil {
			return nil, fmt.Errorf("%w: node %d is unknown (not running here, not in config.ini)", ErrNoNode, sel.Node)
		}
		if n.Kind != KindData {
			return nil, fmt.Errorf("%w: node %d is a %s, not a data node", ErrNoNode, n.ID, n.Kind)
		}
		if !n.Local {
			return nil, fmt.Errorf("%w: node %d is on host %s", ErrNoNode, n.ID, n.Host)
		}
		out = append(out, n)
	}
	for _, n := range out {
		if n.DataDir == "" {
			return nil, fmt.Errorf("%w: node %d has no known DataDir (not running, no config.ini)", ErrConfig, n.ID)
		}
	}
	return out, nil
}

func executable(p string) string {
	if p == "" {
		return ""
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return ""
}

// program finds the binary named name: given, the running program of
// that name, next to a running NDB program, in PATH, in /usr/sbin.
func program(given, name string, st *Status) string {
	if given != "" {
		return executable(given)
	}
	for _, n := range st.Nodes {
		if n.Program != "" && filepath.Base(n.Program) == name {
			return executable(n.Program)
		}
	}
	for _, n := range st.Nodes {
		if n.Program != "" {
			if p := executable(filepath.Join(filepath.Dir(n.Program), name)); p != "" {
				return p
			}
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return executable(p)
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/mysql/bin", "/usr/local/sbin"} {
		if p := executable(filepath.Join(d, name)); p != "" {
			return p
		}
	}
	return ""
}

func (p *Planner) rule(dir, prog string) *admin.RuleStep {
	return &admin.RuleStep{Conn: p.Conn, Rule: fmt.Sprintf("ALLOW @%s %s/* %s", p.Category, strings.TrimPrefix(filepath.Clean(dir), "/"), prog)}
}

// nodeSteps returns the moves and rules of one data node (and of the
// local management node with it).
func (p *Planner) nodeSteps(st *Status, n *Node, sel Selection) (moves, rules []plan.Step, err error) {
	var progs []string
	for _, name := range []string{"ndbd", "ndbmtd"} {
		given := p.Binaries.Ndbd
		if name == "ndbmtd" {
			given = p.Binaries.Ndbmtd
		}
		if b := program(given, name, st); b != "" {
			progs = append(progs, b)
		} else if given != "" {
			return nil, nil, fmt.Errorf("%w: %s %s is not an executable file", ErrConfig, name, given)
		} else {
			p.log("%s not found on this host: no rule for it", name)
		}
	}
	if len(progs) == 0 {
		return nil, nil, fmt.Errorf("%w: neither ndbd nor ndbmtd found: name them with --ndbd / --ndbmtd", ErrConfig)
	}
	roots := n.Roots()
	for _, d := range roots {
		moves = append(moves, &admin.EncryptStep{Conn: p.Conn, Category: p.Category, Path: d.Path})
		for _, b := range progs {
			rules = append(rules, p.rule(d.Path, b))
		}
	}
	// ndb_mgmd of this host: allowed on its DataDir when it shares one
	// of the node's directories, or with --include-mgmd.
	for _, m := range st.Nodes {
		if m.Kind != KindMgm || !m.Local || m.DataDir == "" {
			continue
		}
		shared := ""
		for _, d := range roots {
			if m.DataDir == d.Path || strings.HasPrefix(m.DataDir, d.Path+"/") {
				shared = d.Path
			}
		}
		if shared == "" && !sel.IncludeMgmd {
			continue
		}
		if m.Running {
			return nil, nil, fmt.Errorf("%w: ndb_mgmd (node %d, pid %d) uses %s, which would move: stop it first and start it again afterwards", ErrRunning, m.ID, m.Angel.Pid, m.DataDir)
		}
		b := program(p.Binaries.NdbMgmd, "ndb_mgmd", st)
		if b == "" {
			return nil, nil, fmt.Errorf("%w: ndb_mgmd not found: name it with --ndb-mgmd", ErrConfig)
		}
		dir := shared
		if dir == "" {
			dir = m.DataDir
			moves = append(moves, &admin.EncryptStep{Conn: p.Conn, Category: p.Category, Path: dir})
		}
		rules = append(rules, p.rule(dir, b))
	}
	return moves, rules, nil
}

// pending reports whether any step is not in place.
func pending(ctx context.Context, steps []plan.Step) (bool, error) {
	for _, s := range steps {
		done, _, err := s.Check(ctx)
		if err != nil {
			return false, err
		}
		if !done {
			return true, nil
		}
	}
	return false, nil
}

// wrap puts stop and start around the steps when the node runs and a
// step is to be done (a node that does not run is only changed).
func (p *Planner) wrap(ctx context.Context, n *Node, sel Selection, steps []plan.Step) ([]plan.Step, error) {
	if !n.Running {
		return steps, nil
	}
	todo, err := pending(ctx, steps)
	if err != nil || !todo {
		return steps, err
	}
	if !sel.Stop {
		return nil, fmt.Errorf("%w: data node %d (pid %d) must be stopped to move its files, and stopping it was not asked for", ErrRunning, n.ID, n.Angel.Pid)
	}
	if err := p.Control.Mgm.Available(); err != nil {
		return nil, fmt.Errorf("node %d: its restart cannot be confirmed: %w", n.ID, err)
	}
	l, err := LaunchOf(n)
	if err != nil {
		return nil, err
	}
	out := []plan.Step{&StopStep{Control: p.Control, Node: n, Launch: l}}
	out = append(out, steps...)
	return append(out, &StartStep{Control: p.Control, Node: n, Launch: l}), nil
}

// Enable returns the plans of ndb enable: per node, stop it (when it runs
// and something is to change), encrypt its directories into the
// category, add the rules, start it as before.
func (p *Planner) Enable(ctx context.Context, st *Status, sel Selection) ([]NodePlan, error) {
	return p.plans(ctx, st, sel, "enable", func(moves, rules []plan.Step) []plan.Step {
		return append(moves, rules...)
	})
}

// Disable returns the plans of ndb disable: per node, stop it, move its
// directories back, remove the rules, start it as before.
func (p *Planner) Disable(ctx context.Context, st *Status, sel Selection) ([]NodePlan, error) {
	return p.plans(ctx, st, sel, "disable", func(moves, rules []plan.Step) []plan.Step {
		var steps []plan.Step
		for _, m := range moves {
			e := m.(*admin.EncryptStep)
			steps = append(steps, &Inverse{Step: m, Desc: fmt.Sprintf("decrypt %s out of @%s", e.Path, e.Category)})
		}
		for _, r := range rules {
			steps = append(steps, &Inverse{Step: r, Desc: "remove rule: " + r.(*admin.RuleStep).Rule})
		}
		return steps
	})
}

// plans makes one plan per selected node: the steps change makes of the
// node's moves and rules, wrapped in its stop and start.
func (p *Planner) plans(ctx context.Context, st *Status, sel Selection, verb string, change func(moves, rules []plan.Step) []plan.Step) ([]NodePlan, error) {
	nodes, err := selected(st, sel)
	if err != nil {
		return nil, err
	}
	var out []NodePlan
	for _, n := range nodes {
		moves, rules, err := p.nodeSteps(st, n, sel)
		if err != nil {
			return nil, err
		}
		steps, err := p.wrap(ctx, n, sel, change(moves, rules))
		if err != nil {
			return nil, err
		}
		out = append(out, NodePlan{Node: n, Name: fmt.Sprintf("ndb %s node %d", verb, n.ID), Steps: steps})
	}
	return out, nil
}
