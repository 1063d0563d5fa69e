package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/humanize"
	"github.com/mysecure/mysecure/service"
)

// execOptions say where a backup operation runs: in the daemon (which
// holds the keys; the only way for the backup group), or in this process
// with the volume credential (root, no daemon needed).
type execOptions struct {
	Local bool
	JSON  bool
	Creds credOptions

	// svc is the service unlocked by the first local operation (a job
	// runs a backup and a prune with one unlock).
	svc  *backup.Service
	keys *volume.Keys
	keep bool // keep svc unlocked across runOp calls (the caller closes)
	// sshPassFile is --ssh-key-passphrase-file (for runs in this process).
	sshPassFile string
}

// close wipes the keys of a local service.
func (o *execOptions) close() {
	if o.keys != nil {
		o.keys.Wipe()
		o.keys, o.svc = nil, nil
	}
}

// localService unlocks the volume once with the credential options.
func (o *execOptions) localService(g *globalOptions) (*backup.Service, error) {
	if o.svc != nil {
		return o.svc, nil
	}
	if os.Geteuid() != 0 {
		return nil, withHint(fmt.Errorf("%w: running without the daemon needs root", os.ErrPermission), "run as root with the volume credential, or ask the daemon (drop --local)")
	}
	vol, keys, err := openVolume(g, &o.Creds)
	if err != nil {
		return nil, err
	}
	svc, err := backupService(g, vol, keys, slog.New(slog.DiscardHandler))
	if err != nil {
		keys.Wipe()
		return nil, err
	}
	// The tools run here, but the daemon (if one serves the mount) saw
	// what its rules denied them.
	svc.Tools.Denials = service.ClientDenials(daemon.NewClient(g.cfg.Socket))
	svc.SSH = sshDialer(g, true, o.sshPassFile, slog.New(slog.DiscardHandler))
	o.svc, o.keys = svc, keys
	return svc, nil
}

// targetFlag is the --target flag of the catalog commands.
func targetFlag(f *pflag.FlagSet, target *string) {
	f.StringVar(target, "target", "", "the catalog of `TARGET`: local (default) or a name under backup-targets")
}

func (o *execOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Local, "local", false, "run in this process with the volume credential, even when a daemon runs")
	f.BoolVar(&o.JSON, "json", false, "print the result as JSON")
	o.Creds.AddFlags(f)
}

// backupService builds the backup module on unlocked keys (the daemon's,
// or this process's for --local).
func backupService(g *globalOptions, vol *volume.Volume, keys *volume.Keys, log *slog.Logger) (*backup.Service, error) {
	svc, err := backup.NewService(vol, keys, backup.Config{
		Store: g.cfg.Store, Category: g.cfg.BackupCategory, Log: log, SSH: sshDialer(g, false, "", log),
		Tools: backup.Tools{
			Dump: g.cfg.DumpTool, Physical: g.cfg.PhysicalTool, Client: g.cfg.ClientTool, Mbstream: g.cfg.MbstreamTool,
			DumpArgs: g.cfg.DumpArgs, PhysicalArgs: g.cfg.PhysicalArgs, RuntimeDir: filepath.Dir(g.cfg.Socket),
		},
	})
	if err != nil {
		return nil, withHint(err, "set backup-category to a category of the volume ('mysecure key list' shows them)")
	}
	if svc.Remotes, err = remotes(&g.cfg); err != nil {
		return nil, err
	}
	return svc, nil
}

// runOp runs a backup request in the daemon or locally, printing progress
// on stderr, and decodes the result into out.
func runOp(ctx context.Context, g *globalOptions, eo *execOptions, req backup.Request, out any) error {
	if !eo.keep {
		defer eo.close()
	}
	progress := newProgressPrinter(g, req.Op)
	defer progress.done()
	if !eo.Local {
		sock := g.cfg.Socket
		if os.Geteuid() != 0 {
			sock = g.cfg.JobSocket
		}
		err := daemon.NewClient(sock).WithJobErrors(backup.WireError).Job(ctx, req, func(ev json.RawMessage) {
			var p backup.Progress
			if json.Unmarshal(ev, &p) == nil {
				progress.update(p)
			}
		}, out)
		if !errors.Is(err, daemon.ErrNotRunning) {
			return err
		}
		if os.Geteuid() != 0 {
			return withHint(err, "backups for the backup group run in the daemon: ask root to mount the volume ('mysecure mount') and to set backup-group")
		}
		g.p.noticef("no daemon on %s: running here with the volume credential", sock)
	}
	svc, err := eo.localService(g)
	if err != nil {
		return err
	}
	return svc.DoInto(ctx, req, true, progress.update, out)
}

// progressPrinter shows a progress line on a terminal, JSON lines
// otherwise.
type progressPrinter struct {
	g     *globalOptions
	op    string
	tty   bool
	shown bool
}

func newProgressPrinter(g *globalOptions, op string) *progressPrinter {
	f, ok := g.p.err.(*os.File)
	return &progressPrinter{g: g, op: op, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (p *progressPrinter) update(pr backup.Progress) {
	el, rate := pr.Elapsed.Seconds(), pr.Rate()
	if p.tty {
		fmt.Fprintf(p.g.p.err, "\r%s %s: %s read, %s stored, %s/s, %s   ", p.op, pr.ID, human(pr.PlainBytes), human(pr.StoredBytes), human(int64(rate)), pr.Elapsed.Truncate(time.Second))
		p.shown = true
		return
	}
	json.NewEncoder(p.g.p.err).Encode(map[string]any{
		"time": time.Now().UTC().Format(time.RFC3339), "msg": "progress", "op": p.op, "id": pr.ID,
		"plain_bytes": pr.PlainBytes, "stored_bytes": pr.StoredBytes, "elapsed_seconds": el, "bytes_per_second": int64(rate),
	})
}

func (p *progressPrinter) done() {
	if p.shown {
		fmt.Fprintln(p.g.p.err)
	}
}

func human(n int64) string { return humanize.Bytes(n) }

// signalContext cancels on SIGINT/SIGTERM so that a running backup or
// restore removes its partial output before the process exits.
func signalContext(g *globalOptions, parent context.Context) (context.Context, func()) {
	g.ownSignals.Store(true)
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

type backupOptions struct {
	exec      execOptions
	Type      string
	Databases []string
	Creds     string
	Level     int
	Job       string
	Scheduled bool
	To        []string
	ssh       sshFlags
}

func newBackupCommand(g *globalOptions) *cobra.Command {
	var o backupOptions
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Run an encrypted backup, and manage the catalog and the backup credentials",
		Long: `Runs mariadb-dump/mysqldump (logical) or mariabackup/xtrabackup (physical)
and streams its output through zstd into the encrypted @mysqlbackup category.
The tools get the MySQL credentials stored with 'backup credentials set'
through a pipe, never on the command line or on disk.

With the daemon running ('mysecure mount'), the backup runs in the daemon:
root and members of the configured backup-group can start it without the
MySQL password, and cannot read the result. Without a daemon, root can run
it with the volume credential.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(g, cmd.Context())
			defer stop()
			if o.Job != "" {
				for _, f := range []string{"type", "databases", "credentials", "level", "ssh", "remote-dump"} {
					if cmd.Flags().Changed(f) {
						return withHint(usagef("--"+f+" cannot be combined with --job"), "a job takes its options from its schedule in the config file")
					}
				}
				trigger := "manual"
				if o.Scheduled {
					trigger = "cron"
				}
				return runJob(ctx, g, &o.exec, o.Job, trigger, o.Scheduled)
			}
			return runBackup(ctx, g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Type, "type", "logical", "logical (mariadb-dump) or physical (mariabackup)")
	f.StringSliceVar(&o.Databases, "databases", nil, "logical: back up only these databases (comma separated)")
	f.StringVar(&o.Creds, "credentials", backup.DefaultCredentials, "stored credentials `NAME` to connect with")
	f.IntVar(&o.Level, "level", 0, "zstd compression level 1-22 (default: backup-level, 1)")
	f.StringVar(&o.Job, "job", "", "run the configured job `NAME` (its options, lock, hooks, retention and history)")
	f.BoolVar(&o.Scheduled, "scheduled", false, "with --job: called by system cron (applies the job's jitter)")
	f.StringSliceVar(&o.To, "to", nil, "write the backup to these `TARGETS`: local and names under backup-targets (default: backup-to, else local)")
	o.ssh.AddFlags(f, true)
	o.exec.AddFlags(f)
	cmd.AddCommand(newCredentialsCommand(g), newBackupListCommand(g), newBackupShowCommand(g),
		newBackupVerifyCommand(g), newBackupDeleteCommand(g), newBackupPruneCommand(g))
	return cmd
}

func runBackup(ctx context.Context, g *globalOptions, o backupOptions) error {
	level := o.Level
	if level == 0 {
		level = g.cfg.BackupLevel
	}
	ssh, err := o.ssh.options()
	if err != nil {
		return err
	}
	o.exec.sshPassFile = o.ssh.PassphraseFile
	req := backup.Request{Op: backup.OpBackup, Backup: &backup.Options{
		Type: o.Type, Databases: o.Databases, Credentials: o.Creds, Level: level, SSH: ssh, Targets: g.cfg.Targets(o.To),
	}}
	var m backup.Manifest
	if err := runOp(ctx, g, &o.exec, req, &m); err != nil {
		return err
	}
	if o.exec.JSON {
		return g.p.json(m)
	}
	fmt.Fprintf(g.p.out, "backup %s complete: %s %s, %s of output, %s stored, %s\n",
		m.ID, m.Type, m.Tool.Name, human(m.PlainBytes), human(m.StoredBytes), m.Duration().Round(time.Millisecond))
	return nil
}

func newBackupListCommand(g *globalOptions) *cobra.Command {
	var eo execOptions
	var target string
	cmd := &cobra.Command{
		Use: "list", Short: "List the complete backups", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res backup.ListResult
			if err := runOp(cmd.Context(), g, &eo, backup.Request{Op: backup.OpList, Target: target}, &res); err != nil {
				return err
			}
			if eo.JSON {
				return g.p.json(res)
			}
			tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSTARTED\tDURATION\tDATA\tSTORED\tDATABASES\tJOB")
			for _, e := range res.Backups {
				dbs := strings.Join(e.Databases, ",")
				if dbs == "" && e.Type == backup.Logical {
					dbs = "(all)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Type, e.Started.Format(time.RFC3339),
					e.Duration().Round(time.Second), human(e.PlainBytes), human(e.StoredBytes), dbs, e.Job)
			}
			tw.Flush()
			for id, why := range res.Broken {
				g.p.errorf("backup %s is damaged: %s", id, why)
			}
			if len(res.Broken) > 0 {
				return withHint(fmt.Errorf("%w: %d damaged backups", backup.ErrCorrupt, len(res.Broken)), "'mysecure backup delete ID' removes a damaged backup")
			}
			return nil
		},
	}
	eo.AddFlags(cmd.Flags())
	targetFlag(cmd.Flags(), &target)
	return cmd
}

func newBackupShowCommand(g *globalOptions) *cobra.Command {
	var eo execOptions
	var target string
	cmd := &cobra.Command{
		Use: "show ID", Short: "Show a backup's manifest", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var e backup.Entry
			if err := runOp(cmd.Context(), g, &eo, backup.Request{Op: backup.OpShow, ID: args[0], Target: target}, &e); err != nil {
				return err
			}
			if eo.JSON {
				return g.p.json(e)
			}
			w := g.p.out
			fmt.Fprintf(w, "id:           %s\ntype:         %s\n", e.ID, e.Type)
			if e.Job != "" {
				fmt.Fprintf(w, "job:          %s\n", e.Job)
			}
			fmt.Fprintf(w, "started:      %s\nfinished:     %s (%s)\n", e.Started.Format(time.RFC3339), e.Finished.Format(time.RFC3339), e.Duration().Round(time.Millisecond))
			fmt.Fprintf(w, "tool:         %s (%s)\nserver:       %s\n", e.Tool.Path, e.Tool.Version, e.Server.Version)
			if len(e.Databases) > 0 {
				fmt.Fprintf(w, "databases:    %s\n", strings.Join(e.Databases, ", "))
			}
			if e.Binlog != nil {
				fmt.Fprintf(w, "binlog:       %s:%d gtid %s\n", e.Binlog.File, e.Binlog.Position, e.Binlog.GTID)
			}
			fmt.Fprintf(w, "data:         %d bytes, sha256 %s\n", e.PlainBytes, e.PlainSHA256)
			fmt.Fprintf(w, "stored:       %d bytes (zstd level %d: %d bytes)\n", e.StoredBytes, e.Level, e.PackedBytes)
			fmt.Fprintf(w, "credentials:  %s\nstore path:   %s\n", e.Credentials, e.StorePath)
			return nil
		},
	}
	eo.AddFlags(cmd.Flags())
	targetFlag(cmd.Flags(), &target)
	return cmd
}

func newBackupVerifyCommand(g *globalOptions) *cobra.Command {
	var eo execOptions
	var target string
	var all bool
	cmd := &cobra.Command{
		Use: "verify ID|--all", Short: "Decrypt, decompress and check backups against their manifests",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) || len(args) > 1 {
				return usagef("give one backup ID or --all")
			}
			req := backup.Request{Op: backup.OpVerify, All: all, Target: target}
			if !all {
				req.ID = args[0]
			}
			ctx, stop := signalContext(g, cmd.Context())
			defer stop()
			var res []backup.VerifyResult
			err := runOp(ctx, g, &eo, req, &res)
			if eo.JSON && res != nil {
				if jerr := g.p.json(res); jerr != nil {
					return jerr
				}
			} else {
				for _, r := range res {
					if r.OK {
						fmt.Fprintf(g.p.out, "%s ok (%s)\n", r.ID, human(r.Bytes))
					} else {
						fmt.Fprintf(g.p.out, "%s FAILED: %s\n", r.ID, r.Error)
					}
				}
			}
			if err != nil {
				return withHint(err, "restore from another backup; 'mysecure backup delete ID' removes a damaged one")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "verify every backup")
	eo.AddFlags(cmd.Flags())
	targetFlag(cmd.Flags(), &target)
	return cmd
}

func newBackupDeleteCommand(g *globalOptions) *cobra.Command {
	var eo execOptions
	var target string
	cmd := &cobra.Command{
		Use: "delete ID...", Short: "Delete backups", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, id := range args {
				if err := runOp(cmd.Context(), g, &eo, backup.Request{Op: backup.OpDelete, ID: id, Target: target}, nil); err != nil {
					return err
				}
				fmt.Fprintf(g.p.out, "deleted %s\n", id)
			}
			return nil
		},
	}
	eo.AddFlags(cmd.Flags())
	targetFlag(cmd.Flags(), &target)
	return cmd
}

func newBackupPruneCommand(g *globalOptions) *cobra.Command {
	var eo execOptions
	var target string
	var o backup.PruneOptions
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete the backups a retention policy does not keep",
		Long: `Keeps, per backup type (and schedule), the newest --keep-last backups and
the newest backup of each of the last --keep-daily days, --keep-weekly ISO
weeks, --keep-monthly months and --keep-yearly years that have backups. At
least one --keep option is required. --dry-run only shows the decisions.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res []backup.PruneDecision
			err := runOp(cmd.Context(), g, &eo, backup.Request{Op: backup.OpPrune, Prune: &o, Target: target}, &res)
			if err != nil && res == nil {
				return err
			}
			if eo.JSON {
				if jerr := g.p.json(res); jerr != nil {
					return jerr
				}
				return err
			}
			tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tGROUP\tSTARTED\tDECISION")
			for _, d := range res {
				what := "keep (" + strings.Join(d.Reasons, ", ") + ")"
				switch {
				case d.Keep:
				case d.Deleted:
					what = "deleted"
				case d.Error != "":
					what = "delete failed: " + d.Error
				default:
					what = "would delete"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.ID, d.Group, d.Started, what)
			}
			tw.Flush()
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Policy.Last, "keep-last", 0, "keep the `N` newest backups")
	f.IntVar(&o.Policy.Daily, "keep-daily", 0, "keep the newest backup of each of the last `N` days with backups")
	f.IntVar(&o.Policy.Weekly, "keep-weekly", 0, "keep the newest backup of each of the last `N` weeks with backups")
	f.IntVar(&o.Policy.Monthly, "keep-monthly", 0, "keep the newest backup of each of the last `N` months with backups")
	f.IntVar(&o.Policy.Yearly, "keep-yearly", 0, "keep the newest backup of each of the last `N` years with backups")
	f.DurationVar(&o.Policy.Within, "keep-within", 0, "keep every backup newer than `DURATION` (e.g. 72h)")
	f.BoolVar(&o.DryRun, "dry-run", false, "show what would be deleted, delete nothing")
	f.StringVar(&o.Job, "job", "", "prune only the backups of schedule `NAME`")
	f.StringVar(&o.Location, "timezone", "", "time zone of the day/week/month buckets (default UTC)")
	eo.AddFlags(f)
	targetFlag(f, &target)
	return cmd
}

type restoreOptions struct {
	exec execOptions
	o    backup.RestoreOptions
	ssh  sshFlags
}

func newRestoreCommand(g *globalOptions) *cobra.Command {
	var ro restoreOptions
	cmd := &cobra.Command{
		Use:   "restore ID",
		Short: "Restore a backup into a server (logical) or a datadir (physical)",
		Long: `A logical backup is streamed into the mariadb/mysql client, with the
backup's stored credentials or --credentials NAME (another server), optionally
into another database (--rename-to, for one-database backups).

A physical backup is extracted with mbstream into --target DIR (empty or
missing) and prepared; with --copy-back DATADIR it is then copied into a
stopped server's empty datadir and given to the mysql user.

Every restore first verifies the backup (size, SHA-256, trailer): nothing is
written from a damaged backup. --from-dir restores a backup directory
copied out of a store (offline, on another machine, with --local and the
volume credential).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if ro.o.FromDir != "" {
				return exactArgs(0)(cmd, args)
			}
			return exactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				ro.o.ID = args[0]
			}
			if err := ro.o.Absolute(); err != nil {
				return err
			}
			ssh, err := ro.ssh.options()
			if err != nil {
				return err
			}
			ro.o.SSH, ro.exec.sshPassFile = ssh, ro.ssh.PassphraseFile
			ctx, stop := signalContext(g, cmd.Context())
			defer stop()
			var res backup.RestoreResult
			if err := runOp(ctx, g, &ro.exec, backup.Request{Op: backup.OpRestore, Restore: &ro.o}, &res); err != nil {
				return err
			}
			if ro.exec.JSON {
				return g.p.json(res)
			}
			switch {
			case res.CopiedTo != "":
				fmt.Fprintf(g.p.out, "restored %s: prepared in %s and copied into %s; start the server on it\n", res.ID, res.Target, res.CopiedTo)
			case res.Target != "":
				fmt.Fprintf(g.p.out, "restored %s: extracted and prepared in %s\n", res.ID, res.Target)
			case res.Database != "":
				fmt.Fprintf(g.p.out, "restored %s into database %s (%s)\n", res.ID, res.Database, human(res.PlainBytes))
			default:
				fmt.Fprintf(g.p.out, "restored %s (%s)\n", res.ID, human(res.PlainBytes))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ro.o.Credentials, "credentials", "", "logical: stored credentials `NAME` of the target server (default: the backup's)")
	f.StringVar(&ro.o.RenameTo, "rename-to", "", "logical: restore a one-database backup into database `NAME`")
	f.StringVar(&ro.o.Target, "target", "", "physical: extract and prepare into `DIR` (empty or missing)")
	f.StringVar(&ro.o.From, "from", "", "restore from the catalog of `TARGET`: local (default) or a name under backup-targets")
	f.StringVar(&ro.o.CopyBack, "copy-back", "", "physical: then copy into the stopped server's empty `DATADIR`")
	f.StringVar(&ro.o.Owner, "owner", "", "physical: owner of the copied files (default mysql)")
	f.StringVar(&ro.o.FromDir, "from-dir", "", "restore the backup directory at `DIR`, copied out of a store")
	f.BoolVar(&ro.o.NoVerify, "no-verify", false, "skip the verification pass before restoring")
	ro.ssh.AddFlags(f, false)
	ro.exec.AddFlags(f)
	return cmd
}

type credSetOptions struct {
	exec         execOptions
	Name         string
	User         string
	Host         string
	Port         int
	Socket       string
	PasswordFile string
	FromCnf      string
	Shred        bool
	NoShred      bool
}

func newCredentialsCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Store, list, show and remove the MySQL credentials backups use",
	}
	var so credSetOptions
	set := &cobra.Command{
		Use:   "set",
		Short: "Store MySQL credentials (encrypted, in @mysqlbackup)",
		Long: `Stores user, password and host/port or socket as an option file in the
encrypted @mysqlbackup category. The password is asked for on the terminal,
or read from --password-file (a path or /dev/fd/N), never from the command
line. --from-cnf reads them from an existing option file ([client] and
related groups); afterwards mysecure offers to shred that plaintext file
(--shred does it without asking).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runCredentialsSet(cmd.Context(), g, so) },
	}
	f := set.Flags()
	f.StringVar(&so.Name, "name", backup.DefaultCredentials, "credentials `NAME`")
	f.StringVar(&so.User, "user", "", "MySQL `USER`")
	f.StringVar(&so.Host, "host", "", "server `HOST` (default: the local socket)")
	f.IntVar(&so.Port, "port", 0, "server `PORT`")
	f.StringVar(&so.Socket, "mysql-socket", "", "server unix `SOCKET`")
	f.StringVar(&so.PasswordFile, "password-file", "", "read the password from `FILE` (a path or /dev/fd/N)")
	f.StringVar(&so.FromCnf, "from-cnf", "", "read user, password, host, port and socket from option `FILE`")
	f.BoolVar(&so.Shred, "shred", false, "with --from-cnf: overwrite and remove the plaintext file afterwards")
	f.BoolVar(&so.NoShred, "keep-cnf", false, "with --from-cnf: keep the plaintext file, do not ask")
	so.exec.AddFlags(f)

	var lo execOptions
	list := &cobra.Command{
		Use: "list", Short: "List stored credentials (passwords redacted)", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res []backup.CredentialsInfo
			if err := runOp(cmd.Context(), g, &lo, backup.Request{Op: backup.OpCredentialsList}, &res); err != nil {
				return err
			}
			if lo.JSON {
				return g.p.json(res)
			}
			tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tUSER\tHOST\tPORT\tSOCKET\tPASSWORD")
			for _, c := range res {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.User, dash(c.Host), dashInt(c.Port), dash(c.Socket), dash(c.Password))
			}
			return tw.Flush()
		},
	}
	lo.AddFlags(list.Flags())

	var sho execOptions
	var redacted bool
	show := &cobra.Command{
		Use: "show [NAME]", Short: "Show stored credentials, password redacted", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !redacted {
				return withHint(usagef("credentials are only shown redacted"), "the password never leaves the store; set it again with 'backup credentials set' to change it")
			}
			name := backup.DefaultCredentials
			if len(args) == 1 {
				name = args[0]
			}
			var c backup.CredentialsInfo
			if err := runOp(cmd.Context(), g, &sho, backup.Request{Op: backup.OpCredentialsShow, Name: name}, &c); err != nil {
				return err
			}
			if sho.JSON {
				return g.p.json(c)
			}
			fmt.Fprintf(g.p.out, "name:     %s\nuser:     %s\nhost:     %s\nport:     %s\nsocket:   %s\npassword: %s\n",
				c.Name, c.User, dash(c.Host), dashInt(c.Port), dash(c.Socket), dash(c.Password))
			return nil
		},
	}
	show.Flags().BoolVar(&redacted, "redacted", true, "redact the password (always)")
	sho.AddFlags(show.Flags())

	var ro execOptions
	remove := &cobra.Command{
		Use: "remove NAME", Short: "Remove stored credentials", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := runOp(cmd.Context(), g, &ro, backup.Request{Op: backup.OpCredentialsRemove, Name: args[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.p.out, "removed credentials %s\n", args[0])
			return nil
		},
	}
	ro.AddFlags(remove.Flags())
	cmd.AddCommand(set, list, show, remove)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashInt(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func runCredentialsSet(ctx context.Context, g *globalOptions, o credSetOptions) error {
	in := &backup.CredentialsIn{User: o.User, Host: o.Host, Port: o.Port, Socket: o.Socket}
	defer in.Wipe()
	if o.FromCnf != "" {
		if err := in.FillFromCnf(o.FromCnf); err != nil {
			return withHint(err, "give a readable MySQL option file with a [client] group")
		}
	}
	t := openTTY()
	if t != nil {
		defer t.Close()
	}
	if in.User == "" {
		if t == nil {
			return usagef("--user is required (no terminal to ask on)")
		}
		user, err := t.readLine("MySQL user: ")
		if err != nil {
			return err
		}
		in.User = user
	}
	switch {
	case o.PasswordFile != "":
		p, err := readSecretFile(o.PasswordFile, "password")
		if err != nil {
			return err
		}
		in.Password = string(p)
		clear(p)
	case o.FromCnf != "":
	case t != nil:
		p, err := t.readSecret(fmt.Sprintf("MySQL password for %s: ", in.User))
		if err != nil {
			return err
		}
		in.Password = string(p)
		clear(p)
	default:
		return withHint(usagef("no password given and no terminal to ask on"), "pass --password-file FILE (or /dev/fd/N), or --from-cnf FILE")
	}
	var info backup.CredentialsInfo
	if err := runOp(ctx, g, &o.exec, backup.Request{Op: backup.OpCredentialsSet, Name: o.Name, Credentials: in}, &info); err != nil {
		return err
	}
	fmt.Fprintf(g.p.out, "stored credentials %s (user %s)\n", info.Name, info.User)
	if o.FromCnf == "" || o.NoShred {
		return nil
	}
	shred := o.Shred
	if !shred && t != nil {
		answer, _ := t.readLine(fmt.Sprintf("shred the plaintext file %s now? [y/N] ", o.FromCnf))
		shred = strings.EqualFold(answer, "y") || strings.EqualFold(answer, "yes")
	}
	if !shred {
		g.p.noticef("%s still holds the password in plaintext: remove it ('shred -u %s'), or run again with --shred", o.FromCnf, o.FromCnf)
		return nil
	}
	if err := backup.Shred(o.FromCnf); err != nil {
		return fmt.Errorf("credentials stored, but shredding %s failed: %w", o.FromCnf, err)
	}
	fmt.Fprintf(g.p.out, "shredded %s\n", o.FromCnf)
	return nil
}
