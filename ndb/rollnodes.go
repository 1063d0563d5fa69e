package ndb

import (
	"context"
	"fmt"
	"io"
	"strconv"
)

// RollNode is one data node of a rolling change: the host it runs on,
// its node group and the other data nodes of that group (its peers).
type RollNode struct {
	Host  Host
	Node  int
	Group *int
	Peers []int
}

func (n RollNode) label() string { return fmt.Sprintf("%s node %d", n.Host.Name(), n.Node) }

// NodeRoll is a rolling change of data nodes, one node at a time. A node
// group keeps a started node throughout: a node is changed only when
// every peer of its group reports started, and the next node waits until
// this one reports started again. The caller orders Nodes.
type NodeRoll struct {
	Nodes []RollNode
	// Argv is the command that changes one node on its host (`mysecure
	// ndb enable --node ID --stop ...`); it exits 0 when the node is
	// back and started (or was rolled back and the command failed).
	Argv func(RollNode) []string
	// Stdin, when set, gives each command its standard input (the
	// master credential).
	Stdin func() io.Reader
	// Status asks the management server, from host h, what node id is:
	// "started", "not connected" ... (HostStatus does it with ndb_mgm).
	Status func(ctx context.Context, h Host, id int) (string, error)
	// Report, when set, is told of each node as it starts and ends.
	Begin  func(RollNode)
	Report func(RollNode, HostResult)
}

// Run changes the nodes in order. The first node that cannot be changed
// safely (a peer not started), whose command fails, or that does not
// report started afterwards stops the roll with a *RollError naming that
// node, the nodes changed before it and those not touched.
func (r *NodeRoll) Run(ctx context.Context) ([]HostResult, error) {
	var out []HostResult
	var done []string
	stop := func(i int, re *RollError) ([]HostResult, error) {
		re.Host, re.Node, re.Done = r.Nodes[i].Host.Name(), r.Nodes[i].Node, done
		for _, rest := range r.Nodes[i+1:] {
			re.Skipped = append(re.Skipped, rest.label())
		}
		return out, re
	}
	for i, n := range r.Nodes {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if r.Status != nil {
			for _, p := range n.Peers {
				st, err := r.Status(ctx, n.Host, p)
				if err != nil {
					return stop(i, &RollError{Exit: -1, Err: fmt.Errorf("%w: node %d: cannot ask the management server about node %d of its group: %v", ErrGroupDown, n.Node, p, err)})
				}
				if st != "started" {
					return stop(i, &RollError{Exit: -1, Err: fmt.Errorf("%w: node %d of node group %s is %s: stopping node %d would leave the group without a started node", ErrGroupDown, p, group(n.Group), st, n.Node)})
				}
			}
		}
		if r.Begin != nil {
			r.Begin(n)
		}
		var in io.Reader
		if r.Stdin != nil {
			in = r.Stdin()
		}
		stdout, stderr, exit, err := n.Host.Run(ctx, r.Argv(n), in)
		res := HostResult{Host: n.Host.Name(), Exit: exit, Stdout: stdout, Stderr: stderr}
		out = append(out, res)
		if r.Report != nil {
			r.Report(n, res)
		}
		if err != nil || exit != 0 {
			return stop(i, &RollError{Exit: exit, Err: err, Last: lastLine(stderr)})
		}
		if r.Status != nil {
			st, err := r.Status(ctx, n.Host, n.Node)
			if err == nil && st != "started" {
				err = fmt.Errorf("the management server says node %d is %s", n.Node, st)
			}
			if err != nil {
				return stop(i, &RollError{Exit: -1, Err: fmt.Errorf("%w: after the change: %v", ErrNotStarted, err)})
			}
		}
		done = append(done, n.label())
	}
	return out, nil
}

// ErrGroupDown: a node's group has another node that is not started; the
// roll does not stop this one.
var ErrGroupDown = fmt.Errorf("a node of the group is not started")

func group(g *int) string {
	if g == nil {
		return "?"
	}
	return strconv.Itoa(*g)
}

// HostStatus runs the management client mgm (its argv: the program and
// options such as --ndb-connectstring) with -e "ID STATUS" on h and
// returns what it says of node id.
func HostStatus(ctx context.Context, h Host, mgm []string, id int) (string, error) {
	argv := append(append([]string(nil), mgm...), "-e", fmt.Sprintf("%d STATUS", id))
	stdout, stderr, exit, err := h.Run(ctx, argv, nil)
	if err != nil {
		return "", err
	}
	if exit != 0 {
		return "", fmt.Errorf("%w: %s on %s: exit %d: %s", ErrMgmUnreachable, argv[0], h.Name(), exit, lastLine(stdout+stderr))
	}
	return parseStatus(stdout, id)
}
