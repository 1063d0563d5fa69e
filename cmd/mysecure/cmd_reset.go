package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/hardening"
	"github.com/mysecure/mysecure/internal/mycnf"
)

type resetOptions struct {
	creds        credOptions
	User         string
	PasswordFile string
	StatePath    string
	ServerUser   string
}

func newHardenResetCommand(g *globalOptions) *cobra.Command {
	var ro resetOptions
	cmd := &cobra.Command{
		Use:   "reset-root-password",
		Short: "Set a MySQL account's password with the master credential (hardened servers)",
		Long: `On a server hardened with 'harden mysqld', --skip-grant-tables no longer works,
so a lost root password is reset this way, and only with the volume's master
credential: mysecure adds a temporary rule that lets itself start the real
server binary, stops the server, starts it once with an init file that runs
SET PASSWORD (the file is a FIFO: the statement never rests on disk), stops it,
removes the rule and starts the server again as it was started (systemd, or
the same command line). A wrong credential changes nothing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(g, cmd.Context())
			defer stop()
			return runResetRoot(ctx, g, &ro)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ro.User, "user", "root@localhost", "the account `USER@HOST`")
	f.StringVar(&ro.PasswordFile, "password-file", "", "read the new password from `FILE` (a path or /dev/fd/N; default: ask twice)")
	f.StringVar(&ro.StatePath, "state", "", "the state file of 'harden mysqld' (default "+hardening.DefaultStatePath+")")
	f.StringVar(&ro.ServerUser, "server-user", "mysql", "the OS user the server runs as (reads the init file)")
	ro.creds.AddFlags(f)
	return cmd
}

func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`).Replace(s) + "'"
}

// serverProc is a running server found through /proc.
type serverProc struct {
	pid  int
	argv []string
	env  []string
	dir  string
}

func findServer(mountBinary string) *serverProc {
	for _, pid := range runningFrom(mountBinary) {
		p := &serverProc{pid: pid}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
			p.argv = append(p.argv, string(a))
		}
		if e, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
			for _, kv := range bytes.Split(bytes.TrimRight(e, "\x00"), []byte{0}) {
				p.env = append(p.env, string(kv))
			}
		}
		p.dir, _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		return p
	}
	return nil
}

func stopPid(pid int, wait time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
				return nil // a zombie waiting for its parent: stopped
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the server (pid %d) did not stop within %s", pid, wait)
}

func argValue(argv []string, name string) string {
	v := ""
	for _, a := range argv {
		if x, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v = x
		}
	}
	return v
}

func runResetRoot(ctx context.Context, g *globalOptions, ro *resetOptions) error {
	plan, err := hardening.LoadState(ro.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return withHint(fmt.Errorf("%w: the server is not hardened (no %s)", os.ErrNotExist, orDefault(ro.StatePath, hardening.DefaultStatePath)), "without the guard, use the server's own procedure (--skip-grant-tables)")
	}
	if err != nil {
		return err
	}
	account, host, _ := strings.Cut(ro.User, "@")
	if account == "" {
		return usagef("--user wants USER@HOST")
	}
	if host == "" {
		host = "localhost"
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	c := daemon.NewClient(g.cfg.Socket)
	if _, err := c.Status(ctx); err != nil {
		return err
	}
	// The new password: never from argv or the environment.
	var pw []byte
	if ro.PasswordFile != "" {
		if pw, err = readSecretFile(ro.PasswordFile, "password"); err != nil {
			return err
		}
	} else {
		t := openTTY()
		if t == nil {
			return withHint(usagef("no --password-file and no terminal to ask on"), "pass --password-file FILE (or /dev/fd/N)")
		}
		pw, err = t.readNewSecret(fmt.Sprintf("new password for %s@%s", account, host))
		t.Close()
		if err != nil {
			return err
		}
	}
	defer clear(pw)
	cred, err := adminCredential(ctx, c, &ro.creds)
	if err != nil {
		return err
	}
	defer cred.Wipe()
	// The credential check: adding the temporary rule needs it, and
	// nothing has been touched before it.
	rule := fmt.Sprintf("ALLOW @protected %s %s", strings.TrimPrefix(plan.Binary, "/"), exe)
	if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: rule, Credential: cred}); err != nil {
		return err
	}
	ruleGone := false
	dropRule := func() {
		if ruleGone {
			return
		}
		ruleGone = true
		if _, err := c.ACL(context.Background(), daemon.ACLRequest{Op: "del", Rule: rule, Credential: cred}); err != nil {
			g.p.errorf("could not remove the temporary rule %q: %v (remove it with 'mysecure acl del')", rule, err)
		}
	}
	defer dropRule()

	srv := findServer(plan.MountBinary)
	systemd := false
	if _, err := os.Stat("/run/systemd/system"); err == nil && srv != nil {
		if ppid := parentPid(srv.pid); ppid == 1 {
			systemd = true
		}
	}
	var args []string
	if srv != nil {
		g.p.noticef("stopping the server (pid %d)", srv.pid)
		if systemd {
			if out, err := exec.CommandContext(ctx, "systemctl", "stop", unitOf(plan)).CombinedOutput(); err != nil {
				return fmt.Errorf("systemctl stop: %v %s", err, out)
			}
		} else if err := stopPid(srv.pid, 2*time.Minute); err != nil {
			return err
		}
		for _, a := range srv.argv[1:] {
			if a != "--skip-grant-tables=0" {
				args = append(args, a)
			}
		}
	} else {
		args = []string{"--datadir=" + plan.DataDir, "--user=" + ro.ServerUser}
	}

	// The init file: a FIFO the server (running as ServerUser) opens once.
	dir, err := os.MkdirTemp(filepath.Dir(g.cfg.Socket), "reset-")
	if err != nil {
		dir, err = os.MkdirTemp("", "mysecure-reset-")
		if err != nil {
			return err
		}
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o711)
	fifo := filepath.Join(dir, "init.sql")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return err
	}
	if u, err := user.Lookup(ro.ServerUser); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		os.Chown(fifo, uid, -1)
	}
	stmt := []byte(fmt.Sprintf("SET PASSWORD FOR %s@%s = PASSWORD(%s);\n", sqlString(account), sqlString(host), sqlString(string(pw))))
	defer clear(stmt)
	served := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			served <- err
			return
		}
		_, err = f.Write(stmt)
		f.Close()
		served <- err
	}()
	tmpArgs := append(append([]string(nil), args...), "--init-file="+fifo, "--skip-networking", "--skip-grant-tables=0")
	tmp := exec.Command(plan.MountBinary, tmpArgs...)
	if srv != nil {
		tmp.Env, tmp.Dir = srv.env, srv.dir
	}
	logBuf := &bytes.Buffer{}
	tmp.Stdout, tmp.Stderr = logBuf, logBuf
	tmp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g.p.noticef("starting the server once with the init file")
	if err := tmp.Start(); err != nil {
		return fmt.Errorf("could not start the server binary: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- tmp.Wait() }()
	select {
	case err := <-served:
		if err != nil {
			tmp.Process.Kill()
			return fmt.Errorf("the init file was not read: %w", err)
		}
	case err := <-exited:
		f, _ := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("the server exited before reading the init file (%v): %s", err, lastLines(logBuf.String(), 5))
	case <-time.After(3 * time.Minute):
		tmp.Process.Kill()
		return errors.New("the server did not read the init file within 3 minutes")
	}
	// The statement runs right after the file is read; give it a moment
	// to finish before the clean shutdown.
	time.Sleep(2 * time.Second)
	tmp.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		tmp.Process.Kill()
	}
	// The temporary rule goes before the server starts again, through the
	// guard.
	dropRule()

	// Start it again as it was started.
	switch {
	case systemd:
		if out, err := exec.Command("systemctl", "start", unitOf(plan)).CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl start: %v %s", err, out)
		}
		fmt.Fprintln(g.p.out, "server started again (systemd)")
	case srv != nil:
		re := exec.Command(plan.Wrapper, args...)
		re.Args[0] = srv.argv[0]
		re.Env, re.Dir = srv.env, srv.dir
		re.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := re.Start(); err != nil {
			return fmt.Errorf("could not start the server again (%s): %w", srv.argv[0], err)
		}
		go re.Wait()
		sock := argValue(args, "socket")
		for i := 0; i < 600 && sock != ""; i++ {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		fmt.Fprintf(g.p.out, "server started again (pid %d, through %s)\n", re.Process.Pid, plan.Wrapper)
	default:
		fmt.Fprintf(g.p.out, "init file run for %s@%s; the server was not running: start it as usual and log in to check\n", account, host)
		return nil
	}
	// The init file's errors do not stop the server: prove the result by
	// logging in with the new password.
	if err := checkLogin(ctx, account, host, pw, args); err != nil {
		return withHint(fmt.Errorf("the server is back, but %s@%s cannot log in with the new password: %w", account, host, err),
			"check that the account exists (SELECT user, host FROM mysql.user) and run the reset again")
	}
	fmt.Fprintf(g.p.out, "password of %s@%s set (checked by logging in)\n", account, host)
	return nil
}

// checkLogin logs in as account@host with pw through the client, the
// credentials over a pipe, and retries while the server starts.
func checkLogin(ctx context.Context, account, host string, pw []byte, serverArgs []string) error {
	cl := mycnf.Client{User: account, Password: string(pw)}
	switch host {
	case "localhost":
		cl.Socket = argValue(serverArgs, "socket")
	default:
		cl.Host = host
		if host == "%" || strings.ContainsAny(host, "%_") {
			cl.Host = "127.0.0.1"
		}
		if p, err := strconv.Atoi(argValue(serverArgs, "port")); err == nil {
			cl.Port = p
		}
	}
	cnf, err := cl.Render()
	if err != nil {
		return err
	}
	defer clear(cnf)
	var last error
	for i := 0; i < 60; i++ {
		_, err := backup.Tools{}.Query(ctx, cnf, "SELECT 1")
		if err == nil {
			return nil
		}
		// The message only: this is not the backup credentials' refusal
		// (exit 11), the reset did not take.
		last = errors.New(err.Error())
		var te *backup.ToolError
		if errors.As(err, &te) && te.AccessDenied {
			return last
		}
		time.Sleep(500 * time.Millisecond)
	}
	return last
}

func parentPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func unitOf(p *hardening.Plan) string {
	for _, d := range p.DropIns {
		if d.Unit == "mariadb.service" || d.Unit == "mysql.service" {
			return d.Unit
		}
	}
	if len(p.DropIns) > 0 {
		return p.DropIns[0].Unit
	}
	return "mariadb.service"
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}
