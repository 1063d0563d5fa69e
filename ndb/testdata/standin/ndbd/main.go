// Command ndbd is a STAND-IN for the MySQL Cluster data node, for tests
// only: MySQL Cluster is not packaged for the machines these tests run
// on. It behaves like the real ndbd on the points mysecure depends on:
//
//   - the launcher daemonises and exits 0; the angel process ignores
//     SIGTERM and forks a worker with the same executable and command
//     line, and exits when the worker exits (StopOnError=1);
//   - the angel's working directory is the node's DataDir, where it keeps
//     ndb_<ID>.pid (the angel's pid, removed on a clean exit) and appends
//     to ndb_<ID>_out.log;
//   - the worker keeps its file system in FileSystemPath/ndb_<ID>_fs
//     (D1..D11 and LCP/ files), writes and reads them back continuously
//     with checksums, and stops on the first error;
//   - --initial (or --initial-start) wipes ndb_<ID>_fs, and is recorded.
//
// What a real node gets from the management server (its DataDir and
// FileSystemPath) the stand-in reads from $NDB_STANDIN_STATE/config.ini.
// It tells the stand-in ndb_mgm its status through files in that state
// directory: node-<ID>.status ("started <pid>"), node-<ID>.verified (the
// count of verification rounds), launches.log (every command line),
// initial.log (every --initial). A file refuse-start-<ID> there makes the
// next start fail once (a node that does not rejoin); stop-<ID> is the
// management server's STOP.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/ndb"
)

var (
	state  = os.Getenv("NDB_STANDIN_STATE")
	nodeID int
)

func main() {
	if state == "" {
		fmt.Fprintln(os.Stderr, "ndbd (stand-in): NDB_STANDIN_STATE is not set")
		os.Exit(1)
	}
	initial := false
	for i, a := range os.Args[1:] {
		switch {
		case strings.HasPrefix(a, "--ndb-nodeid="):
			nodeID, _ = strconv.Atoi(strings.TrimPrefix(a, "--ndb-nodeid="))
		case a == "--ndb-nodeid" && i+2 < len(os.Args):
			nodeID, _ = strconv.Atoi(os.Args[i+2])
		case a == "--initial" || a == "--initial-start":
			initial = true
		}
	}
	if nodeID == 0 {
		fmt.Fprintln(os.Stderr, "ndbd (stand-in): --ndb-nodeid=ID is needed")
		os.Exit(1)
	}
	dataDir, fsPath := config()
	switch role() {
	case "":
		launcher()
	case "angel":
		angel(dataDir)
	case "worker":
		worker(fsPath, initial)
	}
}

func config() (dataDir, fsPath string) {
	f, err := os.Open(filepath.Join(state, "config.ini"))
	if err != nil {
		fail("cannot get the configuration: %v", err)
	}
	defer f.Close()
	c, err := ndb.ParseConfig(f, "config.ini")
	if err != nil {
		fail("%v", err)
	}
	nodes, err := c.Nodes()
	if err != nil {
		fail("%v", err)
	}
	for _, n := range nodes {
		if n.ID == nodeID && n.Kind == ndb.KindData {
			dataDir = n.Get("datadir")
			fsPath = n.Get("filesystempath")
			if fsPath == "" {
				fsPath = dataDir
			}
			return dataDir, fsPath
		}
	}
	fail("node %d is not a data node of config.ini", nodeID)
	return "", ""
}

func fail(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintln(os.Stderr, "ndbd (stand-in):", msg)
	if nodeID != 0 {
		writeAtomic(filepath.Join(state, fmt.Sprintf("node-%d.status", nodeID)), "failed "+msg+"\n")
	}
	os.Exit(1)
}

func appendFile(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%s %s\n", time.Now().Format(time.RFC3339Nano), line)
	f.Close()
}

// role is what the parent passed on descriptor 3 (a pipe): "angel" or
// "worker"; none for the launcher. Not the environment: that is recorded
// from /proc and passed again on a restart, as for the real program.
func role() string {
	f := os.NewFile(3, "role")
	if f == nil {
		return ""
	}
	var st syscall.Stat_t
	if syscall.Fstat(3, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return ""
	}
	b := make([]byte, 16)
	n, _ := f.Read(b)
	f.Close()
	return strings.TrimSpace(string(b[:n]))
}

func withRole(c *exec.Cmd, r string) {
	pr, pw, err := os.Pipe()
	if err != nil {
		fail("%v", err)
	}
	pw.Write([]byte(r + "\n"))
	pw.Close()
	c.ExtraFiles = []*os.File{pr}
}

func self() *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		fail("%v", err)
	}
	return &exec.Cmd{Path: exe, Args: os.Args}
}

// launcher: record the command line, start the angel in its own session,
// exit 0.
func launcher() {
	appendFile(filepath.Join(state, "launches.log"), strings.Join(os.Args, " "))
	c := self()
	withRole(c, "angel")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		fail("cannot start the angel: %v", err)
	}
	c.Process.Release()
}

func angel(dataDir string) {
	signal.Ignore(syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
	if err := os.Chdir(dataDir); err != nil {
		fail("angel: %v", err)
	}
	out := fmt.Sprintf("ndb_%d_out.log", nodeID)
	pid := fmt.Sprintf("ndb_%d.pid", nodeID)
	if err := os.WriteFile(pid, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		fail("angel: %v", err)
	}
	appendFile(out, fmt.Sprintf("angel started, pid %d", os.Getpid()))
	logf, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fail("angel: %v", err)
	}
	c := self()
	withRole(c, "worker")
	c.Stdout, c.Stderr = logf, logf
	err = c.Run()
	if err != nil {
		appendFile(out, fmt.Sprintf("angel: worker failed (%v); StopOnError: exiting", err))
		os.Exit(1)
	}
	appendFile(out, "angel: worker shut down; exiting")
	os.Remove(pid)
}

// files are the files of the node's file system.
func files(fs string) []string {
	var out []string
	for i := 1; i <= 11; i++ {
		out = append(out, filepath.Join(fs, fmt.Sprintf("D%d", i), "DBLQH", "S0.FragLog"))
	}
	for i := 0; i < 3; i++ {
		out = append(out, filepath.Join(fs, "LCP", strconv.Itoa(i), "T2F0.Data"))
	}
	return out
}

func write(path string) error {
	payload := make([]byte, 6000)
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(payload, sum[:]...), 0o644)
}

func verify(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) < 32 {
		return fmt.Errorf("%s: short file", path)
	}
	sum := sha256.Sum256(b[:len(b)-32])
	if !bytes.Equal(sum[:], b[len(b)-32:]) {
		return fmt.Errorf("%s: checksum mismatch", path)
	}
	return nil
}

func worker(fsPath string, initial bool) {
	status := filepath.Join(state, fmt.Sprintf("node-%d.status", nodeID))
	refuse := filepath.Join(state, fmt.Sprintf("refuse-start-%d", nodeID))
	if _, err := os.Stat(refuse); err == nil {
		os.Remove(refuse)
		fail("start refused (%s): the node does not rejoin", refuse)
	}
	writeAtomic(status, fmt.Sprintf("starting %d\n", os.Getpid()))
	fs := filepath.Join(fsPath, fmt.Sprintf("ndb_%d_fs", nodeID))
	if initial {
		os.RemoveAll(fs)
		appendFile(filepath.Join(state, "initial.log"), fmt.Sprintf("node %d started with --initial: %s wiped", nodeID, fs))
		fmt.Printf("node %d: --initial: file system wiped\n", nodeID)
	}
	list := files(fs)
	for _, f := range list {
		err := verify(f)
		if errors.Is(err, os.ErrNotExist) {
			err = write(f)
		}
		if err != nil {
			fail("start: %v", err)
		}
	}
	stop := filepath.Join(state, fmt.Sprintf("stop-%d", nodeID))
	os.Remove(stop)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	writeAtomic(status, fmt.Sprintf("started %d\n", os.Getpid()))
	fmt.Printf("node %d: started\n", nodeID)
	counter := filepath.Join(state, fmt.Sprintf("node-%d.verified", nodeID))
	for round := 1; ; round++ {
		if err := write(list[round%len(list)]); err != nil {
			fail("write: %v", err)
		}
		for _, f := range list {
			if err := verify(f); err != nil {
				fail("verify: %v", err)
			}
		}
		writeAtomic(counter, strconv.Itoa(round)+"\n")
		select {
		case <-term:
			shutdown(status, "SIGTERM")
			return
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := os.Stat(stop); err == nil {
			os.Remove(stop)
			shutdown(status, "STOP from the management server")
			return
		}
	}
}

func shutdown(status, why string) {
	fmt.Printf("node %d: shutting down (%s)\n", nodeID, why)
	writeAtomic(status, "shutdown\n")
}

// writeAtomic replaces a state file whole, so that a reader (the stand-in
// ndb_mgm, a test) never sees it half written.
func writeAtomic(path, content string) {
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	if os.WriteFile(tmp, []byte(content), 0o644) == nil {
		os.Rename(tmp, path)
	}
}
