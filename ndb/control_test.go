package ndb

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

// The tests run the stand-ins of ndbd and ndb_mgm (testdata/standin):
// MySQL Cluster is not packaged for the machines they run on. The
// stand-ins behave like the real programs on what this package relies on
// (angel and worker, pid file, cwd = DataDir, STATUS and STOP output).

var (
	standinOnce sync.Once
	standinDir  string
	standinErr  error
)

// standins builds the stand-in ndbd, a copy named ndbmtd, and ndb_mgm.
func standins(t *testing.T) (ndbd, mgm string) {
	t.Helper()
	standinOnce.Do(func() {
		standinDir, standinErr = os.MkdirTemp("", "ndb-standin-")
		if standinErr != nil {
			return
		}
		for _, b := range []struct{ pkg, name string }{{"./testdata/standin/ndbd", "ndbd"}, {"./testdata/standin/ndbd", "ndbmtd"}, {"./testdata/standin/ndb_mgm", "ndb_mgm"}} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(standinDir, b.name), b.pkg).CombinedOutput()
			if err != nil {
				standinErr = errors.New(string(out))
				return
			}
		}
	})
	if standinErr != nil {
		t.Fatal(standinErr)
	}
	return filepath.Join(standinDir, "ndbd"), filepath.Join(standinDir, "ndb_mgm")
}

type cluster struct {
	t               *testing.T
	dir, state      string
	ndbd, mgm       string
	dataDir, fsPath string
	control         *Control
	logs            []string
	mu              sync.Mutex
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ndbd, mgm := standins(t)
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, state: filepath.Join(dir, "state"), ndbd: ndbd, mgm: mgm,
		dataDir: filepath.Join(dir, "data2"), fsPath: filepath.Join(dir, "fs2")}
	for _, d := range []string{c.state, c.dataDir, c.fsPath} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ini := "[ndbd default]\nNoOfReplicas=1\n[ndb_mgmd]\nNodeId=1\nHostName=localhost\nDataDir=" + filepath.Join(dir, "mgm") +
		"\n[ndbd]\nNodeId=2\nHostName=localhost\nDataDir=" + c.dataDir + "\nFileSystemPath=" + c.fsPath + "\n[mysqld]\nNodeId=50\n"
	if err := os.WriteFile(filepath.Join(c.state, "config.ini"), []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NDB_STANDIN_STATE", c.state)
	c.control = &Control{Mgm: Mgm{Program: mgm}, StateDir: filepath.Join(dir, "ms-state"), StartTimeout: 20 * time.Second,
		StopTimeout: 20 * time.Second, Poll: 100 * time.Millisecond, Log: func(s string) { c.mu.Lock(); c.logs = append(c.logs, s); c.mu.Unlock() }}
	t.Cleanup(func() {
		os.Remove(filepath.Join(c.state, "mgmd-down"))
		if st, err := c.discover(); err == nil {
			if n := st.Node(2); n != nil && n.Running {
				c.control.Stop(context.Background(), n)
			}
		}
	})
	return c
}

func (c *cluster) discover() (*Status, error) {
	return Discover(context.Background(), Options{ConfigIni: filepath.Join(c.state, "config.ini"), NdbConfig: "-",
		Programs: map[string]string{c.ndbd: KindData}})
}

func (c *cluster) launch(args ...string) {
	c.t.Helper()
	cmd := exec.Command(c.ndbd, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("launch: %v %s", err, out)
	}
	c.launchWait()
}

// launchWait waits until node 2 reports started.
func (c *cluster) launchWait() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if s, err := c.control.Mgm.Status(context.Background(), 2); err == nil && s == "started" {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(c.state, "node-2.status"))
			c.t.Fatalf("node 2 did not start: %s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) lines(name string) []string {
	b, _ := os.ReadFile(filepath.Join(c.state, name))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestDiscoverStopStart(t *testing.T) {
	c := newCluster(t)
	c.launch("--ndb-nodeid=2", "--initial", "-c", "localhost:1186")
	st, err := c.discover()
	if err != nil {
		t.Fatal(err)
	}
	n := st.Node(2)
	if n == nil || !n.Running || n.Angel == nil || n.Worker == nil {
		t.Fatalf("node 2 not found running with angel and worker: %+v", n)
	}
	if n.Worker.PPid != n.Angel.Pid || n.DataDir != c.dataDir || n.Program != c.ndbd || !n.Local {
		t.Fatalf("node 2: worker ppid %d angel %d datadir %s program %s local %v", n.Worker.PPid, n.Angel.Pid, n.DataDir, n.Program, n.Local)
	}
	roots := n.Roots()
	if len(roots) != 2 || roots[0].Path != c.dataDir || roots[1].Path != c.fsPath {
		t.Fatalf("roots %+v, want DataDir and FileSystemPath", roots)
	}
	if m := st.Node(1); m == nil || m.Kind != KindMgm || m.Running {
		t.Fatalf("mgm node 1: %+v", m)
	}
	if st.Node(50) != nil {
		t.Fatal("an API node is listed")
	}
	l, err := LaunchOf(n)
	if err != nil {
		t.Fatal(err)
	}

	// Stop through the management server.
	if err := c.control.Stop(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "ndb_2.pid")); !os.IsNotExist(err) {
		t.Fatalf("pid file left after a clean stop: %v", err)
	}
	if alive(n.Angel.Pid) || alive(n.Worker.Pid) {
		t.Fatal("processes left after stop")
	}

	// Start again: --initial is not passed, the files are kept.
	if err := c.control.Start(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	launches := c.lines("launches.log")
	if len(launches) != 2 || strings.Contains(launches[1], "--initial") || !strings.Contains(launches[1], "--ndb-nodeid=2 -c localhost:1186") {
		t.Fatalf("launches: %q", launches)
	}
	if in := c.lines("initial.log"); len(in) != 1 {
		t.Fatalf("--initial recorded %d times, want once: %q", len(in), in)
	}
	if !strings.Contains(strings.Join(c.logs, "\n"), "not passing --initial on restart") {
		t.Fatalf("stripping --initial not logged: %q", c.logs)
	}

	// With the management server down: SIGTERM to the worker.
	os.WriteFile(filepath.Join(c.state, "mgmd-down"), nil, 0o644)
	if _, err := c.control.Mgm.Status(context.Background(), 2); !errors.Is(err, ErrMgmUnreachable) {
		t.Fatalf("status with mgmd down: %v", err)
	}
	st, _ = c.discover()
	n = st.Node(2)
	if err := c.control.Stop(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.logs, "\n"), "sending SIGTERM to the worker, pid") {
		t.Fatalf("SIGTERM fallback not logged: %q", c.logs)
	}
	if alive(n.Angel.Pid) {
		t.Fatal("angel left after SIGTERM to the worker")
	}
	os.Remove(filepath.Join(c.state, "mgmd-down"))

	// A node that does not come back: ErrNotStarted, nothing left running.
	os.WriteFile(filepath.Join(c.state, "refuse-start-2"), nil, 0o644)
	c.control.StartTimeout = 3 * time.Second
	if err := c.control.Start(context.Background(), l); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("start of a refusing node: %v", err)
	}
	st, _ = c.discover()
	if st.Node(2).Running {
		t.Fatal("a failed start left the node running")
	}
}

func TestStripInitial(t *testing.T) {
	kept, removed := StripInitial([]string{"/usr/sbin/ndbd", "--initial", "--ndb-nodeid=3", "--initial-start", "--initial_start", "--initial=1", "--nostart"})
	if strings.Join(kept, " ") != "/usr/sbin/ndbd --ndb-nodeid=3 --nostart" || len(removed) != 4 {
		t.Fatalf("kept %q removed %q", kept, removed)
	}
}

func TestSecretEnv(t *testing.T) {
	for kv, want := range map[string]bool{"MYSQL_PWD=x": true, "DB_PASSWORD=x": true, "AWS_SECRET_ACCESS_KEY=x": true, "PWD=/root": false, "PATH=/bin": false, "NDB_STANDIN_STATE=/x": false} {
		if secretEnv(kv) != want {
			t.Errorf("secretEnv(%q) = %v", kv, !want)
		}
	}
}

// TestStartAsUser: a node that runs as another user (nobody here) is
// recorded with its uid and gid and started again as that user.
func TestStartAsUser(t *testing.T) {
	testenv.RequireRoot(t) // to run a node as nobody
	const nobody = 65534
	c := newCluster(t)
	for _, d := range []string{filepath.Dir(c.dir), c.dir, filepath.Dir(c.ndbd)} {
		os.Chmod(d, 0o755)
	}
	for _, d := range []string{c.state, c.dataDir, c.fsPath} {
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(c.ndbd, "--ndb-nodeid=2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("launch as nobody: %v %s", err, out)
	}
	c.launchWait()
	st, err := c.discover()
	if err != nil {
		t.Fatal(err)
	}
	n := st.Node(2)
	l, err := LaunchOf(n)
	if err != nil || l.Uid != nobody || l.Gid != nobody {
		t.Fatalf("launch record: %+v %v", l, err)
	}
	if err := c.control.Stop(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if err := c.control.Start(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	st, _ = c.discover()
	if n := st.Node(2); n == nil || n.Worker == nil || n.Angel.Uid != nobody || n.Worker.Uid != nobody || n.Worker.Gid != nobody {
		t.Fatalf("restarted node: %+v", n)
	}
}

// TestStopRefused: the management server refuses to stop the node
// ("Node shutdown would cause system crash", error 2002, exit 255 like an
// unreachable server): Stop returns ErrMgmRefused and the node keeps
// running; no SIGTERM is sent around the refusal.
func TestStopRefused(t *testing.T) {
	c := newCluster(t)
	c.launch("--ndb-nodeid=2")
	os.WriteFile(filepath.Join(c.state, "refuse-stop-2"), nil, 0o644)
	st, err := c.discover()
	if err != nil {
		t.Fatal(err)
	}
	n := st.Node(2)
	err = c.control.Stop(context.Background(), n)
	if !errors.Is(err, ErrMgmRefused) || errors.Is(err, ErrMgmUnreachable) || !strings.Contains(err.Error(), "Node shutdown would cause system crash") {
		t.Fatalf("stop refused by the server: %v", err)
	}
	if strings.Contains(strings.Join(c.logs, "\n"), "SIGTERM") || !alive(n.Angel.Pid) || !alive(n.Worker.Pid) {
		t.Fatalf("the node was signalled after a refusal: %q", c.logs)
	}
	if s, err := c.control.Mgm.Status(context.Background(), 2); err != nil || s != "started" {
		t.Fatalf("status after a refused stop: %q %v", s, err)
	}
	os.Remove(filepath.Join(c.state, "refuse-stop-2"))
}
