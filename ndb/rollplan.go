package ndb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Errors of planning a roll; nothing was changed when they occur.
var (
	// ErrRollHosts: a --hosts entry is empty, repeated, or names a
	// node id that is not one.
	ErrRollHosts = errors.New("bad host list")
	// ErrNoDataNode: a host has no data node of its own to change.
	ErrNoDataNode = errors.New("no data node on that host")
	// ErrNotDataNode: a node named for a host is not a data node there.
	ErrNotDataNode = errors.New("not a data node there")
	// ErrNodeTwice: one node id is named on two hosts.
	ErrNodeTwice = errors.New("node named on two hosts")
)

// RollHost is one host of a roll as given: its SSH name and the data
// node ids to change on it (nil: the host's own data nodes).
type RollHost struct {
	Spec  string
	Nodes []int
}

// ParseRollHosts parses HOST[=ID[+ID]] entries.
func ParseRollHosts(specs []string) ([]RollHost, error) {
	var out []RollHost
	seen := map[string]bool{}
	for _, h := range specs {
		name, ids, hasIDs := strings.Cut(h, "=")
		if name == "" || seen[name] {
			return nil, fmt.Errorf("%w: %q: empty or repeated host", ErrRollHosts, h)
		}
		seen[name] = true
		rh := RollHost{Spec: name}
		if hasIDs {
			for _, s := range strings.Split(ids, "+") {
				id, err := strconv.Atoi(s)
				if err != nil || id < 1 || id > 255 {
					return nil, fmt.Errorf("%w: %q: %q is not a node id", ErrRollHosts, h, s)
				}
				rh.Nodes = append(rh.Nodes, id)
			}
		}
		out = append(out, rh)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no host", ErrRollHosts)
	}
	return out, nil
}

// StatusError is a host whose status command (`mysecure ndb status
// --json`) exited non-zero.
type StatusError struct {
	Host string
	Argv []string
	Exit int
	Last string // the last line of its stderr
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %s exited %d: %s (nothing was changed)", e.Host, strings.Join(e.Argv, " "), e.Exit, e.Last)
}

// RollNodes asks each host for its status (statusArgv, whose stdout is a
// Status as JSON) and returns the data nodes to change, in host order,
// each with the other data nodes of its node group as peers, and the
// status of each host. ids[i] names the nodes of hosts[i] (nil: the
// host's own data nodes).
func RollNodes(ctx context.Context, hosts []Host, ids [][]int, statusArgv []string) ([]RollNode, []*Status, error) {
	var nodes []RollNode
	var sts []*Status
	where := map[int]string{}
	for i, h := range hosts {
		stdout, stderr, exit, err := h.Run(ctx, statusArgv, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w (nothing was changed)", h.Name(), err)
		}
		if exit != 0 {
			return nil, nil, &StatusError{Host: h.Name(), Argv: statusArgv[:min(4, len(statusArgv))], Exit: exit, Last: lastLine(stderr)}
		}
		st := new(Status)
		if err := json.Unmarshal([]byte(stdout), st); err != nil {
			return nil, nil, fmt.Errorf("%s: ndb status --json: %w", h.Name(), err)
		}
		sts = append(sts, st)
		want := ids[i]
		if want == nil {
			for _, n := range st.Nodes {
				if n.Kind == KindData && n.Local {
					want = append(want, n.ID)
				}
			}
			if len(want) == 0 {
				return nil, nil, fmt.Errorf("%s: %w (nothing was changed)", h.Name(), ErrNoDataNode)
			}
		}
		for _, id := range want {
			n := st.Node(id)
			if n == nil || n.Kind != KindData {
				return nil, nil, fmt.Errorf("%s: node %d is %w (nothing was changed)", h.Name(), id, ErrNotDataNode)
			}
			if other, ok := where[id]; ok {
				return nil, nil, fmt.Errorf("%w: node %d is named on %s and on %s (nothing was changed)", ErrNodeTwice, id, other, h.Name())
			}
			where[id] = h.Name()
			rn := RollNode{Host: h, Node: id, Group: n.NodeGroup}
			if n.NodeGroup != nil {
				for _, p := range st.Nodes {
					if p.ID != id && p.Kind == KindData && p.NodeGroup != nil && *p.NodeGroup == *n.NodeGroup {
						rn.Peers = append(rn.Peers, p.ID)
					}
				}
				sort.Ints(rn.Peers)
			}
			nodes = append(nodes, rn)
		}
	}
	return nodes, sts, nil
}
