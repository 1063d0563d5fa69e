package integration

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/ndb"
)

// The NDB tests run stand-ins of ndbd (and a copy named ndbmtd) and
// ndb_mgm, built from ndb/testdata/standin: MySQL Cluster is not packaged
// for this machine. The stand-in ndbd daemonises like the real one
// (launcher, angel that ignores SIGTERM, worker with the same command
// line, cwd = DataDir, ndb_<ID>.pid, ndb_<ID>_out.log) and writes and
// verifies its ndb_<ID>_fs files with checksums all the time; the stand-in
// ndb_mgm prints the real client's STATUS and STOP lines. Everything else
// (the FUSE mount, the daemon, the rules, the moves) is real.

type ndbEnv struct {
	*mountEnv
	bin, state, ini string
	dataDir, fsDir  string
	ndbd, mgm       string
	id              int
}

// newNDB mounts a volume and writes a config.ini for data node id.
func newNDB(t *testing.T, id int) *ndbEnv {
	t.Helper()
	m := newMount(t)
	e := &ndbEnv{mountEnv: m, id: id, bin: filepath.Join(m.dir, "bin"), state: filepath.Join(m.dir, "ndbstate"),
		dataDir: filepath.Join(m.dir, "cluster", "data"+strconv.Itoa(id)), fsDir: filepath.Join(m.dir, "cluster", "fs"+strconv.Itoa(id))}
	for _, d := range []string{e.bin, e.state, e.dataDir, e.fsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []struct{ pkg, name string }{{"ndbd", "ndbd"}, {"ndbd", "ndbmtd"}, {"ndb_mgm", "ndb_mgm"}} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(e.bin, b.name), "../ndb/testdata/standin/"+b.pkg).CombinedOutput(); err != nil {
			t.Fatalf("building the stand-in %s: %v\n%s", b.name, err, out)
		}
	}
	e.ndbd, e.mgm = filepath.Join(e.bin, "ndbd"), filepath.Join(e.bin, "ndb_mgm")
	e.ini = filepath.Join(e.state, "config.ini")
	ini := "[ndbd default]\nNoOfReplicas=1\n[ndb_mgmd]\nNodeId=1\nHostName=localhost\nDataDir=" + filepath.Join(m.dir, "cluster", "mgm") +
		"\n[ndbd]\nNodeId=" + strconv.Itoa(id) + "\nHostName=localhost\nDataDir=" + e.dataDir + "\nFileSystemPath=" + e.fsDir + "\n[mysqld]\nNodeId=50\n"
	if err := os.WriteFile(e.ini, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	// The stand-ins find each other through this directory; mysecure
	// passes it on to ndb_mgm and to the node it restarts.
	e.vars = append(e.vars, "NDB_STANDIN_STATE="+e.state)
	// Registered after newMount's: runs before the unmount.
	t.Cleanup(func() {
		if s, _ := e.status(); s == "started" {
			e.command(e.mgm, "-e", strconv.Itoa(e.id)+" STOP").Run()
		}
	})
	return e
}

// command runs a stand-in with this environment's state directory.
func (e *ndbEnv) command(prog string, args ...string) *exec.Cmd {
	c := exec.Command(prog, args...)
	c.Env = append(os.Environ(), "NDB_STANDIN_STATE="+e.state)
	return c
}

func (e *ndbEnv) status() (string, string) {
	out, _ := e.command(e.mgm, "-e", strconv.Itoa(e.id)+" STATUS").CombinedOutput()
	s := string(out)
	switch {
	case strings.Contains(s, fmt.Sprintf("Node %d: started", e.id)):
		return "started", s
	case strings.Contains(s, fmt.Sprintf("Node %d: not connected", e.id)):
		return "not connected", s
	}
	return "", s
}

func (e *ndbEnv) waitStarted() {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, out := e.status()
		if s == "started" {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(e.state, fmt.Sprintf("node-%d.status", e.id)))
			e.t.Fatalf("node %d not started: %s %s", e.id, out, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *ndbEnv) flags() []string {
	return []string{"--config-ini", e.ini, "--stop-timeout", "30s", "--ndb-mgm", e.mgm, "--ndb-config", "-", "--my-cnf", filepath.Join(e.dir, "no-my.cnf")}
}

func (e *ndbEnv) lines(name string) []string {
	b, _ := os.ReadFile(filepath.Join(e.state, name))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (e *ndbEnv) verified() int {
	b, _ := os.ReadFile(filepath.Join(e.state, fmt.Sprintf("node-%d.verified", e.id)))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// keepsVerifying checks the node verifies its files again and again.
func (e *ndbEnv) keepsVerifying() {
	e.t.Helper()
	a := e.verified()
	time.Sleep(700 * time.Millisecond)
	if b := e.verified(); b <= a {
		st, _ := os.ReadFile(filepath.Join(e.state, fmt.Sprintf("node-%d.status", e.id)))
		e.t.Fatalf("node %d stopped verifying its files (%d then %d): %s", e.id, a, b, st)
	}
	if s, out := e.status(); s != "started" {
		e.t.Fatalf("node %d is not started: %s", e.id, out)
	}
}

func randomFile(t *testing.T, path string) []byte {
	t.Helper()
	b := make([]byte, 100_000)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNDBEnableDisable: a running node is refused without --stop; with it
// the node is stopped, its DataDir and FileSystemPath move into @ndbdata,
// ndbd and ndbmtd are allowed on them, and the node starts again without
// --initial and keeps verifying its files through the mount, which cat may
// not read. disable gives the files back byte for byte.
func TestNDBEnableDisable(t *testing.T) {
	e := newNDB(t, 2)
	staticData := randomFile(t, filepath.Join(e.dataDir, "static.dat"))
	staticFS := randomFile(t, filepath.Join(e.fsDir, "static.dat"))
	if out, err := e.command(e.ndbd, "--ndb-nodeid=2", "--initial").CombinedOutput(); err != nil {
		t.Fatalf("starting the stand-in node: %v %s", err, out)
	}
	e.waitStarted()

	st := e.ms(0, append([]string{"ndb", "status"}, e.flags()...)...)
	for _, want := range []string{"node 1: ndb_mgmd, this host, not running", "node 2: ndbd, this host, running " + e.ndbd, "FileSystemPath           " + e.fsDir + "  plain"} {
		if !strings.Contains(st, want) {
			t.Fatalf("status lacks %q:\n%s", want, st)
		}
	}
	var js struct {
		Nodes []struct {
			ID      int  `json:"id"`
			Running bool `json:"running"`
			Worker  *struct {
				PPid int `json:"PPid"`
			} `json:"worker"`
		} `json:"nodes"`
	}
	mustJSON(t, e.ms(0, append([]string{"ndb", "status", "--json"}, e.flags()...)...), &js)
	if len(js.Nodes) != 2 || js.Nodes[1].ID != 2 || !js.Nodes[1].Running || js.Nodes[1].Worker == nil {
		t.Fatalf("status --json: %+v", js)
	}

	refused := e.ms(6, append([]string{"ndb", "enable", "--node", "2"}, e.flags()...)...)
	if !strings.Contains(refused, "must be stopped") || !strings.Contains(refused, "hint: pass --stop") {
		t.Fatalf("enable without --stop:\n%s", refused)
	}
	dry := e.ms(0, append([]string{"ndb", "enable", "--node", "2", "--stop", "--dry-run"}, e.flags()...)...)
	for _, want := range []string{"stop ndbd node 2", "encrypt " + e.dataDir + " into @ndbdata", "encrypt " + e.fsDir + " into @ndbdata",
		"add rule: ALLOW @ndbdata " + strings.TrimPrefix(e.dataDir, "/") + "/* " + e.ndbd, filepath.Join(e.bin, "ndbmtd"), "start node 2 as before", "dry run: 8 step(s) would change"} {
		if !strings.Contains(dry, want) {
			t.Fatalf("dry run lacks %q:\n%s", want, dry)
		}
	}
	if fi, err := os.Lstat(e.dataDir); err != nil || !fi.IsDir() {
		t.Fatalf("the dry run changed the DataDir: %v", err)
	}
	e.keepsVerifying()

	out := e.ms(0, append(append([]string{"ndb", "enable", "--node", "2", "--stop"}, e.flags()...), e.creds()...)...)
	for _, want := range []string{"stopped through the management server", "done:      encrypt " + e.fsDir, "not passing --initial on restart", "node 2: started", "node 2: enabled: 8 step(s) changed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("enable output lacks %q:\n%s", want, out)
		}
	}
	for _, d := range []string{e.dataDir, e.fsDir} {
		if target, err := os.Readlink(d); err != nil || target != filepath.Join(e.mnt, "ndbdata", d) {
			t.Fatalf("%s is not a symlink into @ndbdata: %q %v", d, target, err)
		}
	}
	acl := e.ms(0, "acl", "list")
	for _, want := range []string{e.ndbd, filepath.Join(e.bin, "ndbmtd"), strings.TrimPrefix(e.fsDir, "/") + "/*"} {
		if !strings.Contains(acl, want) {
			t.Fatalf("acl list lacks %q:\n%s", want, acl)
		}
	}
	e.keepsVerifying()
	if l := e.lines("launches.log"); len(l) != 2 || strings.Contains(l[1], "--initial") {
		t.Fatalf("launches: %q", l)
	}
	if l := e.lines("initial.log"); len(l) != 1 {
		t.Fatalf("--initial ran %d times, want once (the test's own start): %q", len(l), l)
	}
	for _, f := range []string{filepath.Join(e.fsDir, "ndb_2_fs", "D1", "DBLQH", "S0.FragLog"), filepath.Join(e.dataDir, "ndb_2_out.log"), filepath.Join(e.dataDir, "static.dat")} {
		if b, err := read("cat", f); err == nil {
			t.Fatalf("cat read %s: %.40q", f, b)
		}
	}
	scanStore(t, e.store, "angel started")
	if st := e.ms(0, append([]string{"ndb", "status"}, e.flags()...)...); !strings.Contains(st, "DataDir                  "+e.dataDir+"  encrypted (@ndbdata)") {
		t.Fatalf("status after enable:\n%s", st)
	}
	again := e.ms(0, append(append([]string{"ndb", "enable", "--node", "2", "--stop"}, e.flags()...), e.creds()...)...)
	if !strings.Contains(again, "0 step(s) changed, 6 in place already") || strings.Contains(again, "stopped") {
		t.Fatalf("second enable touched the node:\n%s", again)
	}

	dis := e.ms(0, append(append([]string{"ndb", "disable", "--node", "2", "--stop"}, e.flags()...), e.creds()...)...)
	if !strings.Contains(dis, "node 2: disabled: 8 step(s) changed") {
		t.Fatalf("disable:\n%s", dis)
	}
	for _, d := range []string{e.dataDir, e.fsDir} {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			t.Fatalf("%s is not a directory again: %v", d, err)
		}
	}
	if acl := e.ms(0, "acl", "list"); strings.Contains(acl, "ndbdata") {
		t.Fatalf("rules left after disable:\n%s", acl)
	}
	e.keepsVerifying()
	for p, want := range map[string][]byte{filepath.Join(e.dataDir, "static.dat"): staticData, filepath.Join(e.fsDir, "static.dat"): staticFS} {
		if got, err := os.ReadFile(p); err != nil || string(got) != string(want) {
			t.Fatalf("%s is not byte-identical after disable: %v", p, err)
		}
	}
	if l := e.lines("launches.log"); len(l) != 3 || strings.Contains(strings.Join(l[1:], "\n"), "--initial") {
		t.Fatalf("launches: %q", l)
	}
}

// TestNDBRollback: a node that does not come back after the move is
// rolled back: files back in place, rules removed, the node started as it
// was (without --initial); exit 18.
func TestNDBRollback(t *testing.T) {
	e := newNDB(t, 2)
	if out, err := e.command(e.ndbd, "--ndb-nodeid=2").CombinedOutput(); err != nil {
		t.Fatalf("starting the stand-in node: %v %s", err, out)
	}
	e.waitStarted()
	// The stand-in refuses its next start once.
	os.WriteFile(filepath.Join(e.state, "refuse-start-2"), nil, 0o644)
	out := e.ms(18, append(append([]string{"ndb", "enable", "--node", "2", "--stop", "--start-timeout", "5s"}, e.flags()...), e.creds()...)...)
	for _, want := range []string{"failed:    start node 2", "undone:    encrypt " + e.dataDir, "undone:    add rule", "undone:    stop ndbd node 2", "rolled back 7 step(s)", "hint: node 2 is as it was before"} {
		if !strings.Contains(out, want) {
			t.Fatalf("enable output lacks %q:\n%s", want, out)
		}
	}
	for _, d := range []string{e.dataDir, e.fsDir} {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			t.Fatalf("%s is not a plain directory after the rollback: %v", d, err)
		}
	}
	if acl := e.ms(0, "acl", "list"); strings.Contains(acl, "ndbdata") {
		t.Fatalf("rules left after the rollback:\n%s", acl)
	}
	e.keepsVerifying()
	if l := e.lines("launches.log"); len(l) != 3 || strings.Contains(strings.Join(l, "\n"), "--initial") {
		t.Fatalf("launches: %q", l)
	}
}

// TestNDBPolicy: the ndb-data bundle applies the steps of ndb enable to a
// running node (ndb_mgm and the programs found in PATH and /proc), and
// check finds them in place.
func TestNDBPolicy(t *testing.T) {
	e := newNDB(t, 2)
	e.vars = append(e.vars, "PATH="+e.bin+":"+os.Getenv("PATH"))
	if out, err := e.command(e.ndbd, "--ndb-nodeid=2").CombinedOutput(); err != nil {
		t.Fatalf("starting the stand-in node: %v %s", err, out)
	}
	e.waitStarted()
	sets := []string{"--set", "nodes=2", "--set", "config-ini=" + e.ini}
	refused := e.ms(6, append([]string{"policy", "apply", "ndb-data"}, sets...)...)
	if !strings.Contains(refused, "must be stopped") {
		t.Fatalf("apply without stop=true:\n%s", refused)
	}
	sets = append(sets, "--set", "stop=true")
	out := e.ms(0, append(append([]string{"policy", "apply", "ndb-data"}, sets...), e.creds()...)...)
	for _, want := range []string{"done:      stop ndbd node 2", "done:      encrypt " + e.dataDir, "done:      start node 2 as before", "applied ndb-data: 8 step(s) changed, 1 in place already"} {
		if !strings.Contains(out, want) {
			t.Fatalf("apply lacks %q:\n%s", want, out)
		}
	}
	e.keepsVerifying()
	if target, err := os.Readlink(e.fsDir); err != nil || target != filepath.Join(e.mnt, "ndbdata", e.fsDir) {
		t.Fatalf("FileSystemPath not in @ndbdata: %q %v", target, err)
	}
	chk := e.ms(0, "policy", "check", "ndb-data")
	if strings.Contains(chk, "drift") || !strings.Contains(chk, "ndb-data: ok:    add rule: ALLOW @ndbdata "+strings.TrimPrefix(e.fsDir, "/")) {
		t.Fatalf("check:\n%s", chk)
	}
}

// TestNDBRolling: a rolling enable over two hosts, one at a time, through
// the Host interface with LocalHost "hosts", each with its own mount,
// volume and stand-in node (the SSH roll is in ndb_ssh_test.go). The first host's node does not come
// back: that host is rolled back, the roll stops, the second host is not
// touched.
func TestNDBRolling(t *testing.T) {
	// Both "hosts" are this machine: the nodes need different ids.
	e1, e2 := newNDB(t, 2), newNDB(t, 3)
	for _, e := range []*ndbEnv{e1, e2} {
		if out, err := e.command(e.ndbd, "--ndb-nodeid="+strconv.Itoa(e.id)).CombinedOutput(); err != nil {
			t.Fatalf("starting the stand-in node: %v %s", err, out)
		}
		e.waitStarted()
	}
	os.WriteFile(filepath.Join(e1.state, "refuse-start-2"), nil, 0o644)
	byName := map[string]*ndbEnv{"host1": e1, "host2": e2}
	hosts := []ndb.Host{ndb.LocalHost{Label: "host1", Env: e1.vars}, ndb.LocalHost{Label: "host2", Env: e2.vars}}
	res, err := ndb.Roll(context.Background(), hosts, func(h ndb.Host) []string {
		e := byName[h.Name()]
		return append(append([]string{binary, "ndb", "enable", "--node", strconv.Itoa(e.id), "--stop", "--start-timeout", "5s"}, e.flags()...), e.creds()...)
	}, nil)
	var re *ndb.RollError
	if !errors.As(err, &re) || re.Host != "host1" || re.Exit != 18 || len(re.Done) != 0 || strings.Join(re.Skipped, ",") != "host2" {
		t.Fatalf("roll: %v (%+v)", err, res)
	}
	if !strings.Contains(res[0].Stdout, "undone:    stop ndbd node 2") || !strings.Contains(re.Last, "mysecure: hint: node 2 is as it was before") {
		t.Fatalf("host1 output:\n%s\n%s", res[0].Stdout, res[0].Stderr)
	}
	e1.keepsVerifying()
	for _, e := range []*ndbEnv{e1, e2} {
		if fi, err := os.Lstat(e.dataDir); err != nil || !fi.IsDir() {
			t.Fatalf("%s is not a plain directory: %v", e.dataDir, err)
		}
	}
	// host2 was not touched: its node was started once, by the test.
	e2.keepsVerifying()
	if l := e2.lines("launches.log"); len(l) != 1 {
		t.Fatalf("host2's node was restarted: %q", l)
	}
}
