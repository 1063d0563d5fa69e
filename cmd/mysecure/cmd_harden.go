package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/inplace"
	"github.com/mysecure/mysecure/hardening"
)

type hardenOptions struct {
	creds     credOptions
	o         hardening.Options
	DryRun    bool
	Undo      bool
	KeepRules bool
	// BackupTool: "auto" (the configured physical-tool, else
	// mariadb-backup, mariabackup or xtrabackup on PATH), a path, or
	// "none".
	BackupTool string
}

func newHardenCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "harden",
		Short: "Protect the MySQL/MariaDB server: the skip-grant-tables guard",
	}
	cmd.AddCommand(newHardenMysqldCommand(g), newHardenResetCommand(g), newHardenAuditCommand(g))
	return cmd
}

func newHardenMysqldCommand(g *globalOptions) *cobra.Command {
	var ho hardenOptions
	cmd := &cobra.Command{
		Use:   "mysqld",
		Short: "Encrypt the server binary behind the skip-grant-tables guard",
		Long: `Moves the server binary into @protected and installs the guard wrapper
(mysqld-guard) in front of it: only the guard may read the real binary, and
only the real binary (by its path in the mount and its fingerprint) may open
@mysql. The datadir is encrypted into @mysql if it is not yet. mysqld_safe and
mysqld_multi are pointed at the guard (a conf.d file) and systemd units get a
drop-in that starts it. The guard removes every form of --skip-grant-tables
(command line and option files), refuses --init-file outside an allow-list,
logs each attempt, and execs the real server.

Stop the server first. --dry-run prints the plan; --undo restores the original
binary, datadir, files, units and rules. See docs/harden.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ho.Undo {
				return runHardenUndo(cmd.Context(), g, &ho)
			}
			return runHarden(cmd.Context(), g, &ho)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ho.o.Binary, "binary", "", "the server `PATH` (default /usr/sbin/mariadbd, else /usr/sbin/mysqld)")
	f.StringVar(&ho.o.DataDir, "datadir", "", "the datadir (default: from /etc/mysql/my.cnf, else /var/lib/mysql)")
	f.StringVar(&ho.o.GuardBinary, "guard-binary", "", "the mysqld-guard program to install (default: next to mysecure, or on PATH)")
	f.StringVar(&ho.o.Wrapper, "wrapper", "", "install the guard at `PATH` (default: the binary's path + \"-guard\")")
	f.StringVar(&ho.o.GuardConfig, "guard-config", "", "the guard's configuration `FILE` (default /etc/mysecure/mysqld-guard.json)")
	f.StringVar(&ho.o.StatePath, "state", "", "record what was changed in `FILE` (default "+hardening.DefaultStatePath+")")
	f.StringSliceVar(&ho.o.UnitDirs, "unit-dirs", nil, "where to look for systemd units (default /lib/systemd/system,/usr/lib/systemd/system,/etc/systemd/system)")
	f.StringVar(&ho.o.DropInDir, "dropin-dir", "", "where to write systemd drop-ins (default /etc/systemd/system)")
	f.StringVar(&ho.o.CnfDir, "cnf-dir", "", "where to write the mysqld_safe/mysqld_multi option file (default /etc/mysql/mariadb.conf.d)")
	f.StringSliceVar(&ho.o.InitAllow, "allow-init-file", nil, "init files the guard lets the server run (absolute paths; DIR/ for a directory)")
	f.BoolVar(&ho.DryRun, "dry-run", false, "print the plan, change nothing")
	f.BoolVar(&ho.Undo, "undo", false, "restore the original setup")
	f.BoolVar(&ho.KeepRules, "keep-existing-rules", false, "harden even though other rules already open @mysql")
	f.StringVar(&ho.BackupTool, "allow-backup-tool", "auto", "let the physical backup tool `PATH` read the datadir (as root): auto finds mariadb-backup or xtrabackup, none adds no rule")
	f.Lookup("allow-backup-tool").NoOptDefVal = "auto"
	ho.creds.AddFlags(f)
	return cmd
}

// guardBinary finds the mysqld-guard program.
func guardBinary(configured string) string {
	if configured != "" {
		return configured
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "mysqld-guard")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mysqld-guard"); err == nil {
		return p
	}
	return ""
}

func runHarden(ctx context.Context, g *globalOptions, ho *hardenOptions) error {
	o := ho.o
	var err error
	o.Mount, o.AuditLog = g.cfg.Mount, g.cfg.AuditLog
	o.GuardBinary = guardBinary(o.GuardBinary)
	if o.BackupTool, err = backupTool(g, ho.BackupTool); err != nil {
		return err
	}
	plan, err := hardening.Detect(o)
	if err != nil {
		if errors.Is(err, hardening.ErrHardened) {
			return withHint(err, "'mysecure harden mysqld --undo' restores the plain setup")
		}
		return withHint(err, "")
	}
	c := daemon.NewClient(g.cfg.Socket)
	refusals := hardenRefusals(ctx, c, plan, ho.KeepRules)
	if ho.DryRun {
		fmt.Fprintf(g.p.out, "plan (nothing changed; started by: %s):\n", strings.Join(plan.StartedBy, ", "))
		for i, s := range plan.Steps() {
			fmt.Fprintf(g.p.out, "%2d. %s\n", i+1, s)
		}
		// Every refusal the real run would hit, not only the first.
		for _, r := range refusals {
			fmt.Fprintf(g.p.out, "refused: %v\n", r)
		}
	}
	if len(refusals) > 0 {
		return refusals[0]
	}
	if ho.DryRun {
		return nil
	}
	cred, err := adminCredential(ctx, c, &ho.creds)
	if err != nil {
		return err
	}
	defer cred.Wipe()
	if err := plan.Save(); err != nil {
		return err
	}
	step := func(name string, fn func() error) error {
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w (what was done is recorded in %s: --undo reverts it)", name, err, plan.StatePath)
		}
		fmt.Fprintf(g.p.out, "done: %s\n", name)
		return plan.Mark(name)
	}
	if err := step("install guard", plan.InstallGuard); err != nil {
		return err
	}
	sess, err := c.BeginMove(ctx, daemon.MoveBeginRequest{Credential: cred})
	if err != nil {
		return err
	}
	mopts := inplace.Options{JournalDir: sess.JournalDir, MountDir: sess.Mount, StoreDir: sess.Store}
	err = step("encrypt binary", func() error {
		return inplace.Encrypt(ctx, plan.Binary, filepath.Join(sess.Mount, "protected", plan.Binary), mopts)
	})
	if err == nil {
		err = step("encrypt guard config", func() error {
			return inplace.Encrypt(ctx, plan.GuardConfig, plan.GuardConfigInMount(sess.Mount), mopts)
		})
	}
	if err == nil && plan.EncryptDataDir {
		err = step("encrypt datadir", func() error {
			return inplace.Encrypt(ctx, plan.DataDir, filepath.Join(sess.Mount, "mysql", plan.DataDir), mopts)
		})
	}
	c.EndMove(context.Background())
	if err != nil {
		return err
	}
	for i, r := range plan.Rules {
		if err := step(fmt.Sprintf("rule %d", i+1), func() error {
			_, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: r, Credential: cred})
			return err
		}); err != nil {
			return err
		}
	}
	if plan.CnfFile != "" {
		if err := step("option file", func() error { return hardening.WriteFile(plan.CnfFile, plan.CnfContent, 0o644) }); err != nil {
			return err
		}
	}
	if len(plan.DropIns) > 0 {
		if err := step("systemd drop-ins", func() error {
			for _, d := range plan.DropIns {
				if err := hardening.WriteFile(d.Path, d.Content, 0o644); err != nil {
					return err
				}
			}
			systemdReload(g)
			return nil
		}); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.p.out, "hardened %s: start the server as before (%s); it now runs through %s\n", plan.Binary, strings.Join(plan.StartedBy, ", "), plan.Wrapper)
	return nil
}

// hardenRefusals lists every reason the real run refuses to harden
// (after Detect: the state file exists): no daemon, rules that open
// @mysql to other programs, the server running. A rule for the backup
// tool alone is kept, not refused (the plan records it).
func hardenRefusals(ctx context.Context, c *daemon.Client, plan *hardening.Plan, keepRules bool) []error {
	var out []error
	if _, err := c.Status(ctx); err != nil {
		out = append(out, withHint(err, "mount the volume first ('mysecure mount')"))
	} else if rl, err := c.ACLList(ctx); err != nil {
		out = append(out, err)
	} else {
		// Other rules that open @mysql (a rule for the unencrypted
		// binary's path, a shell, a broad rule for every category) would
		// let a copy of the binary or another program read the datadir
		// around the guard.
		var open []string
		for _, r := range rl.Rules {
			if r.Rule.Action != acl.Allow || (r.Rule.Category != "mysql" && r.Rule.Category != acl.AllCategories) {
				continue
			}
			if plan.IsBackupToolRule(r.Rule) {
				if plan.BackupRuleKept == "" {
					plan.KeepBackupRule(r.Text)
				}
				continue
			}
			open = append(open, fmt.Sprintf("%d: %s", r.Index, r.Text))
		}
		if len(open) > 0 && !keepRules {
			out = append(out, withHint(fmt.Errorf("%w: rules already open @mysql to other programs (%s)", inplace.ErrRefused, strings.Join(open, "; ")),
				"remove them ('mysecure acl del N'): they would let a copy of the server read the datadir around the guard (a rule for the backup tool alone is kept); or pass --keep-existing-rules"))
		}
	}
	if pids := runningFrom(plan.Binary); len(pids) > 0 {
		out = append(out, withHint(fmt.Errorf("%w: the server is running (pid %v)", inplace.ErrInUse, pids), "stop it first (systemctl stop mariadb)"))
	}
	return out
}

// backupTool resolves --allow-backup-tool: auto is the configured
// physical-tool, else the first of mariadb-backup, mariabackup and
// xtrabackup found ("" when none is installed); none is "".
func backupTool(g *globalOptions, flag string) (string, error) {
	switch strings.ToLower(flag) {
	case "none", "no", "false", "off", "0", "":
		return "", nil
	case "auto", "yes", "true", "on", "1":
		names := []string{"mariadb-backup", "mariabackup", "xtrabackup"}
		if g.cfg.PhysicalTool != "" {
			names = []string{g.cfg.PhysicalTool}
		}
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return filepath.Abs(p)
			}
		}
		return "", nil
	}
	if !filepath.IsAbs(flag) {
		p, err := exec.LookPath(flag)
		if err != nil {
			return "", withHint(usagef(fmt.Sprintf("--allow-backup-tool %s: %v", flag, err)), "give the tool's absolute path, auto or none")
		}
		return filepath.Abs(p)
	}
	return flag, nil
}

// runningFrom returns the pids of processes executing bin.
func runningFrom(bin string) []int {
	var pids []int
	ents, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, e := range ents {
		if t, err := os.Readlink(e); err == nil && strings.TrimSuffix(t, " (deleted)") == bin {
			var pid int
			fmt.Sscanf(e, "/proc/%d/exe", &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

func systemdReload(g *globalOptions) {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return // systemd is not running here
	}
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		g.p.noticef("systemctl daemon-reload failed: %v %s", err, strings.TrimSpace(string(out)))
	}
}

func runHardenUndo(ctx context.Context, g *globalOptions, ho *hardenOptions) error {
	plan, err := hardening.LoadState(ho.o.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return withHint(fmt.Errorf("%w: nothing to undo (no %s)", os.ErrNotExist, orDefault(ho.o.StatePath, hardening.DefaultStatePath)), "")
	}
	if err != nil {
		return err
	}
	if ho.DryRun {
		fmt.Fprintln(g.p.out, "undo plan (nothing changed):")
		for i := len(plan.Done) - 1; i >= 0; i-- {
			fmt.Fprintf(g.p.out, "  revert: %s\n", plan.Done[i])
		}
		return nil
	}
	c := daemon.NewClient(g.cfg.Socket)
	if _, err := c.Status(ctx); err != nil {
		return err
	}
	var cred *daemon.Credential
	getCred := func() (*daemon.Credential, error) {
		if cred == nil {
			var err error
			if cred, err = adminCredential(ctx, c, &ho.creds); err != nil {
				return nil, err
			}
			if cred == nil {
				cred = &daemon.Credential{}
			}
		}
		return cred, nil
	}
	defer func() {
		if cred != nil {
			cred.Wipe()
		}
	}()
	adminOrNil := func(c *daemon.Credential) *daemon.Credential {
		if c != nil && c.Type == "" {
			return nil
		}
		return c
	}
	// A running server first, then the credential: without either nothing
	// below can be completed, and a half undone setup could not start the
	// server.
	if pids := append(runningFrom(plan.MountBinary), runningFrom(plan.Binary)...); len(pids) > 0 {
		return withHint(fmt.Errorf("%w: the server is running (pid %v); nothing was changed", inplace.ErrInUse, pids), "stop it first (systemctl stop mariadb)")
	}
	if plan.Did("rule 1") || plan.Did("encrypt binary") {
		if _, err := getCred(); err != nil {
			return err
		}
	}
	undo := func(name string, fn func() error) error {
		if !plan.Did(name) {
			return nil
		}
		if err := fn(); err != nil {
			return fmt.Errorf("undo %s: %w (the undo stopped there; what is left is recorded in %s: run --undo again)", name, err, plan.StatePath)
		}
		fmt.Fprintf(g.p.out, "reverted: %s\n", name)
		return plan.Unmark(name)
	}
	if err := undo("systemd drop-ins", func() error {
		for _, d := range plan.DropIns {
			if err := hardening.RemoveFile(d.Path); err != nil {
				return err
			}
		}
		systemdReload(g)
		return nil
	}); err != nil {
		return err
	}
	if err := undo("option file", func() error { return hardening.RemoveFile(plan.CnfFile) }); err != nil {
		return err
	}
	for i := len(plan.Rules) - 1; i >= 0; i-- {
		r := plan.Rules[i]
		if err := undo(fmt.Sprintf("rule %d", i+1), func() error {
			cr, err := getCred()
			if err != nil {
				return err
			}
			_, err = c.ACL(ctx, daemon.ACLRequest{Op: "del", Rule: r, Credential: adminOrNil(cr)})
			return err
		}); err != nil {
			return err
		}
	}
	if plan.Did("encrypt datadir") || plan.Did("encrypt binary") || plan.Did("encrypt guard config") {
		cr, err := getCred()
		if err != nil {
			return err
		}
		sess, err := c.BeginMove(ctx, daemon.MoveBeginRequest{Credential: adminOrNil(cr)})
		if err != nil {
			return err
		}
		mopts := inplace.Options{JournalDir: sess.JournalDir, MountDir: sess.Mount, StoreDir: sess.Store}
		err = undo("encrypt datadir", func() error {
			return inplace.Decrypt(ctx, plan.DataDir, filepath.Join(sess.Mount, "mysql", plan.DataDir), mopts)
		})
		if err == nil {
			err = undo("encrypt guard config", func() error {
				return inplace.Decrypt(ctx, plan.GuardConfig, plan.GuardConfigInMount(sess.Mount), mopts)
			})
		}
		if err == nil {
			err = undo("encrypt binary", func() error {
				return inplace.Decrypt(ctx, plan.Binary, filepath.Join(sess.Mount, "protected", plan.Binary), mopts)
			})
		}
		c.EndMove(context.Background())
		if err != nil {
			return err
		}
	}
	// A datadir that was in @mysql before hardening stays there: the
	// original binary, back in its place, gets the rule it needs, bound
	// to the datadir (harden asked for other @mysql rules to go).
	plainRule := ""
	if !plan.EncryptDataDir {
		if plainRule, err = hardening.PlainServerRule(plan); err != nil {
			return err
		}
		if !plan.Did("plain server rule") {
			cr, err := getCred()
			if err != nil {
				return err
			}
			_, err = c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: plainRule, Credential: adminOrNil(cr)})
			var ae *daemon.APIError
			if err != nil && !(errors.As(err, &ae) && ae.Code == daemon.CodeConflict) {
				return fmt.Errorf("add the rule the plain server needs (%s): %w (the undo stopped there: run --undo again)", plainRule, err)
			}
			fmt.Fprintf(g.p.out, "added: %s (the datadir stays in @mysql)\n", plainRule)
			if err := plan.Mark("plain server rule"); err != nil {
				return err
			}
		}
	}
	if err := undo("install guard", plan.RemoveGuard); err != nil {
		return err
	}
	if err := os.Remove(plan.StatePath); err != nil {
		return err
	}
	if plan.EncryptDataDir {
		fmt.Fprintf(g.p.out, "restored the plain setup of %s: the datadir %s is decrypted\n", plan.Binary, plan.DataDir)
	} else {
		fmt.Fprintf(g.p.out, "restored the plain setup of %s; the datadir %s stays in @mysql as before hardening, open to %s by the rule: %s\n", plan.Binary, plan.DataDir, plan.Binary, plainRule)
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
