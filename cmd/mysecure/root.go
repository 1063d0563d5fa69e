package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/internal/sshclient"
)

// defaultConfigFile is read when it exists; --config names another one,
// which must exist. A variable only so that tests can point it elsewhere.
var defaultConfigFile = "/etc/mysecure/mysecure.yaml"

// Defaults of the settings (docs/configuration.md).
const (
	defaultStore    = "/var/lib/mysecure/storage"
	defaultMount    = "/var/lib/mysecure/encrypted"
	defaultSocket   = "/run/mysecure/control.sock"
	defaultAuditLog = "/var/log/mysecure/access.log"
	defaultLogFile  = "/var/log/mysecure/mysecure.log"
	defaultJobSock  = "/run/mysecure/jobs.sock"
	// defaultStateDir holds the last generation seen of each volume's
	// config and rule file (docs/configuration.md: why not in the store).
	defaultStateDir = "/var/lib/mysecure/state"
)

// globalOptions are the flags every command has, plus the resolved config.
type globalOptions struct {
	ConfigFile string
	Store      string
	Debug      bool

	cfg      Config
	p        *printer
	in       io.Reader
	cleanups cleanupSet
	// ownSignals: the command (the daemon) handles SIGINT/SIGTERM itself.
	ownSignals atomic.Bool
	// sshReloaded is the ssh: section a daemon reload read (cfg is not
	// written after start); see sshSettings.
	sshReloaded sshclient.SettingsHolder
}

// cleanupSet holds what must be undone if the process is interrupted.
type cleanupSet struct {
	mu  sync.Mutex
	fns map[int]func()
	n   int
}

// add registers fn and returns a function that unregisters it.
func (c *cleanupSet) add(fn func()) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fns == nil {
		c.fns = map[int]func(){}
	}
	c.n++
	id := c.n
	c.fns[id] = fn
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.fns, id)
	}
}

func (c *cleanupSet) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Config is the validated configuration every command works from, built
// from flags, MYSECURE_* environment variables and the config file, in
// that order of precedence.
type Config struct {
	Store       string `mapstructure:"store"`
	Mount       string `mapstructure:"mount"`
	Socket      string `mapstructure:"socket"`
	StateDir    string `mapstructure:"state-dir"`
	AuditLog    string `mapstructure:"audit-log"`
	AuditAllows bool   `mapstructure:"audit-allows"`
	LogFile     string `mapstructure:"log-file"`

	// Backups (docs/configuration.md).
	BackupCategory string   `mapstructure:"backup-category"`
	BackupGroup    string   `mapstructure:"backup-group"`
	JobSocket      string   `mapstructure:"job-socket"`
	BackupLevel    int      `mapstructure:"backup-level"`
	DumpTool       string   `mapstructure:"dump-tool"`
	DumpArgs       []string `mapstructure:"dump-args"`
	PhysicalTool   string   `mapstructure:"physical-tool"`
	PhysicalArgs   []string `mapstructure:"physical-args"`
	ClientTool     string   `mapstructure:"client-tool"`
	MbstreamTool   string   `mapstructure:"mbstream-tool"`

	// Object stores for backups, by name, and where `mysecure backup`
	// writes by default (docs/fleet.md).
	BackupTargets map[string]TargetConfig `mapstructure:"backup-targets"`
	BackupTo      []string                `mapstructure:"backup-to"`

	// Scheduled jobs (docs/schedules.md).
	Schedules       []schedule.Job `mapstructure:"schedules"`
	MetricsTextfile string         `mapstructure:"metrics-textfile"`

	// SSH hosts of remote backups and commands (docs/ssh.md).
	SSH sshclient.Settings `mapstructure:"ssh"`

	// harden audit's allow-lists (docs/audit.md).
	Audit auditConfig `mapstructure:"audit"`

	// file is the config file read ("" for none).
	file string
}

func (g *globalOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&g.ConfigFile, "config", "", "read configuration from `FILE` (default "+defaultConfigFile+" when it exists)")
	f.StringVar(&g.Store, "store", "", "the volume's store `DIR` (default "+defaultStore+"; env MYSECURE_STORE)")
	f.String("mount", "", "the mount point `DIR` (default "+defaultMount+"; env MYSECURE_MOUNT)")
	f.String("socket", "", "the daemon's control socket `PATH` (default "+defaultSocket+")")
	f.String("state-dir", "", "root-only `DIR` keeping the last generation seen of each volume's config and rules (default "+defaultStateDir+")")
	f.BoolVar(&g.Debug, "debug", false, "print full error details")
}

// loadConfig resolves the configuration with viper: flag > env > file >
// default.
func (g *globalOptions) loadConfig(cmd *cobra.Command) error {
	v := viper.New()
	v.SetDefault("store", defaultStore)
	v.SetDefault("mount", defaultMount)
	v.SetDefault("socket", defaultSocket)
	v.SetDefault("state-dir", defaultStateDir)
	v.SetDefault("audit-log", defaultAuditLog)
	v.SetDefault("audit-allows", false)
	v.SetDefault("log-file", defaultLogFile)
	v.SetDefault("backup-category", "mysqlbackup")
	v.SetDefault("job-socket", defaultJobSock)
	v.SetDefault("backup-level", 1)
	// Every key needs a default for MYSECURE_* to reach it.
	for _, k := range []string{"backup-group", "dump-tool", "physical-tool", "client-tool", "mbstream-tool"} {
		v.SetDefault(k, "")
	}
	v.SetDefault("dump-args", []string{})
	v.SetDefault("backup-to", []string{})
	v.SetDefault("metrics-textfile", "")
	v.SetDefault("physical-args", []string{})
	v.SetEnvPrefix("MYSECURE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	for key := range knownConfigKeys {
		if fl := cmd.Flags().Lookup(key); fl != nil {
			if err := v.BindPFlag(key, fl); err != nil {
				return err
			}
		}
	}
	file := g.ConfigFile
	if file == "" {
		if env := os.Getenv("MYSECURE_CONFIG"); env != "" {
			file = env
		}
	}
	if file == "" {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			file = defaultConfigFile
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return withHint(usagef(fmt.Sprintf("cannot read config file %s: %v", file, oneLine(err))),
				"fix the YAML, or point --config at another file")
		}
		for _, k := range v.AllKeys() {
			if !knownConfigKeys[k] && !strings.HasPrefix(k, "backup-targets.") {
				return withHint(usagef(fmt.Sprintf("config file %s: unknown setting %q", file, k)),
					"docs/configuration.md lists the settings")
			}
		}
	}
	var c Config
	if err := v.UnmarshalExact(&c); err != nil {
		return withHint(usagef(fmt.Sprintf("bad configuration: %v", oneLine(err))), "docs/configuration.md lists the settings, docs/schedules.md the fields of a schedule")
	}
	if err := schedule.ValidateAll(c.Schedules); err != nil {
		return withHint(usagef(fmt.Sprintf("config file %s: %v", file, oneLine(err))), "fix the schedule in the config file; 'mysecure schedule list' shows the jobs")
	}
	if err := validateTargets(&c); err != nil {
		return withHint(usagef(fmt.Sprintf("config file %s: %v", file, oneLine(err))), "docs/fleet.md describes backup-targets and backup-to")
	}
	for i := range c.Schedules {
		if len(c.Schedules[i].Targets) == 0 {
			c.Schedules[i].Targets = c.BackupTo
		}
	}
	if err := validateSSHConfig(&c); err != nil {
		return withHint(usagef(fmt.Sprintf("config file %s: %v", file, oneLine(err))), "docs/ssh.md describes the ssh: section")
	}
	c.file = file
	if c.BackupLevel < 1 || c.BackupLevel > 22 {
		return withHint(usagef(fmt.Sprintf("backup-level %d is out of range", c.BackupLevel)), "zstd levels go from 1 to 22 (1 is the default)")
	}
	for name, val := range map[string]string{"store": c.Store, "mount": c.Mount, "socket": c.Socket, "state-dir": c.StateDir, "audit-log": c.AuditLog, "backup-category": c.BackupCategory, "job-socket": c.JobSocket} {
		if val == "" {
			return usagef(name + " must not be empty")
		}
	}
	// Paths are used by a daemon whose working directory is /.
	for _, p := range []*string{&c.Store, &c.Mount, &c.Socket, &c.StateDir, &c.AuditLog, &c.LogFile, &c.JobSocket, &c.MetricsTextfile} {
		if *p != "" {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	g.cfg = c
	return nil
}

var knownConfigKeys = map[string]bool{
	"store": true, "mount": true, "socket": true, "state-dir": true, "audit-log": true, "audit-allows": true, "log-file": true,
	"backup-category": true, "backup-group": true, "job-socket": true, "backup-level": true,
	"dump-tool": true, "dump-args": true, "physical-tool": true, "physical-args": true,
	"client-tool": true, "mbstream-tool": true, "schedules": true, "metrics-textfile": true,
	"ssh.hosts": true, "ssh.known-hosts": true, "ssh.identity": true,
	"audit.admins": true, "audit.accounts": true, "audit.plugins": true, "audit.udfs": true,
	"backup-to": true,
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func newRootCommand(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "mysecure",
		Short: "Encryption at rest and process-based access control for MySQL and MariaDB",
		Long: `mysecure keeps MySQL and MariaDB data, logs, config files and backups
encrypted at rest. See the README for a quickstart and docs/ for the design.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.loadConfig(cmd)
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usagef(err.Error()) })
	setVersionFlag(root)
	g.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newVersionCommand(g),
		newInitCommand(g),
		newKeyCommand(g),
		newFileCommand(g),
		newMountCommand(g),
		newUmountCommand(g),
		newStatusCommand(g),
		newACLCommand(g),
		newModeCommand(g),
		newCategoryCommand(g),
		newMoveCommand(g, true),
		newMoveCommand(g, false),
		newRecoverCommand(g),
		newBackupCommand(g),
		newRestoreCommand(g),
		newEngineCommand(g),
		newScheduleCommand(g),
		newHardenCommand(g),
		newPolicyCommand(g),
		newRemoteCommand(g),
		newNDBCommand(g),
		newDemoCommand(g),
	)
	return root
}

// run executes the CLI and returns the exit code.
// executeRoot runs the command tree (a variable so that a test can make
// it panic).
var executeRoot = func(root *cobra.Command) error { return root.ExecuteContext(context.Background()) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	hardenProcess()
	g := &globalOptions{p: &printer{out: stdout, err: stderr}, in: stdin}
	// A panic is a bug: partial outputs are removed, the user is told to
	// report it, and the exit code is 1 (2 stays "usage").
	defer func() {
		if r := recover(); r != nil {
			g.cleanups.run()
			g.p.errorf("internal error, please report: %v", r)
			if g.Debug {
				fmt.Fprintf(stderr, "mysecure: debug: %s\n", debug.Stack())
			}
			code = exitError
		}
	}()
	root := newRootCommand(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)

	// On SIGINT/SIGTERM: remove partial outputs, say so, exit 9. Doing it
	// here rather than through a context means a command blocked on a read
	// (a quiet pipe on stdin) stops at once too.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)
	go func() {
		s, ok := <-sigc
		if !ok || g.ownSignals.Load() {
			return
		}
		g.cleanups.run()
		g.p.errorf("interrupted by %v; partial output removed", s)
		os.Exit(exitInterrupted)
	}()
	err := executeRoot(root)
	if err == nil {
		return exitOK
	}
	if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") {
		err = usagef(err.Error())
	}
	code, hint := classify(err)
	g.p.errorf("%s", oneLine(err))
	if hint != "" {
		g.p.hintf("%s", hint)
	}
	if g.Debug {
		for e := err; e != nil; e = errors.Unwrap(e) {
			fmt.Fprintf(stderr, "mysecure: debug: %T: %v\n", e, e)
		}
	}
	return code
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(fmt.Sprintf("%s takes %d argument(s), got %d", cmd.CommandPath(), n, len(args)))
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error { return exactArgs(0)(cmd, args) }
