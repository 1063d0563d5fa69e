package ndb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/internal/procfs"
)

// ErrNotStarted: a node did not report started within the timeout.
var ErrNotStarted = errors.New("the node did not come back")

// ErrStopFailed: a node did not stop within the timeout.
var ErrStopFailed = errors.New("the node did not stop")

// Launch is how a node was started: recorded from its process before it
// is stopped, so that it is started the same way afterwards, whatever
// happens in between.
type Launch struct {
	NodeID  int      `json:"node_id"`
	Kind    string   `json:"kind"`
	Program string   `json:"program"`
	Args    []string `json:"args"` // argv, argv[0] included, as read from /proc
	Dir     string   `json:"dir"`
	Env     []string `json:"env"` // without variables that may hold secrets
	DataDir string   `json:"datadir"`
	// Uid, Gid and Groups: the node is started as the user it ran as.
	Uid    uint32   `json:"uid"`
	Gid    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

// Control stops and starts nodes of this host.
type Control struct {
	Mgm Mgm
	// StateDir keeps the launch record of each node stopped (root only).
	StateDir string
	// StartTimeout bounds the wait for "started"; StopTimeout the wait
	// for the node's pid file to go.
	StartTimeout, StopTimeout time.Duration
	// Poll is the interval of status polls (default 500ms).
	Poll time.Duration
	// Log gets one line per thing done worth knowing (never nil).
	Log func(string)
}

func (c *Control) log(format string, a ...any) {
	if c.Log != nil {
		c.Log(fmt.Sprintf(format, a...))
	}
}

func (c *Control) poll() time.Duration {
	if c.Poll > 0 {
		return c.Poll
	}
	return 500 * time.Millisecond
}

// LaunchOf records how node n runs now.
func LaunchOf(n *Node) (Launch, error) {
	if n.Angel == nil {
		return Launch{}, fmt.Errorf("node %d is not running", n.ID)
	}
	return Launch{NodeID: n.ID, Kind: n.Kind, Program: n.Angel.Exe, Args: append([]string(nil), n.Angel.Args...),
		Dir: n.DataDir, Env: append([]string(nil), n.Angel.Env...), DataDir: n.DataDir,
		Uid: n.Angel.Uid, Gid: n.Angel.Gid, Groups: append([]uint32(nil), n.Angel.Groups...)}, nil
}

func (c *Control) recordPath(id int) string {
	return filepath.Join(c.StateDir, fmt.Sprintf("ndb-node-%d.launch.json", id))
}

// Record writes l to the state directory (0600, atomically).
func (c *Control) Record(l Launch) error {
	if c.StateDir == "" {
		return nil
	}
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return fmt.Errorf("failed to record how node %d was started: %w", l.NodeID, err)
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	tmp := c.recordPath(l.NodeID) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("failed to record how node %d was started: %w", l.NodeID, err)
	}
	return os.Rename(tmp, c.recordPath(l.NodeID))
}

// Recorded reads the launch record of node id, if any.
func (c *Control) Recorded(id int) (*Launch, error) {
	if c.StateDir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.recordPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l Launch
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("launch record of node %d: %w", id, err)
	}
	return &l, nil
}

// wipeOptions wipe a data node's file system when given to ndbd: they are
// never passed on a restart.
var wipeOptions = []string{"--initial", "--initial-start"}

// StripInitial returns args without --initial and --initial-start (with
// or without a value, '_' or '-'), and the arguments removed.
func StripInitial(args []string) (kept, removed []string) {
	for i, a := range args {
		name, _, _ := strings.Cut(strings.ReplaceAll(a, "_", "-"), "=")
		wipe := false
		for _, w := range wipeOptions {
			wipe = wipe || (i > 0 && name == w)
		}
		if wipe {
			removed = append(removed, a)
			continue
		}
		kept = append(kept, a)
	}
	return kept, removed
}

// pidFile is the pid file a node keeps in its DataDir.
func pidFile(dataDir string, id int) string {
	return filepath.Join(dataDir, fmt.Sprintf("ndb_%d.pid", id))
}

// pidFromFile returns the live pid in a node's pid file, or 0 when the
// file is gone or stale.
func pidFromFile(dataDir string, id int) int {
	b, err := os.ReadFile(pidFile(dataDir, id))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !alive(pid) {
		return 0
	}
	return pid
}

// Stop stops node n: through the management server when it is reachable
// (a refusal, ErrMgmRefused, ends it: the node keeps running), else with
// SIGTERM to the worker (the angel ignores SIGTERM and exits
// when its worker does). It waits for the pid file to go (or hold a pid
// that is gone) and the processes to exit.
func (c *Control) Stop(ctx context.Context, n *Node) error {
	err := c.Mgm.Stop(ctx, n.ID)
	switch {
	case err == nil:
		c.log("node %d: stopped through the management server", n.ID)
	case errors.Is(err, ErrMgmRefused):
		// Never around the server's refusal: it protects the cluster.
		return fmt.Errorf("node %d: %w", n.ID, err)
	default:
		target := n.Worker
		if target == nil {
			target = n.Angel
		}
		if target == nil {
			return fmt.Errorf("%w: node %d: %v, and no process to signal", ErrStopFailed, n.ID, err)
		}
		c.log("node %d: %s; sending SIGTERM to the worker, pid %d", n.ID, oneLine(err), target.Pid)
		if err := syscall.Kill(target.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("%w: node %d: SIGTERM to pid %d: %v", ErrStopFailed, n.ID, target.Pid, err)
		}
	}
	return c.waitGone(ctx, n)
}

func (c *Control) waitGone(ctx context.Context, n *Node) error {
	timeout := c.StopTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		gone := pidFromFile(n.DataDir, n.ID) == 0
		if n.Angel != nil && alive(n.Angel.Pid) {
			gone = false
		}
		if n.Worker != nil && alive(n.Worker.Pid) {
			gone = false
		}
		if gone {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: node %d still runs after %v (pid file %s)", ErrStopFailed, n.ID, timeout, pidFile(n.DataDir, n.ID))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.poll()):
		}
	}
}

// Start starts a node as l says, without --initial or --initial-start,
// and waits until the management server reports it started. If it does
// not, what was started is stopped again and ErrNotStarted returned.
func (c *Control) Start(ctx context.Context, l Launch) error {
	if len(l.Args) == 0 {
		return fmt.Errorf("node %d: no command line recorded", l.NodeID)
	}
	args, removed := StripInitial(l.Args)
	if len(removed) > 0 {
		c.log("node %d: not passing %s on restart (it wipes the node's file system)", l.NodeID, strings.Join(removed, " "))
	}
	out, err := os.CreateTemp("", "mysecure-ndb-start-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := &exec.Cmd{Path: l.Program, Args: args, Dir: l.Dir, Env: l.Env, Stdout: out, Stderr: out,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if l.Uid != uint32(os.Getuid()) || l.Gid != uint32(os.Getgid()) {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: l.Uid, Gid: l.Gid, Groups: l.Groups}
		c.log("node %d: starting as uid %d, gid %d, as it ran", l.NodeID, l.Uid, l.Gid)
	}
	c.log("node %d: starting %s", l.NodeID, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("node %d: failed to start %s: %w", l.NodeID, l.Program, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timeout := c.StartTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	launcherDone := false
	last := ""
	for {
		if !launcherDone {
			select {
			case err := <-exited:
				launcherDone = true
				if err != nil {
					b, _ := os.ReadFile(out.Name())
					return fmt.Errorf("%w: node %d: %s %v: %s", ErrNotStarted, l.NodeID, filepath.Base(l.Program), err, lastLine(string(b)))
				}
			default:
			}
		}
		s, err := c.Mgm.Status(ctx, l.NodeID)
		if err == nil && s == "started" {
			c.log("node %d: started", l.NodeID)
			return nil
		}
		if err != nil {
			last = oneLine(err)
		} else {
			last = s
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			c.stopStarted(l)
			return ctx.Err()
		case <-time.After(c.poll()):
		}
	}
	c.stopStarted(l)
	return fmt.Errorf("%w: node %d not started after %v (last status: %s)", ErrNotStarted, l.NodeID, timeout, last)
}

// stopStarted stops what a failed Start left running, so that its files
// can move back.
func (c *Control) stopStarted(l Launch) {
	n := &Node{ID: l.NodeID, Kind: l.Kind, DataDir: l.DataDir}
	if procs, _, err := scanProcs(procfs.Root, map[string]string{l.Program: l.Kind}); err == nil {
		byPid := map[int]Proc{}
		for _, p := range procs {
			byPid[p.Pid] = p
		}
		for _, p := range procs {
			if p.Exe != l.Program || nodeIDOf(p) != l.NodeID {
				continue
			}
			a := p
			n.Angel = &a
			for _, w := range procs {
				if w.PPid == p.Pid && w.Exe == p.Exe {
					ww := w
					n.Worker = &ww
				}
			}
		}
	}
	if n.Angel == nil && pidFromFile(l.DataDir, l.NodeID) == 0 {
		return
	}
	saved := c.StopTimeout
	if saved <= 0 || saved > time.Minute {
		c.StopTimeout = time.Minute
	}
	if err := c.Stop(context.Background(), n); err != nil {
		c.log("node %d: could not stop the failed start: %s", l.NodeID, oneLine(err))
	}
	c.StopTimeout = saved
}
