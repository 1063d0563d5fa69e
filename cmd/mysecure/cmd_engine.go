package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/engine"
	"github.com/mysecure/mysecure/hardening"
	"github.com/mysecure/mysecure/internal/plan"
)

type engineOptions struct {
	creds      credOptions
	o          engine.Options
	flavor     string
	DryRun     bool
	BackupTool string
	// backupToolSet: --allow-backup-tool was given (else enable keeps
	// what the last run recorded).
	backupToolSet bool
	KeepRules     bool
	// status, disable
	Socket       string
	DefaultsFile string
	JSON         bool
	Timeout      time.Duration
}

// addServer adds the flags that reach the running server.
func (eo *engineOptions) addServer(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&eo.Socket, "mysql-socket", "", "the server's unix `SOCKET`")
	f.StringVar(&eo.DefaultsFile, "defaults-file", "", "client option `FILE` with the connection and credentials (never give a password on the command line)")
}

// sqlConn is the client connection of --defaults-file and --mysql-socket
// (nil without either).
func (eo *engineOptions) sqlConn() *engine.Conn { return engine.ClientConn(eo.DefaultsFile, eo.Socket) }

func (eo *engineOptions) addLocate(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&eo.flavor, "flavor", "mariadb", "the server family: mariadb or mysql (MySQL 8.4: component_keyring_file)")
	f.StringVar(&eo.o.Binary, "binary", "", "the server `PATH` as installed (default /usr/sbin/mariadbd, else /usr/sbin/mysqld)")
	f.StringVar(&eo.o.User, "server-user", "mysql", "the OS user the server runs as (the key rule is limited to it)")
	f.StringVar(&eo.o.CnfDir, "cnf-dir", "", "the conf.d `DIR` the server reads (default /etc/mysql/mariadb.conf.d, else /etc/mysql/conf.d)")
	f.StringVar(&eo.o.KeyPath, "key-path", "", "the key file's place in @protected (default "+engine.DefaultKeyPath+")")
	f.StringVar(&eo.o.HardenState, "harden-state", hardening.DefaultStatePath, "the harden state `FILE`: when it exists the rule names the real binary behind the guard")
	f.StringVar(&eo.o.StatePath, "state", engine.DefaultStatePath, "record the applied steps in `FILE`")
	f.StringVar(&eo.o.PluginDir, "plugin-dir", engine.DefaultPluginDir, "MySQL: the plugin `DIR` that gets the keyring component's configuration (the manifest goes next to --binary)")
}

func newEngineCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Engine mode: the server's own encryption at rest, keyed and guarded by mysecure",
		Long: `Engine mode turns on the server's own data-at-rest encryption (MariaDB
file_key_management; MySQL 8.4 component_keyring_file) with its keys in
@protected on the mount, readable only by the fingerprinted server binary.
The datadir stays on a plain disk: near plain-disk speed. See docs/engine.md.`,
	}
	cmd.AddCommand(newEngineEnableCommand(g), newEngineStatusCommand(g), newEngineDisableCommand(g))
	return cmd
}

func newEngineEnableCommand(g *globalOptions) *cobra.Command {
	var eo engineOptions
	cmd := &cobra.Command{
		Use:   "enable",
		Short: "Generate the engine keys into @protected, allow the server to read them, turn encryption on",
		Long: `Generates random engine keys (never shown) straight into @protected, adds the
rule that lets only the server binary (by path and SHA-256, as the server's
user; the real binary behind the guard on a hardened server) read them, and
writes a conf.d file that loads the key plugin (FORCE_PLUS_PERMANENT: without
its keys the server refuses to start) and encrypts tables, the redo log,
temporary tables and files, binary logs and Aria tables. On a hardened
server the key plugin is added to the guard's plugin allow-list.

Restart the server afterwards; existing InnoDB tables are encrypted in the
background ('mysecure engine status' shows the progress). Aria tables keep
the encryption they were created with: run 'engine enable' again with the
server's socket (--mysql-socket or --defaults-file) after the restart, and
it rebuilds the Aria tables still in plaintext (the mysql.* system tables
of a datadir initialized before engine mode), one by one.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			eo.backupToolSet = cmd.Flags().Changed("allow-backup-tool")
			return runEngineEnable(cmd.Context(), g, &eo)
		},
	}
	eo.addLocate(cmd)
	eo.addServer(cmd)
	f := cmd.Flags()
	f.IntVar(&eo.o.Threads, "threads", engine.DefaultThreads, "innodb_encryption_threads: background threads that encrypt existing tables")
	f.BoolVar(&eo.DryRun, "dry-run", false, "print the plan, change nothing")
	f.StringVar(&eo.BackupTool, "allow-backup-tool", "auto", "let the physical backup tool `PATH` read the keys (as root): auto finds mariadb-backup, none adds no rule (default: what the last run recorded, else auto)")
	f.Lookup("allow-backup-tool").NoOptDefVal = "auto"
	f.BoolVar(&eo.KeepRules, "keep-existing-rules", false, "enable even though other rules open the key file")
	eo.creds.AddFlags(f)
	return cmd
}

func engineSetup(g *globalOptions, eo *engineOptions, conn admin.Conn) (*engine.Setup, error) {
	eo.o.Flavor = engine.Flavor(strings.ToLower(eo.flavor))
	eo.o.Mount = g.cfg.Mount
	s, err := engine.NewSetup(eo.o, conn)
	if err != nil {
		return nil, withHint(usagef(err.Error()), "see 'mysecure help engine enable'")
	}
	return s, nil
}

// engineAdminSetup asks for the master credential and returns the setup
// whose steps use it. The caller wipes the credential.
func engineAdminSetup(ctx context.Context, g *globalOptions, eo *engineOptions, c *daemon.Client) (*engine.Setup, *daemon.Credential, error) {
	cred, err := adminCredential(ctx, c, &eo.creds)
	if err != nil {
		return nil, nil, err
	}
	s, err := engineSetup(g, eo, admin.Conn{Client: c, Cred: cred})
	if err != nil {
		cred.Wipe()
		return nil, nil, err
	}
	return s, cred, nil
}

func runEngineEnable(ctx context.Context, g *globalOptions, eo *engineOptions) error {
	var err error
	if eo.o.BackupTool, err = backupTool(g, eo.BackupTool); err != nil {
		return err
	}
	if !eo.backupToolSet {
		if _, err := eo.o.UseRecorded(); err != nil {
			return err
		}
	}
	c := daemon.NewClient(g.cfg.Socket)
	conn := admin.Conn{Client: c}
	s, err := engineSetup(g, eo, conn)
	if err != nil {
		return err
	}
	if _, err := c.Status(ctx); err != nil {
		return err
	}
	foreign, err := s.ForeignRules(ctx)
	if err != nil {
		return err
	}
	// With the server's socket, after the restart: the Aria tables still
	// in plaintext are rebuilt (a step that needs no credential).
	aria, ariaLater, err := s.AriaPlan(ctx, eo.sqlConn())
	if err != nil {
		return err
	}
	findings, changing, err := g.p.checkPlan(ctx, fmt.Sprintf("engine mode for %s (%s; key rule for %s):\n", s.Opts.Binary, s.Opts.Flavor, s.ServerProgram()), append(s.Steps(), aria...))
	if err != nil {
		return err
	}
	setupChanging := len(plan.Drifted(findings[:len(s.Steps())]))
	var refusal error
	if !eo.KeepRules {
		if refusal = engine.ForeignRulesError(foreign); refusal != nil {
			fmt.Fprintf(g.p.out, "refused: %v\n", refusal)
		}
	}
	if refusal != nil {
		return refusal
	}
	if eo.DryRun {
		g.p.dryRun(changing)
		return nil
	}
	if changing == 0 {
		fmt.Fprintln(g.p.out, "nothing to change: engine mode is on")
		if ariaLater != "" && s.Opts.Flavor == engine.MariaDB {
			fmt.Fprintf(g.p.out, "aria: %s\n", ariaLater)
		}
		return nil
	}
	if setupChanging > 0 {
		// Keys, rules, the guard and the option file need the master
		// credential; the Aria rebuild alone does not.
		var cred *daemon.Credential
		if s, cred, err = engineAdminSetup(ctx, g, eo, c); err != nil {
			return err
		}
		defer cred.Wipe()
	}
	r := &plan.Runner{StatePath: s.Opts.StatePath, Params: s.Opts.Params()}
	if _, err := applyPlan(ctx, g, r, "engine", append(s.Steps(), aria...), setupChanging > 0, "run again", "nothing was left changed. "); err != nil {
		return err
	}
	if ariaLater == "" {
		fmt.Fprintf(g.p.out, "engine mode on: the Aria tables are rebuilt encrypted (existing InnoDB tables are encrypted in the background: 'mysecure engine status')\n")
		return nil
	}
	fmt.Fprintf(g.p.out, "engine mode on: restart the server (existing InnoDB tables are encrypted in the background: 'mysecure engine status')\n")
	if s.Opts.Flavor == engine.MariaDB {
		fmt.Fprintf(g.p.out, "aria: %s\n", ariaLater)
	}
	return nil
}

func newEngineStatusCommand(g *globalOptions) *cobra.Command {
	var eo engineOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Engine mode's steps on this host, and the server's encryption progress",
		Long: `Compares engine mode's steps (keys, rules, option file, guard) with the host
and, when the server is reachable (--mysql-socket, --defaults-file), shows its key
plugin, settings, the background encryption of existing tables
(information_schema.INNODB_TABLESPACES_ENCRYPTION) and anything still in
plaintext. Exits 15 when a step is not in place or something is plaintext.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runEngineStatus(cmd.Context(), g, &eo) },
	}
	eo.addLocate(cmd)
	eo.addServer(cmd)
	f := cmd.Flags()
	f.BoolVar(&eo.JSON, "json", false, "print JSON")
	return cmd
}

func runEngineStatus(ctx context.Context, g *globalOptions, eo *engineOptions) error {
	c := daemon.NewClient(g.cfg.Socket)
	s, err := engineSetup(g, eo, admin.Conn{Client: c})
	if err != nil {
		return err
	}
	// The backup tool's rule as 'engine enable' recorded it (none
	// included), else enable's default.
	if err := s.Opts.UseRecordedOrAuto(g.cfg.PhysicalTool); err != nil {
		return err
	}
	if _, err := c.Status(ctx); err != nil {
		return err
	}
	rep, err := s.Report(ctx, eo.sqlConn())
	if err != nil {
		return err
	}
	if eo.JSON {
		if err := g.p.json(rep); err != nil {
			return err
		}
	} else {
		for _, f := range rep.Steps {
			switch {
			case f.OK():
				fmt.Fprintf(g.p.out, "ok:     %s\n", f.Step)
			case f.CheckErr != "":
				fmt.Fprintf(g.p.out, "drift:  %s (cannot check: %s)\n", f.Step, f.CheckErr)
			default:
				fmt.Fprintf(g.p.out, "drift:  %s: %s\n", f.Step, f.Drift)
			}
		}
		if rep.Disabling {
			fmt.Fprintf(g.p.out, "engine mode is being disabled (run 1 of 'engine disable' is done): restart the server, then run 'mysecure engine disable' again\n")
		}
		if rep.Error != "" {
			fmt.Fprintf(g.p.out, "server: %s\n", rep.Error)
		}
		if st := rep.Server; st != nil {
			fmt.Fprintf(g.p.out, "server: key plugin %s; %d InnoDB tablespace(s) and %d Aria table(s) encrypted, %d plaintext\n", orDefault(st.Plugin, "not loaded"), st.Encrypted, st.AriaEncrypted, len(st.Plaintext))
			for _, ts := range st.Tablespaces {
				if ts.Rotating && ts.PagesTotal > 0 {
					fmt.Fprintf(g.p.out, "  encrypting %s: page %d of %d\n", ts.Name, ts.PagesDone, ts.PagesTotal)
				}
			}
			for _, p := range st.Plaintext {
				fmt.Fprintf(g.p.out, "  plaintext: %s\n", p)
			}
			for _, u := range st.Unchecked {
				fmt.Fprintf(g.p.out, "  unchecked: %s\n", u)
			}
		}
	}
	return rep.Err()
}

func newEngineDisableCommand(g *globalOptions) *cobra.Command {
	var eo engineOptions
	cmd := &cobra.Command{
		Use:   "disable",
		Short: "Decrypt the server's data online and turn engine mode off (MariaDB; two runs with a restart between)",
		Long: `Run 1 (the server runs in engine mode): turns table encryption off at run
time, rebuilds the Aria tables in plaintext, waits until the background
threads have decrypted every InnoDB tablespace, and rewrites the option file
with encryption off and the key plugin still loaded. Restart the server: it
rewrites its redo log in plaintext as it starts and opens a plaintext binary
log.

Run 2 (after that restart): refuses while a tablespace or a binary log is
still encrypted (the server needs the key to read them: purge the old binary
logs first), then removes the option file; the server's next start loads no
key plugin. On a hardened server the guard's pins follow each run.

The keys stay in @protected: physical backups taken in engine mode need them.
See docs/engine.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runEngineDisable(cmd.Context(), g, &eo) },
	}
	eo.addLocate(cmd)
	eo.addServer(cmd)
	f := cmd.Flags()
	f.IntVar(&eo.o.Threads, "threads", engine.DefaultThreads, "innodb_encryption_threads of engine mode's option file (as given to enable)")
	f.BoolVar(&eo.DryRun, "dry-run", false, "check the server and print the plan, change nothing")
	f.DurationVar(&eo.Timeout, "timeout", 30*time.Minute, "how long to wait for the background threads to decrypt the tablespaces")
	eo.creds.AddFlags(f)
	return cmd
}

func runEngineDisable(ctx context.Context, g *globalOptions, eo *engineOptions) error {
	sql := eo.sqlConn()
	if sql == nil {
		return withHint(usagef("engine disable needs the running server"), "pass --mysql-socket SOCKET or --defaults-file FILE")
	}
	c := daemon.NewClient(g.cfg.Socket)
	conn := admin.Conn{Client: c}
	s, err := engineSetup(g, eo, conn)
	if err != nil {
		return err
	}
	d := &engine.Disable{Setup: s, SQL: *sql, Timeout: eo.Timeout}
	stage, err := d.Stage()
	if err != nil {
		return err
	}
	if stage == engine.StageOff {
		fmt.Fprintf(g.p.out, "nothing to change: engine mode is off (%s does not exist)\n", s.Opts.CnfPath())
		return nil
	}
	steps, err := d.Plan(ctx, stage)
	if err != nil {
		return err
	}
	_, changing, err := g.p.checkPlan(ctx, fmt.Sprintf("engine disable for %s (%s):\n", s.Opts.Binary, stage.Run()), steps)
	if err != nil {
		return err
	}
	if eo.DryRun {
		g.p.dryRun(changing)
		return nil
	}
	if s.Hardened != nil {
		// The guard's configuration is changed in a move session.
		s, cred, err := engineAdminSetup(ctx, g, eo, c)
		if err != nil {
			return err
		}
		defer cred.Wipe()
		d.Setup = s
		if steps, err = d.Plan(ctx, stage); err != nil {
			return err
		}
	}
	// Keep what 'engine enable' recorded (engine status reads it).
	params, err := s.Opts.RecordedParams()
	if err != nil {
		return err
	}
	r := &plan.Runner{StatePath: s.Opts.StatePath, Params: params}
	if _, err := applyPlan(ctx, g, r, stage.PlanName(), steps, false, "run 'mysecure engine disable' again", "engine mode is as it was (the threads encrypt again what they had decrypted). "); err != nil {
		return err
	}
	if stage == engine.StageDecrypt {
		fmt.Fprintf(g.p.out, "every tablespace is decrypted: restart the server (it still loads the key plugin and rewrites its redo log in plaintext), then run 'mysecure engine disable' again\n")
		return nil
	}
	fmt.Fprintf(g.p.out, "engine mode is off: restart the server (it starts without the key plugin); the keys stay in @protected for physical backups taken in engine mode\n")
	return nil
}
