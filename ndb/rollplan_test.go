package ndb

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseRollHosts(t *testing.T) {
	got, err := ParseRollHosts([]string{"a", "root@b:2222=3+4"})
	if err != nil || !reflect.DeepEqual(got, []RollHost{{Spec: "a"}, {Spec: "root@b:2222", Nodes: []int{3, 4}}}) {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range [][]string{nil, {""}, {"a", "a"}, {"a=x"}, {"a=0"}, {"a=256"}, {"=3"}, {"a=3+"}} {
		if _, err := ParseRollHosts(bad); !errors.Is(err, ErrRollHosts) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// statusHost answers a status command with its JSON (or fails).
type statusHost struct {
	name, stdout, stderr string
	exit                 int
	argv                 []string
}

func (h *statusHost) Name() string { return h.name }
func (h *statusHost) Run(_ context.Context, argv []string, _ io.Reader) (string, string, int, error) {
	h.argv = argv
	return h.stdout, h.stderr, h.exit, nil
}

// rollStatus is the status every host sees: data nodes 2 and 3 in group 0
// (2 local on a), 4 in group 1, management node 1.
func rollStatus(local ...int) string {
	var nodes []string
	for _, n := range []struct {
		id    int
		kind  string
		group string
	}{{1, "mgm", ""}, {2, "ndbd", "0"}, {3, "ndbd", "0"}, {4, "ndbd", "1"}} {
		l := "false"
		for _, id := range local {
			if id == n.id {
				l = "true"
			}
		}
		s := `{"id":` + string(rune('0'+n.id)) + `,"kind":"` + n.kind + `","local":` + l
		if n.group != "" {
			s += `,"nodegroup":` + n.group
		}
		nodes = append(nodes, s+`,"dirs":null,"sources":null}`)
	}
	return `{"connectstring":"mgm:1186","nodes":[` + strings.Join(nodes, ",") + `]}`
}

// TestRollNodes: discovery takes each host's local data nodes (or the
// ids given), with their group peers; it refuses a host without data
// nodes, a node that is not a data node, a node named twice, and a host
// whose status fails.
func TestRollNodes(t *testing.T) {
	ctx := context.Background()
	argv := []string{"mysecure", "ndb", "status", "--json", "--config-ini=/c"}
	a := &statusHost{name: "a", stdout: rollStatus(2)}
	b := &statusHost{name: "b", stdout: rollStatus(3, 4)}
	nodes, sts, err := RollNodes(ctx, []Host{a, b}, [][]int{nil, {4}}, argv)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].Host != a || nodes[0].Node != 2 || !reflect.DeepEqual(nodes[0].Peers, []int{3}) ||
		nodes[1].Host != b || nodes[1].Node != 4 || len(nodes[1].Peers) != 0 || *nodes[1].Group != 1 {
		t.Fatalf("nodes %+v", nodes)
	}
	if len(sts) != 2 || sts[0].ConnectString != "mgm:1186" || !reflect.DeepEqual(a.argv, argv) {
		t.Fatalf("statuses %+v, argv %q", sts, a.argv)
	}

	for name, tc := range map[string]struct {
		hosts []Host
		ids   [][]int
		want  error
	}{
		"no local data node": {[]Host{&statusHost{name: "m", stdout: rollStatus()}}, [][]int{nil}, ErrNoDataNode},
		"management node":    {[]Host{&statusHost{name: "m", stdout: rollStatus()}}, [][]int{{1}}, ErrNotDataNode},
		"no such node":       {[]Host{&statusHost{name: "m", stdout: rollStatus()}}, [][]int{{9}}, ErrNotDataNode},
		"named twice":        {[]Host{&statusHost{name: "a", stdout: rollStatus(2)}, &statusHost{name: "b", stdout: rollStatus()}}, [][]int{nil, {2}}, ErrNodeTwice},
	} {
		if _, _, err := RollNodes(ctx, tc.hosts, tc.ids, argv); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	_, _, err = RollNodes(ctx, []Host{&statusHost{name: "x", stderr: "mysecure: error: boom\n", exit: 4}}, [][]int{nil}, argv)
	var se *StatusError
	if !errors.As(err, &se) || se.Exit != 4 || se.Last != "mysecure: error: boom" ||
		err.Error() != "x: mysecure ndb status --json exited 4: mysecure: error: boom (nothing was changed)" {
		t.Fatalf("failing status: %v", err)
	}
}
