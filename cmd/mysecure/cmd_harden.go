package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/daemon"
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

func runHarden(ctx context.Context, g *globalOptions, ho *hardenOptions) error {
	o := g.hostHarden(ho.o)
	var err error
	if o.BackupTool, err = backupTool(g, ho.BackupTool); err != nil {
		return err
	}
	plan, err := hardening.Detect(o)
	if errors.Is(err, hardening.ErrHardened) {
		return err // classify: exit 6 with the --undo hint
	}
	if err != nil {
		return withHint(err, "")
	}
	c := daemon.NewClient(g.cfg.Socket)
	proc := hardenProcedure(g, c, &ho.creds)
	defer proc.wipe()
	refusals := proc.Refusals(ctx, plan, ho.KeepRules)
	if ho.DryRun {
		fmt.Fprintf(g.p.out, "plan (nothing changed; started by: %s):\n", strings.Join(plan.StartedBy, ", "))
		for i, s := range plan.Steps() {
			fmt.Fprintf(g.p.out, "%2d. %s\n", i+1, s)
		}
		// Every refusal the real run would hit, not only the first.
		for _, r := range refusals {
			fmt.Fprintf(g.p.out, "refused: %s\n", strings.TrimPrefix(r.Error(), "refused: "))
		}
	}
	if len(refusals) > 0 {
		return refusals[0]
	}
	if ho.DryRun {
		return nil
	}
	if err := proc.Apply(ctx, plan); err != nil {
		return err
	}
	fmt.Fprintf(g.p.out, "hardened %s: start the server as before (%s); it now runs through %s\n", plan.Binary, strings.Join(plan.StartedBy, ", "), plan.Wrapper)
	return nil
}

// cliProcedure is the harden procedure with the CLI's credential prompt
// and output.
type cliProcedure struct {
	*hardening.Procedure
	cred *daemon.Credential
}

func (p *cliProcedure) wipe() {
	if p.cred != nil {
		p.cred.Wipe()
	}
}

func hardenProcedure(g *globalOptions, c *daemon.Client, creds *credOptions) *cliProcedure {
	p := &cliProcedure{}
	p.Procedure = &hardening.Procedure{
		Client: c,
		Credential: func(ctx context.Context) (*daemon.Credential, error) {
			cred, err := adminCredential(ctx, c, creds)
			p.cred = cred
			return cred, err
		},
		Report: func(e hardening.Event) {
			switch e.Kind {
			case hardening.EventDone:
				fmt.Fprintf(g.p.out, "done: %s\n", e.Text)
			case hardening.EventReverted:
				fmt.Fprintf(g.p.out, "reverted: %s\n", e.Text)
			case hardening.EventAdded:
				fmt.Fprintf(g.p.out, "added: %s\n", e.Text)
			default:
				g.p.noticef("%s", e.Text)
			}
		},
	}
	return p
}

// hostHarden completes o with the configured mount and audit log and
// the guard program (hardening.FindGuardBinary).
func (g *globalOptions) hostHarden(o hardening.Options) hardening.Options {
	o.Mount, o.AuditLog = g.cfg.Mount, g.cfg.AuditLog
	o.GuardBinary = hardening.FindGuardBinary(o.GuardBinary)
	return o
}

// backupTool resolves --allow-backup-tool (hardening.ResolveBackupTool).
func backupTool(g *globalOptions, flag string) (string, error) {
	p, err := hardening.ResolveBackupTool(flag, g.cfg.PhysicalTool)
	if err != nil {
		return "", withHint(usagef(fmt.Sprintf("--allow-backup-tool %s: %v", flag, err)), "give the tool's absolute path, auto or none")
	}
	return p, nil
}

func runHardenUndo(ctx context.Context, g *globalOptions, ho *hardenOptions) error {
	plan, err := hardening.LoadState(ho.o.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return withHint(fmt.Errorf("%w: nothing to undo (no %s)", os.ErrNotExist, hardening.StateFile(ho.o.StatePath)), "")
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
	proc := hardenProcedure(g, daemon.NewClient(g.cfg.Socket), &ho.creds)
	defer proc.wipe()
	res, err := proc.Undo(ctx, plan, hardening.UndoOptions{})
	if err != nil {
		return err
	}
	if plan.EncryptDataDir {
		fmt.Fprintf(g.p.out, "restored the plain setup of %s: the datadir %s is decrypted\n", plan.Binary, plan.DataDir)
	} else {
		fmt.Fprintf(g.p.out, "restored the plain setup of %s; the datadir %s stays in @mysql as before hardening, open to %s by the rule: %s\n", plan.Binary, plan.DataDir, plan.Binary, res.PlainRule)
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
