package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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
	InitDir      string
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
removes the rule and starts the server again as it was started (systemd,
mysqld_safe, or the same command line, environment and output). On any
failure after the stop the server is started again as before and the error
says so. A wrong credential changes nothing. See docs/harden.md.`,
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
	f.StringVar(&ro.ServerUser, "server-user", "mysql", "the OS user the server runs as when it is not running (otherwise: the running server's)")
	f.StringVar(&ro.InitDir, "init-dir", hardening.DefaultInitDir, "make the init FIFO's private directory in `DIR` (root's; the server user must be able to enter it)")
	ro.creds.AddFlags(f)
	return cmd
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

	// How the server runs, recorded before anything is touched.
	srv := &hardening.ProcServer{MountBinary: plan.MountBinary, Wrapper: plan.Wrapper,
		Fallback: []string{"--datadir=" + plan.DataDir, "--user=" + ro.ServerUser}}
	uid, gid := -1, -1
	if pid := hardening.FindServer(plan.MountBinary); pid != 0 {
		if srv.Launch, err = hardening.Inspect(pid); err != nil {
			return fmt.Errorf("could not read how the server (pid %d) was started: %w", pid, err)
		}
		defer srv.Launch.Close()
		uid, gid = srv.Launch.UID, srv.Launch.GID
	} else if u, err := user.Lookup(ro.ServerUser); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	} else {
		return withHint(usagef(fmt.Sprintf("the server is not running and there is no user %s", ro.ServerUser)), "pass --server-user")
	}

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
	// The temporary rule goes before the server starts again through the
	// guard (on success and on failure).
	restart := &restartAfter{ProcServer: srv, before: dropRule}

	if srv.Launch != nil {
		g.p.noticef("the server runs as pid %d, started by %s", srv.Launch.Server.Pid, srv.Launch.StartedBy())
	}
	since := time.Now()
	err = hardening.ResetPassword(ctx, restart, hardening.ResetRequest{
		Account: account, Host: host, Password: pw, InitDir: ro.InitDir, UID: uid, GID: gid,
		Notice: func(s string) { g.p.noticef("%s", s) },
	})
	var re *hardening.ResetError
	if err != nil && !errors.Is(err, hardening.ErrInitDir) {
		// A server the rules kept from its files fails with "Errcode: 13";
		// the daemon knows which opens it denied, and the rule to add.
		var allow string
		allow, err = withDenials(c, since, err)
		if allow != "" {
			return withHint(err, allow+"; then start the server (if it is down) and run the reset again")
		}
	}
	switch {
	case errors.Is(err, hardening.ErrInitDir):
		return withHint(err, "nothing was changed and the server keeps running: pass --init-dir with a directory of root's that the server user can enter (mode 0755)")
	case errors.As(err, &re) && re.Restarted && srv.Launch == nil:
		return withHint(re.Err, "the password was not changed; the server was not running and stays stopped")
	case errors.As(err, &re) && re.Restarted:
		return withHint(err, "the server runs as before; read the message above, fix the cause and run the reset again")
	case errors.As(err, &re):
		return withHint(err, "start the server with the command above; then run the reset again")
	case err != nil:
		return err
	}
	if srv.Launch == nil {
		fmt.Fprintf(g.p.out, "init file run for %s@%s; the server was not running: start it as usual and log in to check\n", account, host)
		return nil
	}
	fmt.Fprintf(g.p.out, "server started again (%s)\n", srv.Launch.StartedBy())
	// Prove the result by logging in with the new password.
	if err := checkLogin(ctx, account, host, pw, srv.Args()); err != nil {
		return withHint(fmt.Errorf("the server is back, but %s@%s cannot log in with the new password: %w", account, host, err),
			"check that the account exists (SELECT user, host FROM mysql.user) and run the reset again")
	}
	fmt.Fprintf(g.p.out, "password of %s@%s set (checked by logging in)\n", account, host)
	return nil
}

// withDenials returns the hints that say which rule would allow what the
// mount's rules denied since the reset began, and err with the denials
// added ("denied: PROG opening FILES") ("" when nothing was denied or the daemon
// cannot tell).
func withDenials(c *daemon.Client, since time.Time, err error) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, derr := c.Denials(ctx, daemon.DenialQuery{Since: since})
	if derr != nil || len(r.Groups) == 0 {
		return "", err
	}
	seen, hints := daemon.ExplainDenials(r.Groups)
	return strings.Join(hints, "; "), fmt.Errorf("%w: denied: %s", err, strings.Join(seen, "; denied: "))
}

// restartAfter runs before (removing the temporary rule) before the
// server starts again.
type restartAfter struct {
	*hardening.ProcServer
	before func()
}

func (r *restartAfter) Start(ctx context.Context) error {
	r.before()
	return r.ProcServer.Start(ctx)
}

// checkLogin logs in as account@host with pw through the client, the
// credentials over a pipe, and retries while the server starts.
func checkLogin(ctx context.Context, account, host string, pw []byte, serverArgs []string) error {
	cl := mycnf.Client{User: account, Password: string(pw)}
	switch host {
	case "localhost":
		cl.Socket = hardening.ArgValue(serverArgs, "socket")
	default:
		cl.Host = host
		if host == "%" || strings.ContainsAny(host, "%_") {
			cl.Host = "127.0.0.1"
		}
		if p, err := strconv.Atoi(hardening.ArgValue(serverArgs, "port")); err == nil {
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
