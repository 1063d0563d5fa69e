package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/hardening"
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
		return withHint(fmt.Errorf("%w: the server is not hardened (no %s)", os.ErrNotExist, hardening.StateFile(ro.StatePath)), "without the guard, use the server's own procedure (--skip-grant-tables)")
	}
	if err != nil {
		return err
	}
	account, host, ok := hardening.ParseAccount(ro.User)
	if !ok {
		return usagef("--user wants USER@HOST")
	}
	exe, err := hardening.SelfPath()
	if err != nil {
		return err
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
	srv, err := hardening.LocateServer(plan, ro.ServerUser)
	var nu *hardening.NoServerUserError
	if errors.As(err, &nu) {
		return withHint(usagef(err.Error()), "pass --server-user")
	}
	if err != nil {
		return err
	}
	defer srv.Close()

	cred, err := adminCredential(ctx, c, &ro.creds)
	if err != nil {
		return err
	}
	defer cred.Wipe()
	reset := &hardening.HostReset{Client: c, Cred: cred, Plan: plan, Server: srv, Self: exe,
		Request: hardening.ResetRequest{Account: account, Host: host, Password: pw, InitDir: ro.InitDir,
			Notice: func(s string) { g.p.noticef("%s", s) }},
		Warn: func(s string) { g.p.errorf("%s", s) }}
	if err := reset.Run(ctx); err != nil {
		return err
	}
	if !srv.Running() {
		fmt.Fprintf(g.p.out, "init file run for %s@%s; the server was not running: start it as usual and log in to check\n", account, host)
		return nil
	}
	fmt.Fprintf(g.p.out, "server started again (%s)\n", srv.Launch.StartedBy())
	// Prove the result by logging in with the new password.
	login := hardening.Login{Client: backup.Tools{}, Refused: backup.ErrMySQLCredentials,
		Account: account, Host: host, Password: pw, ServerArgs: srv.Args()}
	if err := login.Check(ctx); err != nil {
		return err
	}
	fmt.Fprintf(g.p.out, "password of %s@%s set (checked by logging in)\n", account, host)
	return nil
}
