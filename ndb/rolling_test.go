package ndb

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// TestRollStopsAtRefusal: three local "hosts" (LocalHost with a host
// label in the environment); the second refuses (exit 6); the first is
// done, the third never runs.
func TestRollStopsAtRefusal(t *testing.T) {
	hosts := []Host{LocalHost{Label: "a", Env: []string{"H=a"}}, LocalHost{Label: "b", Env: []string{"H=b"}}, LocalHost{Label: "c", Env: []string{"H=c"}}}
	script := `echo "ran on $H" >> "$LOG"; if [ "$H" = b ]; then echo "mysecure: error: the node is running" >&2; exit 6; fi; echo "enabled on $H"`
	log := t.TempDir() + "/log"
	t.Setenv("LOG", log)
	var seen []string
	res, err := Roll(context.Background(), hosts, func(h Host) []string { return []string{"/bin/sh", "-c", script} },
		func(r HostResult) { seen = append(seen, r.Host) })
	var re *RollError
	if !errors.As(err, &re) {
		t.Fatalf("err %v, want *RollError", err)
	}
	if re.Host != "b" || re.Exit != 6 || strings.Join(re.Done, ",") != "a" || strings.Join(re.Skipped, ",") != "c" || re.Last != "mysecure: error: the node is running" {
		t.Fatalf("roll error: %+v", re)
	}
	if len(res) != 2 || res[0].Stdout != "enabled on a\n" || strings.Join(seen, ",") != "a,b" {
		t.Fatalf("results %+v seen %v", res, seen)
	}
	if !strings.Contains(err.Error(), "rolling change stopped at host b (exit 6: mysecure: error: the node is running); changed before it: a; not touched: c") {
		t.Fatalf("message: %v", err)
	}

	// All succeed.
	res, err = Roll(context.Background(), hosts[:1], func(h Host) []string { return []string{"/bin/true"} }, nil)
	if err != nil || len(res) != 1 || res[0].Exit != 0 {
		t.Fatalf("%v %+v", err, res)
	}
	// A command that cannot run.
	_, err = Roll(context.Background(), hosts, func(h Host) []string { return []string{"/nonexistent/mysecure"} }, nil)
	if !errors.As(err, &re) || re.Exit != -1 || re.Err == nil || len(re.Skipped) != 2 {
		t.Fatalf("missing program: %v", err)
	}
}

// TestNodeRoll: nodes one at a time; a node whose group peer is not
// started is not touched; a failing node stops the roll; the credential
// reaches each command on stdin.
func TestNodeRoll(t *testing.T) {
	g0, g1 := 0, 1
	a, b := LocalHost{Label: "a"}, LocalHost{Label: "b"}
	states := map[int]string{2: "started", 3: "started", 4: "started", 5: "started"}
	var ran []string
	roll := &NodeRoll{
		Nodes: []RollNode{{Host: a, Node: 2, Group: &g0, Peers: []int{3}}, {Host: b, Node: 3, Group: &g0, Peers: []int{2}},
			{Host: a, Node: 4, Group: &g1, Peers: []int{5}}, {Host: b, Node: 5, Group: &g1, Peers: []int{4}}},
		Argv: func(n RollNode) []string {
			return []string{"/bin/sh", "-c", `read -r s; [ "$s" = secret ] && echo "node $0 ok" || exit 3`, strconv.Itoa(n.Node)}
		},
		Stdin:  func() io.Reader { return strings.NewReader("secret\n") },
		Status: func(ctx context.Context, h Host, id int) (string, error) { return states[id], nil },
		Begin:  func(n RollNode) { ran = append(ran, n.label()) },
	}
	res, err := roll.Run(context.Background())
	if err != nil || len(res) != 4 || res[3].Stdout != "node 5 ok\n" || strings.Join(ran, ",") != "a node 2,b node 3,a node 4,b node 5" {
		t.Fatalf("roll: %v %+v %v", err, res, ran)
	}

	// Node 5 is down: node 4 (its group) is not touched; 2 and 3 are done.
	states[5] = "not connected"
	ran = nil
	_, err = roll.Run(context.Background())
	var re *RollError
	if !errors.As(err, &re) || !errors.Is(err, ErrGroupDown) || re.Host != "a" || re.Node != 4 || strings.Join(re.Done, ",") != "a node 2,b node 3" ||
		strings.Join(re.Skipped, ",") != "b node 5" || len(ran) != 2 {
		t.Fatalf("group down: %v %+v %v", err, re, ran)
	}
	if !strings.Contains(err.Error(), "rolling change stopped at host a, node 4 (a node of the group is not started: node 5 of node group 1 is not connected") {
		t.Fatalf("message: %v", err)
	}

	// A wrong credential: the first node fails with its exit code.
	states[5] = "started"
	roll.Stdin = func() io.Reader { return strings.NewReader("wrong\n") }
	_, err = roll.Run(context.Background())
	if !errors.As(err, &re) || re.Node != 2 || re.Exit != 3 || len(re.Done) != 0 || len(re.Skipped) != 3 {
		t.Fatalf("failing node: %v", err)
	}
}
