package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/internal/config"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/procfs"
	"github.com/mysecure/mysecure/internal/sshclient"
)

func historyOf(g *globalOptions) *schedule.History { return schedule.StoreHistory(g.cfg.Store) }

// daemonJobRunner runs scheduled jobs inside the daemon, on its keys.
func daemonJobRunner(g *globalOptions, svc *backup.Service, log *slog.Logger, jobs *schedule.JobList) *schedule.Runner {
	return schedule.Runner{
		HookSource: g.configFileForEdit(), Metrics: g.cfg.MetricsTextfile, Jobs: jobs.Load, Log: log.With("module", "scheduler"),
		Backup: func(ctx context.Context, o backup.Options) (*backup.Manifest, error) { return svc.Backup(ctx, o, nil) },
		Prune:  func(ctx context.Context, o backup.PruneOptions) ([]backup.PruneDecision, error) { return svc.Prune(o) },
	}.InStore(g.cfg.Store)
}

// daemonSchedules re-reads the schedules and the ssh: section for a
// daemon reload: from the config file the daemon read at start, or else
// from the one `schedule add` writes (--config, $MYSECURE_CONFIG, the
// default path), which may have appeared since: on a fresh host the first
// `schedule add` creates it.
func daemonSchedules(g *globalOptions) ([]schedule.Job, sshclient.Settings, error) {
	c, err := readSchedules(g.configFileForEdit())
	if err != nil {
		return nil, sshclient.Settings{}, err
	}
	if err := config.CheckReload(&g.cfg, c); err != nil {
		return nil, c.SSH, err
	}
	return c.Schedules, c.SSH, nil
}

// readSchedules re-reads the schedules, the ssh hosts they use and the
// backup targets from the config file (daemon reload), with the same
// checks and defaults as at start (config.ValidateJobs). A file that does
// not exist holds none (and keeps its name in File, for messages).
func readSchedules(file string) (*Config, error) {
	c := &Config{File: file}
	if file == "" {
		return c, nil
	}
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	// Read by root: it names the programs and hooks the daemon runs.
	if err := config.CheckTrusted(file, os.Geteuid()); err != nil {
		return nil, err
	}
	v := viper.New()
	if err := readConfigFile(v, file); err != nil {
		return nil, fmt.Errorf("%w: %v", backup.ErrUsage, err)
	}
	exact := func(dc *mapstructure.DecoderConfig) { dc.ErrorUnused = true }
	for key, dst := range map[string]any{"schedules": &c.Schedules, "ssh": &c.SSH, "backup-targets": &c.BackupTargets, "backup-to": &c.BackupTo} {
		if err := v.UnmarshalKey(key, dst, exact); err != nil {
			return nil, fmt.Errorf("%w: %s: %s: %v", backup.ErrUsage, file, key, oneLine(err))
		}
	}
	if err := config.ValidateJobs(c); err != nil {
		h, _ := hint.Of(err)
		return nil, hint.Wrap(fmt.Errorf("%w: %v", backup.ErrUsage, err), h)
	}
	return c, nil
}

// runJob runs a configured job from this process (system cron, systemd,
// run-now): the backup itself goes to the daemon when it runs, else is
// done here with the volume credential; lock, history, hooks, retention,
// metrics and webhook are shared with the daemon's scheduler.
func runJob(ctx context.Context, g *globalOptions, eo *execOptions, name, trigger string, jitter bool) error {
	if os.Geteuid() != 0 {
		return withHint(fmt.Errorf("%w: jobs run as root (their history and locks are in the store)", os.ErrPermission), "members of the backup group run 'mysecure backup' without --job")
	}
	job, err := schedule.Find(g.cfg.Schedules, name)
	if err != nil {
		return withHint(err, "'mysecure schedule list' shows the jobs; 'mysecure schedule add' makes one")
	}
	if jitter {
		if d := job.Delay(); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	eo.keep = true
	defer eo.close()
	r := schedule.Runner{
		HookSource: g.cfg.File, Metrics: g.cfg.MetricsTextfile, Jobs: func() []schedule.Job { return g.cfg.Schedules },
		Log: slog.New(slog.NewJSONHandler(g.p.err, nil)),
		Backup: func(ctx context.Context, o backup.Options) (*backup.Manifest, error) {
			var m backup.Manifest
			err := runOp(ctx, g, eo, backup.Request{Op: backup.OpBackup, Backup: &o}, &m)
			return &m, err
		},
		Prune: func(ctx context.Context, o backup.PruneOptions) ([]backup.PruneDecision, error) {
			var d []backup.PruneDecision
			err := runOp(ctx, g, eo, backup.Request{Op: backup.OpPrune, Prune: &o}, &d)
			return d, err
		},
	}.InStore(g.cfg.Store)
	rec, err := r.Run(ctx, *job, trigger)
	if err != nil {
		return err
	}
	if eo.JSON {
		return g.p.json(rec)
	}
	fmt.Fprintf(g.p.out, "job %s: backup %s complete, %s stored, %s", rec.Job, rec.BackupID, human(rec.Stored), rec.Duration().Round(time.Millisecond))
	if len(rec.Pruned) > 0 {
		fmt.Fprintf(g.p.out, "; pruned %s", strings.Join(rec.Pruned, ", "))
	}
	fmt.Fprintln(g.p.out)
	return nil
}

// warnNoCron warns when no cron daemon would run the lines just written.
func warnNoCron(g *globalOptions, file string, st schedule.CronStatus) {
	switch {
	case st.Running != "":
	case st.Installed == "":
		fmt.Fprintf(g.p.err, "mysecure: warning: no cron daemon is installed: nothing will run the jobs in %s\n", file)
		g.p.hintf("install one (Debian: apt-get install cron), or let systemd run them: 'mysecure schedule install --systemd'")
	default:
		fmt.Fprintf(g.p.err, "mysecure: warning: %s is installed but not running: the jobs in %s will not run until it does\n", st.Installed, file)
		g.p.hintf("start it: systemctl enable --now cron (or your init system's equivalent)")
	}
}

// notifyDaemon asks a running daemon to re-read the schedules.
func notifyDaemon(ctx context.Context, g *globalOptions) {
	var res map[string]int
	err := daemon.NewClient(g.cfg.Socket).WithJobErrors(backup.WireError).Job(ctx, backup.Request{Op: backup.OpScheduleReload}, nil, &res)
	switch {
	case err == nil:
		g.p.noticef("the daemon reloaded its schedules (%d jobs)", res["jobs"])
	case errors.Is(err, daemon.ErrNotRunning):
	default:
		g.p.noticef("the daemon did not reload its schedules: %v (send it SIGHUP)", oneLine(err))
	}
}

func newScheduleCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Scheduled backups: add, list, remove, run, history, status, system cron",
		Long: `Backup jobs are 'schedules:' entries of the config file. The daemon runs them
(robfig/cron); 'schedule install --cron' or '--systemd' lets system cron or a
systemd timer run them instead ('mysecure backup --job NAME'). Both share one
job definition, one lock per job and one history. See docs/schedules.md.`,
	}
	cmd.AddCommand(newScheduleAddCommand(g), newScheduleListCommand(g), newScheduleRemoveCommand(g),
		newScheduleRunNowCommand(g), newScheduleHistoryCommand(g), newScheduleStatusCommand(g),
		newScheduleInstallCommand(g), newScheduleUninstallCommand(g))
	return cmd
}

func newScheduleAddCommand(g *globalOptions) *cobra.Command {
	var j schedule.Job
	var replace bool
	cmd := &cobra.Command{
		Use:   "add NAME --schedule EXPR",
		Short: "Add a backup job to the config file",
		Example: `  mysecure schedule add nightly --schedule "30 2 * * *" --keep-daily 7 --keep-weekly 4 --max-age 26h
  mysecure schedule add hourly-shop --schedule @hourly --databases shop --keep-last 24 --overlap skip
  mysecure schedule add nightly-db1 --schedule "0 2 * * *" --ssh db1 --remote-dump --keep-daily 7`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			j.Name = args[0]
			if err := validateJobSSH(g, &j); err != nil {
				return err
			}
			if err := j.Validate(); err != nil {
				return withHint(usagef(oneLine(err)), `a schedule is 5 cron fields ("30 2 * * *") or @hourly, @daily, @weekly, @monthly, @every 6h`)
			}
			file := g.configFileForEdit()
			if err := schedule.AddJob(file, j, replace, g.cfg.Schedules); err != nil {
				if errors.Is(err, os.ErrExist) {
					return withHint(err, "pass --replace to change it, or choose another name")
				}
				return err
			}
			s, _ := j.Parse()
			fmt.Fprintf(g.p.out, "added job %s to %s; next run %s\n", j.Name, file, s.Next(time.Now()).Format(time.RFC3339))
			notifyDaemon(cmd.Context(), g)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&j.Schedule, "schedule", "", "cron `EXPR` (\"30 2 * * *\") or @daily, @hourly, @every 6h")
	f.StringVar(&j.Type, "type", "", "logical (default) or physical")
	f.StringSliceVar(&j.Databases, "databases", nil, "logical: only these databases")
	f.StringVar(&j.Credentials, "credentials", "", "stored credentials `NAME` (default: default)")
	f.IntVar(&j.Level, "level", 0, "zstd level")
	f.IntVar(&j.Retention.KeepLast, "keep-last", 0, "after each success keep the `N` newest of this job's backups")
	f.IntVar(&j.Retention.KeepDaily, "keep-daily", 0, "... and the newest of each of the last `N` days")
	f.IntVar(&j.Retention.KeepWeekly, "keep-weekly", 0, "... weeks")
	f.IntVar(&j.Retention.KeepMonthly, "keep-monthly", 0, "... months")
	f.IntVar(&j.Retention.KeepYearly, "keep-yearly", 0, "... years")
	f.DurationVar(&j.Retention.KeepWithin, "keep-within", 0, "... and everything newer than `DURATION`")
	f.DurationVar(&j.Jitter, "jitter", 0, "delay each run by a random time up to `DURATION`")
	f.StringVar(&j.Timezone, "timezone", "", "time zone of the schedule (e.g. Europe/Berlin)")
	f.DurationVar(&j.MaxAge, "max-age", 0, "'schedule status' fails when the last success is older than `DURATION`")
	f.BoolVar(&j.CatchUp, "catch-up", false, "run once at daemon start when a run was missed")
	f.StringVar(&j.Overlap, "overlap", "", "when the previous run is still going: skip (default) or queue")
	f.StringVar(&j.PreHook, "pre-hook", "", "shell `COMMAND` before the backup (failure fails the run)")
	f.StringVar(&j.PostHook, "post-hook", "", "shell `COMMAND` after the run ($MYSECURE_STATUS, $MYSECURE_BACKUP_ID, $MYSECURE_ERROR)")
	f.StringVar(&j.Webhook, "webhook", "", "POST the run record as JSON to `URL` on failure")
	f.BoolVar(&j.WebhookOnSuccess, "webhook-on-success", false, "call the webhook on success too")
	f.StringVar(&j.SSH, "ssh", "", "back up the server of ssh host `NAME` (a name of the ssh: section)")
	f.BoolVar(&j.RemoteDump, "remote-dump", false, "with --ssh: run the dump tool on that host and stream its output back")
	f.BoolVar(&replace, "replace", false, "replace a job of the same name")
	return cmd
}

// validateJobSSH checks --ssh and --remote-dump of schedule add: a job
// that runs unattended names a configured host (a typo must not become a
// DNS lookup at 2 a.m., and its keys and known_hosts are configured).
func validateJobSSH(g *globalOptions, j *schedule.Job) error {
	if j.SSH == "" {
		if j.RemoteDump {
			return usagef("--remote-dump needs --ssh NAME")
		}
		return nil
	}
	if _, ok := g.cfg.SSH.Lookup(j.SSH); ok {
		_, err := g.cfg.SSH.Resolve(j.SSH)
		return err
	}
	hint := "add the host to the ssh: section of the config file (docs/ssh.md)"
	if names := g.cfg.SSH.Names(); len(names) > 0 {
		hint = "configured ssh hosts: " + strings.Join(names, ", ")
	}
	return withHint(usagef(fmt.Sprintf("--ssh %s: no ssh host of that name in the configuration", j.SSH)), hint)
}

func newScheduleRemoveCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use: "remove NAME", Short: "Remove a backup job from the config file", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := schedule.Find(g.cfg.Schedules, args[0]); err != nil {
				return withHint(err, "'mysecure schedule list' shows the jobs")
			}
			file := g.configFileForEdit()
			if err := schedule.RemoveJob(file, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.p.out, "removed job %s from %s (its history and backups stay)\n", args[0], file)
			notifyDaemon(cmd.Context(), g)
			return nil
		},
	}
}

func newScheduleListCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use: "list", Short: "List the backup jobs with their next and last runs", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			views := schedule.Views(g.cfg.Schedules, historyOf(g), time.Now())
			if asJSON {
				return g.p.json(views)
			}
			tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCHEDULE\tTYPE\tNEXT\tLAST RUN\tSTATUS")
			for _, v := range views {
				typ := v.Type
				if typ == "" {
					typ = backup.Logical
				}
				next, last, status := "-", "-", "-"
				if v.Next != nil {
					next = v.Next.Format(time.RFC3339)
				}
				if v.LastRun != nil {
					last, status = v.LastRun.Started.Format(time.RFC3339), v.LastRun.Status
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.Schedule, typ, next, last, status)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newScheduleRunNowCommand(g *globalOptions) *cobra.Command {
	var eo execOptions
	cmd := &cobra.Command{
		Use: "run-now NAME", Short: "Run a backup job now (with its lock, hooks, retention and history)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(g, cmd.Context())
			defer stop()
			return runJob(ctx, g, &eo, args[0], "manual", false)
		},
	}
	eo.AddFlags(cmd.Flags())
	return cmd
}

func newScheduleHistoryCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use: "history [NAME]", Short: "Show the recorded runs of the jobs", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job := ""
			if len(args) == 1 {
				job = args[0]
			}
			all, err := schedule.Runs(historyOf(g), g.cfg.Schedules, job, limit)
			if errors.Is(err, backup.ErrNotFound) {
				return withHint(err, "'mysecure schedule list' shows the jobs")
			}
			if err != nil {
				return err
			}
			if asJSON {
				return g.p.json(all)
			}
			tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSTARTED\tDURATION\tTRIGGER\tSTATUS\tBACKUP\tSTORED\tERROR")
			for _, r := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Job, r.Started.Format(time.RFC3339), r.Duration().Round(time.Second),
					r.Trigger, r.Status, dash(r.BackupID), human(r.Stored), r.Error)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&limit, "limit", 0, "show only the last `N` runs")
	return cmd
}

func newScheduleStatusCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Check that every job's last success is recent enough (for monitoring)",
		Long: `Exits 13 when a job with max-age has not succeeded within it (or never),
0 otherwise. Jobs without max-age are listed but never fail the check.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := schedule.CheckAll(g.cfg.Schedules, historyOf(g), time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				if err := g.p.json(out); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "JOB\tSTATE\tLAST SUCCESS\tMAX AGE\tLAST RUN")
				for _, s := range out {
					state := "ok"
					if !s.OK {
						state = "STALE: " + s.Reason
					}
					last := "-"
					if s.LastSuccess != nil {
						last = s.LastSuccess.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Job, state, last, dash(s.MaxAge), dash(s.LastStatus))
				}
				tw.Flush()
			}
			if err := schedule.Stale(out); err != nil {
				return withHint(err, "'mysecure schedule history' shows what happened")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type installOptions struct {
	Cron, Systemd bool
	CronFile      string
	SystemdDir    string
	KeyFile       string
	LogFile       string
}

func (o *installOptions) invocation(g *globalOptions) (schedule.Invocation, error) {
	inv, err := schedule.NewInvocation(g.cfg.File, o.LogFile, o.KeyFile)
	if errors.Is(err, schedule.ErrNoConfigFile) {
		return inv, withHint(usagef(err.Error()), "add them with 'mysecure schedule add' (writes "+defaultConfigFile+"), or pass --config")
	}
	return inv, err
}

func newScheduleInstallCommand(g *globalOptions) *cobra.Command {
	var o installOptions
	cmd := &cobra.Command{
		Use:   "install --cron|--systemd [NAME...]",
		Short: "Let system cron or systemd timers run the jobs instead of the daemon",
		Long: `--cron writes /etc/cron.d/mysecure, one line per job, each running
'mysecure backup --job NAME' as root. --systemd writes a oneshot service and a
timer per job (mysecure-backup-NAME.service/.timer). Without names, every job.

The jobs keep their definition in the config file, their lock and their
history; install marks them 'system: true' there, so that the daemon's
scheduler leaves them to cron ('schedule uninstall' gives them back). Run
install again after changing a job. Without a daemon the backup needs a
credential: --keyfile.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Cron == o.Systemd {
				return usagef("give exactly one of --cron and --systemd")
			}
			if len(g.cfg.Schedules) == 0 {
				return withHint(usagef("no schedules are configured"), "add one with 'mysecure schedule add NAME --schedule EXPR'")
			}
			jobs, names, err := schedule.Installed(g.cfg.Schedules, args)
			if err != nil {
				return withHint(err, "'mysecure schedule list' shows the jobs")
			}
			inv, err := o.invocation(g)
			if err != nil {
				return err
			}
			// After the files are written: the daemon leaves these jobs to cron.
			mark := func() error {
				if err := schedule.MarkSystem(g.cfg.File, names, true); err != nil {
					return fmt.Errorf("wrote the files, but could not mark the jobs 'system: true' in %s: %w", g.cfg.File, err)
				}
				notifyDaemon(cmd.Context(), g)
				return nil
			}
			if o.Cron {
				b, err := schedule.CronD(jobs, inv)
				if err != nil {
					return withHint(usagef(oneLine(err)), "")
				}
				if err := schedule.WriteGenerated(o.CronFile, b, 0o644); err != nil {
					return err
				}
				fmt.Fprintf(g.p.out, "wrote %s (%d jobs)\n", o.CronFile, len(jobs))
				warnNoCron(g, o.CronFile, schedule.FindCron(procfs.Root, schedule.CronBinDirs))
				return mark()
			}
			units, err := schedule.SystemdUnits(jobs, inv)
			if err != nil {
				return withHint(usagef(oneLine(err)), "")
			}
			var timers []string
			for _, name := range schedule.SortedNames(units) {
				if err := schedule.WriteGenerated(filepath.Join(o.SystemdDir, name), units[name], 0o644); err != nil {
					return err
				}
				fmt.Fprintf(g.p.out, "wrote %s\n", filepath.Join(o.SystemdDir, name))
				if strings.HasSuffix(name, ".timer") {
					timers = append(timers, name)
				}
			}
			g.p.noticef("enable them with: systemctl daemon-reload && systemctl enable --now %s", strings.Join(timers, " "))
			return mark()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Cron, "cron", false, "write a cron.d file")
	f.BoolVar(&o.Systemd, "systemd", false, "write systemd service and timer units")
	f.StringVar(&o.CronFile, "cron-file", "/etc/cron.d/mysecure", "the cron.d `FILE`")
	f.StringVar(&o.SystemdDir, "systemd-dir", "/etc/systemd/system", "the unit `DIR`")
	f.StringVar(&o.KeyFile, "keyfile", "", "unlock with this key file when no daemon runs")
	f.StringVar(&o.LogFile, "log", "/var/log/mysecure/cron.log", "cron: append the jobs' output to `FILE`")
	return cmd
}

func newScheduleUninstallCommand(g *globalOptions) *cobra.Command {
	var o installOptions
	cmd := &cobra.Command{
		Use: "uninstall", Short: "Remove the cron.d file and systemd units that 'schedule install' wrote", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			units, _ := filepath.Glob(filepath.Join(o.SystemdDir, schedule.UnitName("*")))
			removed := schedule.RemoveGenerated(append([]string{o.CronFile}, units...))
			for _, p := range removed {
				fmt.Fprintf(g.p.out, "removed %s\n", p)
			}
			if len(removed) == 0 {
				fmt.Fprintln(g.p.out, "nothing to remove")
			} else if len(units) > 0 {
				g.p.noticef("run: systemctl daemon-reload (and stop the removed timers)")
			}
			if g.cfg.File != "" {
				if err := schedule.MarkSystem(g.cfg.File, nil, false); err != nil {
					return err
				}
				notifyDaemon(cmd.Context(), g)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.CronFile, "cron-file", "/etc/cron.d/mysecure", "the cron.d `FILE`")
	cmd.Flags().StringVar(&o.SystemdDir, "systemd-dir", "/etc/systemd/system", "the unit `DIR`")
	return cmd
}
