package hardening

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/internal/procfs"
)

// How a running server was started, read from /proc before it is stopped,
// and the Server that stops it and starts it again that same way:
//
//   - under systemd (its cgroup names a .service unit): systemctl stop and
//     systemctl start;
//   - under mysqld_safe (its parent): the server is stopped with SIGTERM
//     (a clean shutdown removes the pid file, so mysqld_safe ends too
//     instead of restarting it), and mysqld_safe is started again with its
//     own command line, environment, directory and output. mysqld_safe
//     itself is not asked to restart the server: it would start it without
//     the init file, and the reset needs one start with it in between;
//   - otherwise: the guard with the server's command line (argv[0] too),
//     environment, directory and output.
//
// Output (descriptors 1 and 2) is reopened through /proc/PID/fd before
// the stop, so a log file, a pipe or a terminal keeps receiving it.

// Proc is one process as /proc shows it.
type Proc struct {
	Pid  int
	Exe  string
	Argv []string
	// Env is its environment without secrets (MYSQL_PWD, *PASSWORD*...).
	Env []string
	Dir string
	// Stdout and Stderr say where descriptors 1 and 2 pointed.
	Stdout, Stderr string
	out            [2]*os.File
}

// Launch records how a running server was started.
type Launch struct {
	Server   Proc
	UID, GID int
	// Unit is the systemd unit that runs the server ("" when none).
	Unit string
	// Safe is the mysqld_safe that runs it (nil when none).
	Safe *Proc
}

// Close releases the reopened output descriptors.
func (l *Launch) Close() {
	for _, p := range []*Proc{&l.Server, l.Safe} {
		if p == nil {
			continue
		}
		for i, f := range p.out {
			if f != nil {
				f.Close()
				p.out[i] = nil
			}
		}
	}
}

// StartedBy says how the server was started, for messages.
func (l *Launch) StartedBy() string {
	switch {
	case l.Unit != "":
		return "systemd " + l.Unit
	case l.Safe != nil:
		return fmt.Sprintf("mysqld_safe (pid %d)", l.Safe.Pid)
	}
	return "its command line"
}

// FindServer returns the pid of a process running bin (0 when none).
func FindServer(bin string) int {
	if pids := RunningFrom(bin); len(pids) > 0 {
		return pids[0]
	}
	return 0
}

// Inspect records how the server pid was started. Close the result.
func Inspect(pid int) (*Launch, error) {
	srv, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	l := &Launch{Server: *srv}
	st, err := procfs.ReadStatus(pid)
	if err != nil {
		return nil, err
	}
	if len(st.Uid) > 0 {
		l.UID = int(st.Uid[0])
	}
	if len(st.Gid) > 0 {
		l.GID = int(st.Gid[0])
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		if cg, err := procfs.ReadCgroup(pid); err == nil {
			l.Unit = unitFromCgroup(cg)
		}
	}
	if l.Unit == "" {
		if pp := parentPid(pid); pp > 1 {
			if p, err := readProc(pp); err == nil && isMysqldSafe(p.Argv) {
				l.Safe = p
			}
		}
	}
	if l.Unit == "" {
		// Reopened now: after the stop /proc/PID/fd is gone.
		for _, p := range []*Proc{&l.Server, l.Safe} {
			if p != nil {
				p.reopenOutput()
			}
		}
	}
	return l, nil
}

// unitFromCgroup returns the .service of a process's cgroups ("0::/system.slice/mariadb.service").
func unitFromCgroup(cgs []procfs.Cgroup) string {
	for _, cg := range cgs {
		for _, el := range strings.Split(cg.Path, "/") {
			if strings.HasSuffix(el, ".service") && !strings.HasPrefix(el, "user@") {
				return el
			}
		}
	}
	return ""
}

func isMysqldSafe(argv []string) bool {
	for i, a := range argv {
		if i > 1 {
			break
		}
		if filepath.Base(a) == "mysqld_safe" {
			return true
		}
	}
	return false
}

// secretEnv matches variables that hold secrets: not restored.
var secretEnv = regexp.MustCompile(`(?i)^(MYSQL_PWD|.*(PASSWORD|PASSWD|SECRET|TOKEN).*)$`)

func readProc(pid int) (*Proc, error) {
	p := &Proc{Pid: pid}
	argv, err := procfs.Cmdline(pid)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("process %d has no command line", pid)
	}
	p.Argv = argv
	if p.Exe, err = procfs.Exe(pid); err != nil {
		return nil, err
	}
	p.Exe = procfs.TrimDeleted(p.Exe)
	if env, err := procfs.Environ(pid); err == nil {
		for _, kv := range env {
			name, _, _ := strings.Cut(kv, "=")
			if !secretEnv.MatchString(name) {
				p.Env = append(p.Env, kv)
			}
		}
	}
	p.Dir, _ = procfs.Cwd(pid)
	p.Stdout, _ = procfs.FDLink(pid, 1)
	p.Stderr, _ = procfs.FDLink(pid, 2)
	return p, nil
}

// reopenOutput opens the process's descriptors 1 and 2 again (the same
// file, pipe or terminal), appending; a socket cannot be reopened and
// becomes /dev/null.
func (p *Proc) reopenOutput() {
	for i, fd := range []int{1, 2} {
		f, err := os.OpenFile(procfs.FDPath(p.Pid, fd), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			f, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		}
		p.out[i] = f
	}
}

func parentPid(pid int) int {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.PPid
}

// gone reports whether pid has ended (a zombie waiting for its parent
// counts as ended).
func gone(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return true
	}
	return st.State == 'Z'
}

func waitGone(ctx context.Context, pid int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for !gone(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d did not end within %s", pid, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// ArgValue is the last --NAME=VALUE of argv ("" when none).
func ArgValue(argv []string, name string) string {
	v := ""
	for _, a := range argv {
		if x, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v = x
		}
	}
	return v
}

// ProcServer is the Server of a hardened setup: it stops and starts the
// server the way Launch recorded, and StartOnce runs the real binary
// (the caller lets itself read it with a temporary rule).
type ProcServer struct {
	// Launch is how the server was started (nil: it is not running).
	Launch *Launch
	// MountBinary is the real binary in the mount; Wrapper the guard.
	MountBinary, Wrapper string
	// Fallback are the server's options when it is not running
	// (--datadir, --user).
	Fallback []string
	// StartTimeout bounds the wait for the restarted server (default 2
	// minutes).
	StartTimeout time.Duration
}

// Args are the server's options for a start: its command line without
// argv[0] and the guard's pin that disables skip-grant-tables (the guard
// adds it again).
func (s *ProcServer) Args() []string {
	if s.Launch == nil {
		return s.Fallback
	}
	var out []string
	for _, a := range s.Launch.Server.Argv[1:] {
		if a != "--skip-grant-tables=0" {
			out = append(out, a)
		}
	}
	return out
}

// Stop implements Server.
func (s *ProcServer) Stop(ctx context.Context) error {
	l := s.Launch
	if l == nil {
		return nil
	}
	if l.Unit != "" {
		if out, err := exec.CommandContext(ctx, "systemctl", "stop", l.Unit).CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl stop %s: %v: %s", l.Unit, err, strings.TrimSpace(string(out)))
		}
		return waitGone(ctx, l.Server.Pid, 2*time.Minute)
	}
	if err := syscall.Kill(l.Server.Pid, syscall.SIGTERM); err != nil {
		return err
	}
	if err := waitGone(ctx, l.Server.Pid, 2*time.Minute); err != nil {
		return err
	}
	if l.Safe != nil {
		// After a clean shutdown mysqld_safe finds no pid file and ends.
		if err := waitGone(ctx, l.Safe.Pid, 30*time.Second); err != nil {
			return fmt.Errorf("mysqld_safe: %w", err)
		}
	}
	return nil
}

// StartOnce implements Server.
func (s *ProcServer) StartOnce(ctx context.Context, args []string) (Process, error) {
	all := append(s.Args(), args...)
	cmd := exec.Command(s.MountBinary, all...)
	p := &onceProc{cmd: cmd, exited: make(chan struct{})}
	if l := s.Launch; l != nil {
		cmd.Env, cmd.Dir = l.Server.Env, l.Server.Dir
	}
	// Its messages: the server's error log when it has one (from its end
	// now), else its output.
	if lf := errorLogPath(all); lf != "" {
		p.logPath = lf
		if fi, err := os.Stat(lf); err == nil {
			p.logOffset = fi.Size()
		}
	}
	cmd.Stdout, cmd.Stderr = &p.buf, &p.buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

// errorLogPath is where a server with these options writes its log ("":
// stderr). A relative --log-error is in the datadir, ".err" added when
// it has no extension.
func errorLogPath(args []string) string {
	v := ArgValue(args, "log-error")
	if v == "" {
		return ""
	}
	if filepath.Ext(v) == "" {
		v += ".err"
	}
	if !filepath.IsAbs(v) {
		dd := ArgValue(args, "datadir")
		if dd == "" {
			return ""
		}
		v = filepath.Join(dd, v)
	}
	return v
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type onceProc struct {
	cmd       *exec.Cmd
	exited    chan struct{}
	buf       lockedBuffer
	logPath   string
	logOffset int64
}

func (p *onceProc) Exited() <-chan struct{} { return p.exited }

func (p *onceProc) Stop(ctx context.Context) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return errors.New("it did not stop in time and was killed")
	}
}

func (p *onceProc) Log() string {
	out := p.buf.String()
	if p.logPath != "" {
		if f, err := os.Open(p.logPath); err == nil {
			defer f.Close()
			if _, err := f.Seek(p.logOffset, 0); err == nil {
				var b bytes.Buffer
				b.ReadFrom(f)
				out += b.String()
			}
		}
	}
	return out
}

// Start implements Server: the server is started again the way it was.
func (s *ProcServer) Start(ctx context.Context) error {
	l := s.Launch
	if l == nil {
		return nil
	}
	if s.StartTimeout == 0 {
		s.StartTimeout = 2 * time.Minute
	}
	if l.Unit != "" {
		if out, err := exec.CommandContext(ctx, "systemctl", "start", l.Unit).CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl start %s: %v: %s", l.Unit, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	var cmd *exec.Cmd
	if l.Safe != nil {
		cmd = exec.Command(l.Safe.Exe)
		cmd.Args = l.Safe.Argv
		cmd.Env, cmd.Dir = l.Safe.Env, l.Safe.Dir
		cmd.Stdout, cmd.Stderr = l.Safe.out[0], l.Safe.out[1]
	} else {
		cmd = exec.Command(s.Wrapper, s.Args()...)
		cmd.Args[0] = l.Server.Argv[0]
		cmd.Env, cmd.Dir = l.Server.Env, l.Server.Dir
		cmd.Stdout, cmd.Stderr = l.Server.out[0], l.Server.out[1]
	}
	// Detached from mysecure: it outlives the command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return s.waitUp(ctx, cmd.Process.Pid, exited)
}

// waitUp waits until the restarted server accepts connections on its
// socket (or, without one, runs for a few seconds).
func (s *ProcServer) waitUp(ctx context.Context, pid int, exited <-chan error) error {
	sock := ArgValue(s.Launch.Server.Argv, "socket")
	deadline := time.Now().Add(s.StartTimeout)
	settle := time.Now().Add(3 * time.Second)
	for {
		// Under mysqld_safe, the server is its child; mysqld_safe itself
		// lives on.
		if s.Launch.Safe != nil {
			if sp := FindServer(s.MountBinary); sp != 0 && parentPid(sp) == pid && s.ready(sock, settle) {
				return nil
			}
		} else if s.ready(sock, settle) {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("it exited during start (%v)", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("it did not accept connections within %s", s.StartTimeout)
		}
	}
}

func (s *ProcServer) ready(sock string, settle time.Time) bool {
	if sock == "" {
		return time.Now().After(settle)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// HowToStart implements Server.
func (s *ProcServer) HowToStart() string {
	l := s.Launch
	switch {
	case l == nil:
		return "start it as usual"
	case l.Unit != "":
		return "systemctl start " + l.Unit
	case l.Safe != nil:
		return fmt.Sprintf("cd %s && %s &", shellQuote(l.Safe.Dir), shellJoin(l.Safe.Argv))
	}
	return fmt.Sprintf("cd %s && %s &", shellQuote(l.Server.Dir), shellJoin(append([]string{s.Wrapper}, s.Args()...)))
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./,:@+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
