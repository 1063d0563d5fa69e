package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The rolling tests run two "hosts" on this machine: two sshd on
// loopback ports, each giving its sessions the settings of one mount
// (MYSECURE_*), the stand-ins on PATH and the shared stand-in state
// directory (one management server's view: node 2 and node 3, node group
// 0 of a two-replica cluster). MySQL Cluster is not packaged here: ndbd
// and ndb_mgm are the stand-ins of ndb/testdata/standin.

type rollEnv struct {
	e1, e2 *ndbEnv
	s1, s2 *sshd
	vars   []string // the controller's environment
}

func newRollEnv(t *testing.T) *rollEnv {
	t.Helper()
	// Unusual node ids: discovery reads every process of the machine, and
	// other tests run stand-in nodes 2 and 3.
	e1, e2 := newNDB(t, 47), newNDB(t, 48)
	// One config.ini for the cluster, in the shared state directory.
	ini := "[ndbd default]\nNoOfReplicas=2\n[ndb_mgmd]\nNodeId=1\nHostName=localhost\nDataDir=" + filepath.Join(e1.dir, "cluster", "mgm") +
		"\n[ndbd]\nNodeId=47\nHostName=localhost\nDataDir=" + e1.dataDir + "\nFileSystemPath=" + e1.fsDir +
		"\n[ndbd]\nNodeId=48\nHostName=localhost\nDataDir=" + e2.dataDir + "\nFileSystemPath=" + e2.fsDir + "\n[mysqld]\nNodeId=50\n"
	if err := os.WriteFile(e1.ini, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	e2.state, e2.ini = e1.state, e1.ini
	// The hosts of a cluster share the layout: the same ndbd path.
	e2.ndbd, e2.mgm, e2.bin = e1.ndbd, e1.mgm, e1.bin
	for i, v := range e2.vars {
		if strings.HasPrefix(v, "NDB_STANDIN_STATE=") {
			e2.vars[i] = "NDB_STANDIN_STATE=" + e1.state
		}
	}
	for _, e := range []*ndbEnv{e1, e2} {
		if out, err := e.command(e.ndbd, "--ndb-nodeid="+strconv.Itoa(e.id)).CombinedOutput(); err != nil {
			t.Fatalf("starting the stand-in node %d: %v %s", e.id, err, out)
		}
		e.waitStarted()
	}
	r := &rollEnv{e1: e1, e2: e2}
	r.s1 = startSSHDEnv(t, e1.vars, e1.bin+":")
	r.s2 = startSSHDEnv(t, e2.vars, e2.bin+":")
	cfg := filepath.Join(e1.dir, "controller.yaml")
	yaml := "ssh:\n  hosts:\n"
	for i, s := range []*sshd{r.s1, r.s2} {
		yaml += fmt.Sprintf("    - name: ndb%d\n      host: 127.0.0.1\n      port: %d\n      user: root\n      identity: [%s]\n      known-hosts: [%s]\n", i+1, s.port, s.userKey, s.knownHosts)
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The controller has no mount of its own.
	r.vars = []string{"MYSECURE_CONFIG=" + cfg, "MYSECURE_SOCKET=" + filepath.Join(e1.dir, "no-daemon.sock"), "MYSECURE_STATE_DIR=" + filepath.Join(e1.dir, "controller-state")}
	return r
}

// ms runs the controller's mysecure.
func (r *rollEnv) ms(want int, args ...string) string {
	r.e1.t.Helper()
	m := &mountEnv{env: r.e1.env, vars: r.vars}
	return m.ms(want, args...)
}

func (r *rollEnv) rollFlags() []string {
	// The same paths on every host (a real cluster's hosts share the
	// layout); ndb_mgm is found on each host's PATH.
	return append([]string{"ndb", "enable", "--rolling", "--stop", "--config-ini", r.e1.ini, "--ndb-config", "-", "--stop-timeout", "30s", "--start-timeout", "20s",
		"--my-cnf", filepath.Join(r.e1.dir, "no-my.cnf")}, r.e1.creds()...)
}

func encrypted(e *ndbEnv) bool {
	target, err := os.Readlink(e.dataDir)
	return err == nil && target == filepath.Join(e.mnt, "ndbdata", e.dataDir)
}

// TestNDBRollingSSH: a roll over two SSH hosts. First the management
// server refuses to stop node 47 ("Node shutdown would cause system
// crash"): the roll stops there, node 47 keeps running unchanged, host
// ndb2 is not touched. Then the roll goes through: node 47, then node 48,
// each only after the other reported started, output prefixed by host.
func TestNDBRollingSSH(t *testing.T) {
	r := newRollEnv(t)
	refuse := filepath.Join(r.e1.state, "refuse-stop-47")
	os.WriteFile(refuse, nil, 0o644)
	r.e1.keepsVerifying()
	r.e2.keepsVerifying()
	out := r.ms(18, append(r.rollFlags(), "--hosts", "ndb1=47,ndb2=48")...)
	for _, want := range []string{
		"roll: node 47 on ndb1 (node group 0)", "roll: node 48 on ndb2 (node group 0)", "roll: enable node 47 on ndb1",
		"ndb1: mysecure: error: node 47: ",
		"Node shutdown would cause system crash",
		"mysecure: error: rolling change stopped at host ndb1, node 47 (exit 18: ",
		"; not touched: ndb2 node 48",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("refused roll lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "enable node 48") || strings.Contains(out, "SIGTERM") || strings.Contains(out, "changed before it") {
		t.Fatalf("the roll went on after the refusal, or signalled the node:\n%s", out)
	}
	for _, e := range []*ndbEnv{r.e1, r.e2} {
		if encrypted(e) {
			t.Fatalf("node %d's DataDir moved after a refused roll", e.id)
		}
		e.keepsVerifying()
	}
	if l := r.e1.lines("launches.log"); len(l) != 2 {
		t.Fatalf("a node was restarted after the refusal (launches %q)", l)
	}
	if acl := r.e1.ms(0, "acl", "list") + r.e2.ms(0, "acl", "list"); strings.Contains(acl, "ndbdata") {
		t.Fatalf("rules added by a refused roll:\n%s", acl)
	}
	os.Remove(refuse)

	// A node named on two hosts is refused before anything changes.
	if out := r.ms(2, append(r.rollFlags(), "--hosts", "ndb1=47,ndb2=47")...); !strings.Contains(out, "node 47 is named on ndb1 and on ndb2") {
		t.Fatalf("a node on two hosts:\n%s", out)
	}

	out = r.ms(0, append(r.rollFlags(), "--hosts", "ndb1=47,ndb2=48")...)
	i2, i3 := strings.Index(out, "roll: enable node 47 on ndb1"), strings.Index(out, "roll: enable node 48 on ndb2")
	for _, want := range []string{"ndb1: node 47: enabled: 8 step(s) changed", "ndb2: node 48: enabled: 8 step(s) changed", "ndb2: done:      encrypt " + r.e2.fsDir, "roll: 2 node(s) on 2 host(s) enabled"} {
		if !strings.Contains(out, want) {
			t.Fatalf("roll lacks %q:\n%s", want, out)
		}
	}
	if i2 < 0 || i3 < i2 {
		t.Fatalf("nodes not rolled in order 47, 48:\n%s", out)
	}
	for _, e := range []*ndbEnv{r.e1, r.e2} {
		if !encrypted(e) {
			t.Fatalf("node %d's DataDir is not in @ndbdata after the roll", e.id)
		}
		e.keepsVerifying()
		if acl := e.ms(0, "acl", "list"); !strings.Contains(acl, strings.TrimPrefix(e.dataDir, "/")+"/*") {
			t.Fatalf("node %d: rule missing:\n%s", e.id, acl)
		}
	}
	// The credential went over stdin: not in sshd's log (nor, as the
	// argv shows, in a remote command line).
	for _, s := range []*sshd{r.s1, r.s2} {
		b, _ := os.ReadFile(s.log)
		if strings.Contains(string(b), "integration passphrase") || strings.Contains(string(b), "integration salt") {
			t.Fatalf("sshd log %s holds the passphrase or salt", s.log)
		}
	}
}
