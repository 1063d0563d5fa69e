package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/volume"
)

// masterCredential reads the credential for an admin change (rules,
// mode): passphrase and salt, or the RSA key. Key files do not count.
func (o *credOptions) masterCredential() (*daemon.Credential, error) {
	if o.KeyFile != "" {
		return nil, volume.ErrNotMasterCredential
	}
	if o.RSAPrivateKey != "" {
		pemData, err := os.ReadFile(o.RSAPrivateKey)
		if err != nil {
			return nil, fmt.Errorf("failed to read RSA private key: %w", err)
		}
		return daemon.RSACredential(pemData, o.rsaPassword)
	}
	vc, _, err := o.credential()
	if err != nil {
		return nil, err
	}
	p, ok := vc.(volume.Passphrase)
	if !ok {
		return nil, usagef("unexpected credential type")
	}
	return &daemon.Credential{Type: daemon.CredentialPassphrase, Passphrase: p.Passphrase, Salt: p.Salt}, nil
}

func (o *credOptions) rsaPassword() ([]byte, error) {
	if o.RSAKeyPasswordFile != "" {
		return readSecretFile(o.RSAKeyPasswordFile, "RSA key password")
	}
	t := openTTY()
	if t == nil {
		return nil, withHint(usagef(volume.ErrKeyPasswordNeeded.Error()), "pass --rsa-key-password-file")
	}
	defer t.Close()
	return t.readSecret("RSA key password: ")
}

// adminCredential returns the master credential unless the daemon is in
// admin mode, where changes need none.
func adminCredential(ctx context.Context, c *daemon.Client, o *credOptions) (*daemon.Credential, error) {
	need, err := c.CredentialNeeded(ctx)
	if err != nil || !need {
		return nil, err
	}
	return o.masterCredential()
}

func newACLCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Manage the access rules: which programs may read plaintext",
		Long: `Access rules name the programs that may open plaintext on the mount:

  ALLOW @CATEGORY PATTERN /abs/program [--shell=/bin/bash] [--children=/bin/df,/bin/ls] [--user=NAME|UID]
  DENY  @CATEGORY PATTERN /abs/program ...

A program is known by its path and the SHA-256 of its file (taken when the
rule is added): a replaced or patched binary is denied until 'acl update'.
DENY rules win over ALLOW; @* matches every category; PATTERN is relative to
the category ('*' matches everything below it, '*.cnf', 'dir/*'). With
--shell the program is a script run by that interpreter; --children allows
the listed programs when the script starts them. --user limits the rule to
uids. Changes apply at once, without a remount, and need the master
credential (prompted: passphrase and salt), except in admin mode.`,
	}
	var creds credOptions
	add := &cobra.Command{
		Use:     "add RULE",
		Short:   "Add a rule (quote it as one argument)",
		Example: `  mysecure acl add "ALLOW @mysqlbackup * /usr/bin/mysqldump"`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runACLChange(cmd.Context(), g, &creds, daemon.ACLRequest{Op: "add", Rule: args[0]})
		},
	}
	creds.AddFlags(add.Flags())
	var delCreds credOptions
	del := &cobra.Command{
		Use:   "del RULE|NUMBER",
		Short: "Delete a rule, given as text or by its number in 'acl list'",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runACLChange(cmd.Context(), g, &delCreds, daemon.ACLDelete(args[0]))
		},
	}
	delCreds.AddFlags(del.Flags())
	var updCreds credOptions
	upd := &cobra.Command{
		Use:   "update",
		Short: "Re-fingerprint every program in the rules (after an upgrade), showing old and new SHA-256",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runACLChange(cmd.Context(), g, &updCreds, daemon.ACLRequest{Op: "update"})
		},
	}
	updCreds.AddFlags(upd.Flags())
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the rules",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := daemon.NewClient(g.cfg.Socket).ACLList(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return g.p.json(r.Rules)
			}
			tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tRULE\tSHA-256")
			for _, ri := range r.Rules {
				fmt.Fprintf(tw, "%d\t%s\t%s\n", ri.Index, ri.Text, ri.Rule.Exe.SHA256)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(add, del, upd, list)
	return cmd
}

func runACLChange(ctx context.Context, g *globalOptions, creds *credOptions, req daemon.ACLRequest) error {
	c := daemon.NewClient(g.cfg.Socket)
	cred, err := adminCredential(ctx, c, creds)
	if err != nil {
		return err
	}
	defer cred.Wipe()
	req.Credential = cred
	r, err := c.ACL(ctx, req)
	if errors.Is(err, volume.ErrUnknownCategory) {
		if rule, perr := acl.ParseRule(req.Rule); perr == nil {
			return withHint(err, unknownCategoryHint(rule.Category))
		}
	}
	if err != nil {
		return err
	}
	for _, ch := range r.Changes {
		fmt.Fprintln(g.p.out, ch)
	}
	fmt.Fprintf(g.p.out, "%d rule(s) in force\n", len(r.Rules))
	if req.Op == "add" {
		for _, w := range reachWarnings(g.cfg.Mount, r.Rules) {
			fmt.Fprintf(g.p.err, "mysecure: warning: %s\n", w.Message)
			g.p.hintf("%s", w.Hint)
		}
	}
	return nil
}

func newModeCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mode",
		Short: "Show or set the enforcement mode",
		Long: `Modes:
  enforcing   deny every open no rule allows (the default at every start)
  permissive  allow, but log what would be denied (to write rules)
  admin       like permissive, and rules can be changed without the master
              credential (a maintenance window)
Leaving enforcing needs the master credential; going back to it does not.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := daemon.NewClient(g.cfg.Socket).Status(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(g.p.out, s.Mode)
			return nil
		},
	}
	var creds credOptions
	set := &cobra.Command{
		Use:   "set enforcing|permissive|admin",
		Short: "Set the mode",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := daemon.ParseMode(args[0])
			if err != nil {
				return usagef(err.Error())
			}
			c := daemon.NewClient(g.cfg.Socket)
			var cred *daemon.Credential
			if m != daemon.Enforcing {
				if cred, err = adminCredential(cmd.Context(), c, &creds); err != nil {
					return err
				}
				defer cred.Wipe()
			}
			prev, err := c.SetMode(cmd.Context(), daemon.ModeRequest{Mode: string(m), Credential: cred})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.p.out, "mode: %s (was %s)\n", m, prev)
			return nil
		},
	}
	creds.AddFlags(set.Flags())
	cmd.AddCommand(set)
	return cmd
}

func newMoveCommand(g *globalOptions, encrypt bool) *cobra.Command {
	var force bool
	var creds credOptions
	use, short := "encrypt @CATEGORY PATH...", "Move files or directories into the encrypted mount, leaving a symlink"
	long := `Move each PATH (a file or a whole directory) to <mount>/CATEGORY/PATH on the
encrypted mount and leave a symlink at PATH ('ls -l' shows it). Owner, mode,
times, xattrs and hard links are kept. The move is journaled: if it is
interrupted (a crash, kill -9), the next mysecure command that moves data, or
the next mount, completes it or rolls it back.

Refused: a PATH already encrypted, inside the mount or the store, a mount
point or containing one, and, without --force, one that a process has open
(stop mysqld first).`
	if !encrypt {
		use, short = "decrypt @CATEGORY PATH...", "Move encrypted files back to where they were (reverses encrypt)"
		long = `Copy the data behind the symlink at PATH back out of the mount, replace the
symlink with it, and remove it from the mount. Journaled like encrypt.`
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef(fmt.Sprintf("%s needs a @CATEGORY and at least one PATH", cmd.CommandPath()))
			}
			if !strings.HasPrefix(args[0], "@") {
				return usagef(fmt.Sprintf("the category must start with '@': %q", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cat := strings.TrimPrefix(args[0], "@")
			var paths []string
			for _, p := range args[1:] {
				abs, err := filepath.Abs(p)
				if err != nil {
					return err
				}
				paths = append(paths, abs)
			}
			return runMove(cmd.Context(), g, &creds, encrypt, cat, paths, force)
		},
	}
	if encrypt {
		cmd.Flags().BoolVar(&force, "force", false, "move even if a process has a file under PATH open")
	}
	creds.AddFlags(cmd.Flags())
	return cmd
}

// runMove moves paths in or out of the mount. This process does the
// copying itself, in a move session the daemon grants it (the daemon
// never writes into its own mount). Interrupted moves are journaled in
// the store and completed or rolled back by the next run or mount.
//
// The session lets this process open plaintext without rules, so it
// needs the master credential (or admin mode), like a rule change.
func runMove(ctx context.Context, g *globalOptions, creds *credOptions, encrypt bool, cat string, paths []string, force bool) error {
	c := daemon.NewClient(g.cfg.Socket)
	// An unknown category is refused before the credential is asked for.
	s, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if err := checkCategory(cat, s.Categories); err != nil {
		return err
	}
	cred, err := adminCredential(ctx, c, creds)
	if errors.Is(err, volume.ErrNotMasterCredential) {
		verb, what := "decrypt", "moves files out of the mount into plaintext on disk"
		if encrypt {
			verb, what = "encrypt", "moves files into the mount"
		}
		return withHint(fmt.Errorf("%w: '%s' %s with a session that may open plaintext without rules, so it needs the master credential: the passphrase and salt, or the RSA private key", err, verb, what),
			"give --passphrase-file and --salt-file (or answer the prompt) or --rsa-private-key; a key file only mounts, verifies and decrypts copies of files ('mysecure file decrypt')")
	}
	if err != nil {
		return err
	}
	defer cred.Wipe()
	return admin.Move(ctx, admin.Conn{Client: c, Cred: cred}, encrypt, cat, paths, admin.MoveOptions{
		Force:     force,
		Recovered: func(r string) { g.p.noticef("recovered an interrupted move: %s", r) },
		Moved: func(p, dst string) {
			if encrypt {
				fmt.Fprintf(g.p.out, "encrypted %s -> %s\n", p, dst)
			} else {
				fmt.Fprintf(g.p.out, "decrypted %s\n", p)
			}
		},
	})
}

// newRecoverCommand is run by the daemon after mounting: it completes or
// rolls back moves that a crash interrupted.
func newRecoverCommand(g *globalOptions) *cobra.Command {
	var tokenFD int
	var creds credOptions
	cmd := &cobra.Command{
		Use:    "recover",
		Short:  "Complete or roll back interrupted encrypt/decrypt moves (run by mount)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := daemon.MoveBeginRequest{}
			if tokenFD > 0 {
				f := os.NewFile(uintptr(tokenFD), "token")
				tok, err := io.ReadAll(io.LimitReader(f, 256))
				f.Close()
				if err != nil {
					return err
				}
				req.Token = tok
			}
			c := daemon.NewClient(g.cfg.Socket)
			if tokenFD == 0 {
				cred, err := adminCredential(cmd.Context(), c, &creds)
				if err != nil {
					return err
				}
				defer cred.Wipe()
				req.Credential = cred
			}
			defer clear(req.Token)
			return admin.Recover(cmd.Context(), c, req, func(r string) { g.p.noticef("recovered an interrupted move: %s", r) })
		},
	}
	cmd.Flags().IntVar(&tokenFD, "token-fd", 0, "read the daemon's one-time token from this fd")
	creds.AddFlags(cmd.Flags())
	return cmd
}
