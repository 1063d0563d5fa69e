package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Tools names the programs a backup uses and their extra arguments.
// Empty names are looked up on PATH (MariaDB names first).
type Tools struct {
	Dump         string   // mariadb-dump, mysqldump
	Physical     string   // mariabackup, xtrabackup
	Client       string   // mariadb, mysql
	Mbstream     string   // mbstream, xbstream
	DumpArgs     []string // extra arguments for every logical backup
	PhysicalArgs []string // extra arguments for every physical backup
	// RuntimeDir holds the short-lived FIFOs that hand credentials to
	// tools that read their option files more than once (mariabackup).
	// Default: os.TempDir().
	RuntimeDir string
	// Denials, when set, tells a failed tool's error what the mount's
	// access rules denied it (the daemon's recent denials).
	Denials DenialSource
}

func findTool(configured string, defaults ...string) (string, error) {
	if configured != "" {
		defaults = []string{configured}
	}
	for _, name := range defaults {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		if !strings.Contains(name, "/") {
			for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"} {
				p := filepath.Join(dir, name)
				if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
					return p, nil
				}
			}
		}
	}
	return "", fmt.Errorf("%w: %s (install it, or name it in the configuration)", ErrToolMissing, strings.Join(defaults, " or "))
}

func (t Tools) dump() (string, error)     { return findTool(t.Dump, "mariadb-dump", "mysqldump") }
func (t Tools) physical() (string, error) { return findTool(t.Physical, "mariabackup", "xtrabackup") }
func (t Tools) client() (string, error)   { return findTool(t.Client, "mariadb", "mysql") }
func (t Tools) mbstream() (string, error) { return findTool(t.Mbstream, "mbstream", "xbstream") }

// toolVersion returns the first line of "tool --version".
func toolVersion(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// tail keeps the last lines written to it (a tool's stderr).
type tail struct {
	mu    sync.Mutex
	lines []string
	part  []byte
	max   int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.add(string(t.part[:i]))
		t.part = t.part[i+1:]
	}
	if len(t.part) > 4096 {
		t.add(string(t.part))
		t.part = t.part[:0]
	}
	return len(p), nil
}

func (t *tail) add(line string) {
	line = strings.TrimSpace(line)
	if line == "" {
		return
	}
	if len(line) > 512 {
		line = line[:512] + "..."
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.lines...)
	if len(t.part) > 0 {
		out = append(out, strings.TrimSpace(string(t.part)))
	}
	if len(out) > t.max {
		out = out[len(out)-t.max:]
	}
	return out
}

// credMode is how a tool gets its option file.
type credMode int

const (
	// credPipe: --defaults-extra-file=/dev/fd/3, a pipe read once.
	credPipe credMode = iota
	// credFIFO: a FIFO in a private directory, served once per open
	// (mariabackup opens its option files three times; a pipe would be
	// empty the second time, and a memfd is resolved by the tools'
	// realpath to a name that cannot be opened).
	credFIFO
)

// toolCmd is a tool run with credentials that never touch disk or argv.
type toolCmd struct {
	cmd    *exec.Cmd
	name   string
	stderr *tail
	cnf    []byte
	mode   credMode
	dir    string // FIFO directory
	fifo   string
	pw     *os.File // pipe write end
	done   chan struct{}
	stopc  chan struct{}
	home   string // an empty HOME: no ~/.my.cnf overrides the stored credentials

	denials DenialSource
	started time.Time
}

// newToolCmd prepares path with the credentials cnf, then args.
func (t Tools) newToolCmd(ctx context.Context, path string, cnf []byte, mode credMode, args ...string) (*toolCmd, error) {
	tc := &toolCmd{name: filepath.Base(path), stderr: &tail{max: 12}, cnf: cnf, mode: mode, done: make(chan struct{}), stopc: make(chan struct{}), denials: t.Denials}
	var first string
	var extra []*os.File
	switch mode {
	case credPipe:
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		tc.pw = pw
		extra = []*os.File{pr}
		first = "--defaults-extra-file=/dev/fd/3"
	case credFIFO:
		base := t.RuntimeDir
		if base == "" {
			base = os.TempDir()
		}
		dir, err := os.MkdirTemp(base, "mysecure-cred-")
		if err != nil {
			return nil, err
		}
		os.Chmod(dir, 0o700)
		tc.dir = dir
		tc.fifo = filepath.Join(dir, "client.cnf")
		if err := syscall.Mkfifo(tc.fifo, 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("failed to make a FIFO for the credentials: %w", err)
		}
		first = "--defaults-extra-file=" + tc.fifo
	}
	home, err := os.MkdirTemp(t.RuntimeDir, "mysecure-home-")
	if err != nil {
		tc.cleanup()
		return nil, err
	}
	tc.home = home
	name, argv := withUmask("077", path, append([]string{first}, args...))
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.ExtraFiles = extra
	cmd.Stderr = tc.stderr
	cmd.Env = toolEnv(home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// On cancel: TERM the tool's process group, then KILL.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	tc.cmd = cmd
	return tc, nil
}

// toolEnv is the environment without variables that would override or
// leak credentials. home, when set, replaces HOME: the tools read
// ~/.my.cnf and ~/.mylogin.cnf after --defaults-extra-file, so a user's own
// [client] settings would silently win over the stored credentials.
func toolEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MYSQL_PWD", "MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_UNIX_PORT", "MYSQL_TEST_LOGIN_FILE",
			"MYSQL_HOME", "MARIADB_HOME":
			continue
		case "HOME":
			if home != "" {
				continue
			}
		}
		if strings.HasPrefix(k, "MYSECURE_") || strings.HasPrefix(k, "LD_") {
			continue
		}
		env = append(env, kv)
	}
	if home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}

// withUmask runs path through /bin/sh with umask mask: the daemon runs
// with umask 0 (the kernel already applied the caller's on the mount), and
// its children must not create world-writable files.
func withUmask(mask, path string, args []string) (string, []string) {
	return "/bin/sh", append([]string{"-c", "umask " + mask + " && exec \"$0\" \"$@\"", path}, args...)
}

func (tc *toolCmd) Start() error {
	tc.started = time.Now()
	if err := tc.cmd.Start(); err != nil {
		tc.cleanup()
		return err
	}
	switch tc.mode {
	case credPipe:
		tc.cmd.ExtraFiles[0].Close()
		go func() {
			defer close(tc.done)
			tc.pw.Write(tc.cnf)
			tc.pw.Close()
		}()
	case credFIFO:
		go tc.serveFIFO()
	}
	return nil
}

// serveFIFO hands out one copy of the option file per open, until the
// tool is gone.
func (tc *toolCmd) serveFIFO() {
	defer close(tc.done)
	for {
		f, err := os.OpenFile(tc.fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		select {
		case <-tc.stopc:
			f.Close()
			return
		default:
		}
		f.Write(tc.cnf)
		f.Close()
	}
}

// Wait waits for the tool and releases the credential channel.
func (tc *toolCmd) Wait() error {
	err := tc.cmd.Wait()
	tc.cleanup()
	if err != nil {
		return tc.failure(err)
	}
	return nil
}

func (tc *toolCmd) failure(err error) error {
	status := err.Error()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ProcessState.String()
	}
	te := &ToolError{Tool: tc.name, Status: status, Stderr: tc.stderr.Lines()}
	for _, l := range te.Stderr {
		switch {
		case missingPrivilege(l):
			te.MissingPrivilege = true
		case strings.Contains(l, "Access denied") || strings.Contains(l, "1045"):
			te.AccessDenied = true
		}
	}
	// The tool runs in its own process group (Setpgid): the denials of
	// that group since it started are its own and its children's.
	if tc.denials != nil && tc.cmd.Process != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		te.Denied = tc.denials(ctx, tc.started, tc.cmd.Process.Pid)
		cancel()
		if len(te.Denied) > 0 {
			te.AccessDenied = false // the rules, not the server, refused it
		}
	}
	return te
}

// missingPrivilege reports whether a tool's message is the server
// refusing a statement to an account it let in (ERROR 1044 no access to
// a database, 1142/1143 table or column command denied, 1227 "you need
// the SUPER, SET USER privilege", 1370 routine command denied, 1419 no
// SUPER to create a trigger or routine with binary logging on), as
// opposed to refusing the login (1045).
func missingPrivilege(line string) bool {
	for _, code := range []string{"1044", "1142", "1143", "1227", "1370", "1419"} {
		if strings.Contains(line, "ERROR "+code) || strings.Contains(line, "error: "+code) || strings.Contains(line, "Got error: "+code) {
			return true
		}
	}
	return strings.Contains(line, "command denied to user") || strings.Contains(line, "you need (at least one of)") ||
		(strings.Contains(line, "Access denied for user") && strings.Contains(line, " to database '"))
}

func (tc *toolCmd) cleanup() {
	switch tc.mode {
	case credPipe:
		if tc.pw != nil {
			tc.pw.Close()
		}
	case credFIFO:
		close(tc.stopc)
		if tc.cmd.Process != nil {
			// Unblock a writer waiting in open, as often as it takes: it
			// may reach its next open only after our first reader left.
			for waiting := true; waiting; {
				if f, err := os.OpenFile(tc.fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				select {
				case <-tc.done:
					waiting = false
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		os.RemoveAll(tc.dir)
	}
	if tc.home != "" {
		os.RemoveAll(tc.home)
	}
}

// Query runs one SQL statement with the client, the option file cnf
// handed over through a pipe (as for every tool), and returns its rows
// (tab separated, no headers).
func (t Tools) Query(ctx context.Context, cnf []byte, sql string) ([][]string, error) {
	return t.query(ctx, cnf, nil, sql)
}

// query is Query with connection arguments (an SSH tunnel's) first.
func (t Tools) query(ctx context.Context, cnf []byte, conn []string, sql string) ([][]string, error) {
	client, err := t.client()
	if err != nil {
		return nil, err
	}
	tc, err := t.newToolCmd(ctx, client, cnf, credPipe, append(append([]string(nil), conn...), "--batch", "--skip-column-names", "--raw")...)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	tc.cmd.Stdout = &out
	tc.cmd.Stdin = strings.NewReader(sql)
	if err := tc.Start(); err != nil {
		return nil, err
	}
	if err := tc.Wait(); err != nil {
		return nil, err
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows, nil
}

var _ io.Writer = (*tail)(nil)
