package ndb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/plan"
)

// fileStep creates a file; fail makes its Apply fail, undoFail its Undo.
type fileStep struct {
	path           string
	fail, undoFail bool
}

func (s *fileStep) ID() string       { return "file:" + filepath.Base(s.path) }
func (s *fileStep) Describe() string { return "create " + filepath.Base(s.path) }
func (s *fileStep) Check(context.Context) (bool, string, error) {
	_, err := os.Stat(s.path)
	return err == nil, "", nil
}

func (s *fileStep) Apply(context.Context) error {
	if s.fail {
		return errors.New("disk on fire")
	}
	return os.WriteFile(s.path, nil, 0o600)
}

func (s *fileStep) Undo(context.Context) error {
	if s.undoFail {
		return errors.New("cannot undo")
	}
	return os.Remove(s.path)
}

// TestChangeApply: nodes one at a time, each with its own state file; a
// failing step rolls its node back and leaves the nodes after it
// untouched.
func TestChangeApply(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	nodePlan := func(id int, steps ...plan.Step) NodePlan {
		return NodePlan{Node: &Node{ID: id}, Name: fmt.Sprintf("ndb enable node %d", id), Steps: steps}
	}
	c := &Change{Enable: true, StateDir: state}
	var seen []string
	hooks := ApplyHooks{
		Begin: func(p NodePlan) { seen = append(seen, fmt.Sprintf("begin %d", p.Node.ID)) },
		Event: func(e plan.Event) { seen = append(seen, string(e.Kind)+" "+e.Step) },
		Done: func(p NodePlan, r *plan.Result) {
			seen = append(seen, fmt.Sprintf("done %d: %d applied, %d unchanged", p.Node.ID, len(r.Applied), len(r.Unchanged)))
		},
	}
	os.WriteFile(f("b"), nil, 0o600)
	plans := []NodePlan{nodePlan(2, &fileStep{path: f("a")}, &fileStep{path: f("b")}), nodePlan(3, &fileStep{path: f("c")})}
	if err := c.Apply(context.Background(), plans, hooks); err != nil {
		t.Fatal(err)
	}
	want := []string{"begin 2", "applied create a", "unchanged create b", "done 2: 1 applied, 1 unchanged", "begin 3", "applied create c", "done 3: 1 applied, 0 unchanged"}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("events %q, want %q", seen, want)
	}
	for _, id := range []int{2, 3} {
		if _, err := os.Stat(StatePath(state, id)); err != nil {
			t.Fatalf("no state file of node %d: %v", id, err)
		}
	}

	// Node 4 fails and is rolled back; node 5 is not touched.
	plans = []NodePlan{nodePlan(4, &fileStep{path: f("d")}, &fileStep{path: f("e"), fail: true}), nodePlan(5, &fileStep{path: f("g")}), nodePlan(6)}
	err := c.Apply(context.Background(), plans, ApplyHooks{})
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Node != 4 || ne.Untouched != 2 || ne.StatePath != StatePath(state, 4) || ne.Step.RollbackErr != nil {
		t.Fatalf("failed node: %v %+v", err, ne)
	}
	if !strings.HasPrefix(err.Error(), `node 4: step "create e" failed: disk on fire`) || !strings.HasSuffix(err.Error(), "; 2 node(s) after it were not touched") {
		t.Fatalf("message: %v", err)
	}
	for _, p := range []string{"d", "g"} {
		if _, err := os.Stat(f(p)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s exists after the rollback / on an untouched node: %v", p, err)
		}
	}

	// The last node fails and its rollback is incomplete.
	err = c.Apply(context.Background(), []NodePlan{nodePlan(7, &fileStep{path: f("h"), undoFail: true}, &fileStep{path: f("i"), fail: true})}, ApplyHooks{})
	if !errors.As(err, &ne) || ne.Node != 7 || ne.Untouched != 0 || ne.Step.RollbackErr == nil || strings.Contains(err.Error(), "not touched") {
		t.Fatalf("incomplete rollback: %v", err)
	}
}

func TestBinariesKinds(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "ndbmtd-8.4")
	os.WriteFile(real, nil, 0o755)
	os.Symlink(real, filepath.Join(dir, "ndbmtd"))
	t.Chdir(dir)
	got := Binaries{Ndbmtd: "ndbmtd", NdbMgmd: "/usr/sbin/no-such-ndb_mgmd"}.Kinds()
	want := map[string]string{real: KindData, "/usr/sbin/no-such-ndb_mgmd": KindMgm}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if len(Binaries{}.Kinds()) != 0 {
		t.Fatal("no binary named, some found")
	}
}

// TestRemoteRoll: two hosts (local stand-ins for SSH hosts) whose
// mysecure says which nodes they have; the roll changes one node at a
// time with the credential on stdin, after asking the management client
// about the peers; a dry run sends no credential and asks nothing.
func TestRemoteRoll(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DIR", dir)
	os.WriteFile(filepath.Join(dir, "status-a.json"), []byte(rollStatus(2)), 0o600)
	os.WriteFile(filepath.Join(dir, "status-b.json"), []byte(rollStatus(3)), 0o600)
	ms := filepath.Join(dir, "mysecure")
	os.WriteFile(ms, []byte(`#!/bin/sh
case "$2" in
status) cat "$DIR/status-$H.json" ;;
*) echo "$H $*" >> "$DIR/log"; if [ -z "$DRY" ]; then read -r s; echo "$s" >> "$DIR/stdin"; fi ;;
esac
`), 0o755)
	mgm := filepath.Join(dir, "ndb_mgm")
	os.WriteFile(mgm, []byte(`#!/bin/sh
echo "$H $*" >> "$DIR/mgm"
for a; do last=$a; done
echo "Node ${last%% *}: started"
`), 0o755)
	a, b := LocalHost{Label: "a", Env: []string{"H=a"}}, LocalHost{Label: "b", Env: []string{"H=b"}}
	r := &RemoteRoll{Hosts: []Host{a, b}, Given: []RollHost{{Spec: "a"}, {Spec: "b"}}, Mysecure: ms, Enable: true, Stop: true,
		Pass: []string{"--config-ini=/etc/c.ini"}, NdbMgm: mgm, Stdin: []byte("cred\n")}
	var begun []string
	r.Begin = func(n RollNode) { begun = append(begun, n.label()) }
	nodes, err := r.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].Host.Name() != "a" || nodes[0].Node != 2 || !reflect.DeepEqual(nodes[0].Peers, []int{3}) || nodes[1].Node != 3 {
		t.Fatalf("nodes %+v", nodes)
	}
	if _, ok := nodes[1].Host.(LocalHost); !ok {
		t.Fatalf("node's host is %T, not the roll's own host", nodes[1].Host)
	}
	if err := r.Run(context.Background(), nodes); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		os.Remove(filepath.Join(dir, name))
		return string(b)
	}
	if got := read("log"); got != "a ndb enable --node 2 --stop --credential-stdin --config-ini=/etc/c.ini\nb ndb enable --node 3 --stop --credential-stdin --config-ini=/etc/c.ini\n" {
		t.Fatalf("commands:\n%s", got)
	}
	if got := read("stdin"); got != "cred\ncred\n" {
		t.Fatalf("stdin: %q", got)
	}
	// Before each node its peer, after it the node itself.
	if got := read("mgm"); got != "a --ndb-connectstring=mgm:1186 -e 3 STATUS\na --ndb-connectstring=mgm:1186 -e 2 STATUS\nb --ndb-connectstring=mgm:1186 -e 2 STATUS\nb --ndb-connectstring=mgm:1186 -e 3 STATUS\n" {
		t.Fatalf("management client:\n%s", got)
	}
	if strings.Join(begun, ",") != "a node 2,b node 3" {
		t.Fatalf("begun %v", begun)
	}

	// A dry run of disable.
	t.Setenv("DRY", "1")
	r.Enable, r.Stop, r.DryRun, r.Stdin, r.Pass = false, false, true, nil, nil
	if err := r.Run(context.Background(), nodes); err != nil {
		t.Fatal(err)
	}
	if got := read("log"); got != "a ndb disable --node 2 --dry-run\nb ndb disable --node 3 --dry-run\n" {
		t.Fatalf("dry run commands:\n%s", got)
	}
	if got := read("mgm") + read("stdin"); got != "" {
		t.Fatalf("a dry run asked the management server or sent a credential: %q", got)
	}
}

func TestQuietAndMgmArgv(t *testing.T) {
	var out strings.Builder
	loud := &SSHHost{Stdout: &out}
	if q, ok := Quiet(loud).(*SSHHost); !ok || q == loud || q.Stdout != nil || q.Stderr != nil {
		t.Fatalf("Quiet of a host with output: %+v", q)
	}
	if l := (LocalHost{Label: "a"}); !reflect.DeepEqual(Quiet(l), Host(l)) {
		t.Fatal("Quiet changed a host without output")
	}
	if got := (Mgm{}).Argv(); !reflect.DeepEqual(got, []string{"ndb_mgm"}) {
		t.Fatalf("default: %q", got)
	}
	if got := (Mgm{Program: "/opt/ndb_mgm", ConnectString: "m:1186"}).Argv(); !reflect.DeepEqual(got, []string{"/opt/ndb_mgm", "--ndb-connectstring=m:1186"}) {
		t.Fatalf("given: %q", got)
	}
}
