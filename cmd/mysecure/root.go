package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/mysecure/mysecure/internal/cleanup"
	"github.com/mysecure/mysecure/internal/config"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/sshclient"
)

// defaultConfigFile is read when it exists; --config names another one,
// which must exist. A variable only so that tests can point it elsewhere.
var defaultConfigFile = config.DefaultFile

// Defaults named in the help of other commands.
const (
	defaultMount    = config.DefaultMount
	defaultAuditLog = config.DefaultAuditLog
	defaultLogFile  = config.DefaultLogFile
)

// globalOptions are the flags every command has, plus the resolved config.
type globalOptions struct {
	ConfigFile string
	Store      string
	Debug      bool

	cfg      Config
	p        *printer
	in       io.Reader
	cleanups cleanup.Set // what to undo if interrupted
	// ownSignals: the command (the daemon) handles SIGINT/SIGTERM itself.
	ownSignals atomic.Bool
	// sshReloaded is the ssh: section a daemon reload read (cfg is not
	// written after start); see sshSettings.
	sshReloaded sshclient.SettingsHolder
}

// Config is the validated configuration every command works from
// (internal/config).
type Config = config.Config

func (g *globalOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&g.ConfigFile, "config", "", "read configuration from `FILE` (default "+defaultConfigFile+" when it exists)")
	f.StringVar(&g.Store, "store", "", "the volume's store `DIR` (default "+config.DefaultStore+"; env MYSECURE_STORE)")
	f.String("mount", "", "the mount point `DIR` (default "+defaultMount+"; env MYSECURE_MOUNT)")
	f.String("socket", "", "the daemon's control socket `PATH` (default "+config.DefaultSocket+")")
	f.String("state-dir", "", "root-only `DIR` keeping the last generation seen of each volume's config and rules (default "+config.DefaultStateDir+")")
	f.BoolVar(&g.Debug, "debug", false, "print full error details")
}

// loadConfig resolves the configuration with viper: flag > env > file >
// default.
func (g *globalOptions) loadConfig(cmd *cobra.Command) error {
	v := viper.New()
	for k, val := range config.Defaults() {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("MYSECURE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	for _, key := range config.Keys {
		if fl := cmd.Flags().Lookup(key); fl != nil {
			if err := v.BindPFlag(key, fl); err != nil {
				return err
			}
		}
	}
	file := config.FileToRead(g.ConfigFile, os.Getenv("MYSECURE_CONFIG"), defaultConfigFile)
	if err := config.CheckTrusted(file, os.Geteuid()); err != nil {
		return err
	}
	if file != "" {
		if err := readConfigFile(v, file); err != nil {
			return withHint(usagef(err.Error()), "fix the YAML, or point --config at another file")
		}
		for _, k := range v.AllKeys() {
			if !config.Known(k) {
				return withHint(usagef(fmt.Sprintf("config file %s: unknown setting %q", file, k)),
					"docs/configuration.md lists the settings")
			}
		}
	}
	var c Config
	if err := v.UnmarshalExact(&c); err != nil {
		return withHint(usagef(fmt.Sprintf("bad configuration: %v", oneLine(err))), "docs/configuration.md lists the settings, docs/schedules.md the fields of a schedule")
	}
	c.File = file
	if err := config.Validate(&c); err != nil {
		return usageOf(err)
	}
	g.cfg = c
	return nil
}

// readConfigFile reads the YAML config file into v. loadConfig takes
// every setting from it (under flags and env), a daemon reload
// (readSchedules) only the sections of the jobs.
func readConfigFile(v *viper.Viper, file string) error {
	v.SetConfigFile(file)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		return fmt.Errorf("cannot read config file %s: %v", file, oneLine(err))
	}
	return nil
}

// usageOf is a configuration error as a usage error (exit 2) with the
// error's own hint, or classify's hint for usage errors when it has none.
func usageOf(err error) error {
	if h, ok := hint.Of(err); ok {
		return withHint(usagef(oneLine(err)), h)
	}
	return usagef(oneLine(err))
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
			g.cleanups.Run()
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
		g.cleanups.Run()
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
