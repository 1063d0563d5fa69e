package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/internal/plan"
	"github.com/mysecure/mysecure/ndb"
)

// ndbCategory is the category NDB data moves into.
const ndbCategory = "ndbdata"

// ndbOptions are where discovery looks and which programs it uses.
type ndbOptions struct {
	ConfigIni     string
	MyCnf         []string
	Ndbd          string
	Ndbmtd        string
	NdbMgmd       string
	NdbMgm        string
	NdbConfig     string
	ConnectString string
	StartTimeout  time.Duration
	StopTimeout   time.Duration
}

func (o *ndbOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.ConfigIni, "config-ini", "", "the cluster's config.ini `FILE` (default: the config-file of [ndb_mgmd] in my.cnf)")
	f.StringArrayVar(&o.MyCnf, "my-cnf", []string{"/etc/my.cnf", "/etc/mysql/my.cnf"}, "option `FILE` with [mysql_cluster], [ndbd], [ndb_mgmd] (repeatable)")
	f.StringVar(&o.Ndbd, "ndbd", "", "the ndbd `PROGRAM` the rules allow (default: the running one, else PATH, /usr/sbin)")
	f.StringVar(&o.Ndbmtd, "ndbmtd", "", "the ndbmtd `PROGRAM` the rules allow (default: as for --ndbd)")
	f.StringVar(&o.NdbMgmd, "ndb-mgmd", "", "the ndb_mgmd `PROGRAM` (with --include-mgmd or a shared DataDir)")
	f.StringVar(&o.NdbMgm, "ndb-mgm", "", "the management client `PROGRAM` (default: ndb_mgm in PATH)")
	f.StringVar(&o.NdbConfig, "ndb-config", "", "the ndb_config `PROGRAM` (default: in PATH when there; '-' for none)")
	f.StringVar(&o.ConnectString, "ndb-connectstring", "", "the management server (default: from my.cnf)")
	f.DurationVar(&o.StartTimeout, "start-timeout", 10*time.Minute, "how long a restarted node may take to report started")
	f.DurationVar(&o.StopTimeout, "stop-timeout", 5*time.Minute, "how long a node may take to stop")
}

func (o *ndbOptions) discovery(g *globalOptions) ndb.Options {
	return ndb.Options{ConfigIni: o.ConfigIni, MyCnf: o.MyCnf, NdbConfig: o.NdbConfig, ConnectString: o.ConnectString,
		Mount: g.cfg.Mount, Category: ndbCategory, Programs: o.binaries().Kinds()}
}

func (o *ndbOptions) binaries() ndb.Binaries {
	return ndb.Binaries{Ndbd: o.Ndbd, Ndbmtd: o.Ndbmtd, NdbMgmd: o.NdbMgmd}
}

// ndbStateDir keeps the plan state and launch record of each node.
func ndbStateDir(g *globalOptions) string { return filepath.Join(g.cfg.Store, "ms.ndb") }

func newNDBCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ndb",
		Short: "MySQL Cluster data nodes: discover them, encrypt their files into @ndbdata",
		Long: `'ndb status' lists the data and management nodes of this host, found from
running processes, my.cnf, config.ini and ndb_config, with their directories
and whether each is encrypted. 'ndb enable' stops a node (with --stop),
moves its directories into @ndbdata, adds rules for ndbd and ndbmtd bound to
them, starts it with its original arguments (never --initial) and waits
until the management server says it started; if it does not, everything is
rolled back and the node started as it was. 'ndb disable' reverses it.
See docs/ndb.md.`,
	}
	cmd.AddCommand(newNDBStatusCommand(g), newNDBChangeCommand(g, true), newNDBChangeCommand(g, false))
	return cmd
}

func newNDBStatusCommand(g *globalOptions) *cobra.Command {
	var o ndbOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use: "status [--json]", Short: "List the NDB nodes of this host and their directories", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := ndb.Discover(cmd.Context(), o.discovery(g))
			if err != nil {
				return err
			}
			if asJSON {
				return g.p.json(st)
			}
			printNDBStatus(g, st)
			return nil
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printNDBStatus(g *globalOptions, st *ndb.Status) {
	if st.ConnectString != "" {
		fmt.Fprintf(g.p.out, "connect string: %s\n", st.ConnectString)
	}
	if st.ConfigIni != "" {
		fmt.Fprintf(g.p.out, "config.ini:     %s\n", st.ConfigIni)
	}
	if len(st.Nodes) == 0 {
		fmt.Fprintln(g.p.out, "no NDB node found (no ndbd, ndbmtd or ndb_mgmd running; no config.ini)")
	}
	for _, n := range st.Nodes {
		where := "this host"
		if !n.Local {
			where = "host " + n.Host
		}
		run := "not running"
		if n.Running {
			run = fmt.Sprintf("running %s (angel pid %d", n.Program, n.Angel.Pid)
			if n.Worker != nil {
				run += fmt.Sprintf(", worker pid %d", n.Worker.Pid)
			}
			run += ")"
		}
		fmt.Fprintf(g.p.out, "node %d: %s, %s, %s\n", n.ID, n.Kind, where, run)
		for _, d := range n.Dirs {
			state := "plain"
			if d.Encrypted {
				state = "encrypted (@" + ndbCategory + ")"
			}
			if d.Covered != "" && d.Covered != d.Path {
				state += ", inside " + d.Covered
			}
			if d.Covered == d.Path {
				state += ", same as above"
			}
			fmt.Fprintf(g.p.out, "  %-24s %s  %s\n", d.Role, d.Path, state)
		}
	}
	for _, w := range st.Warnings {
		g.p.noticef("%s", w)
	}
}

type ndbChangeOptions struct {
	ndbOptions
	Node        int
	AllLocal    bool
	Stop        bool
	IncludeMgmd bool
	DryRun      bool
	creds       credOptions
	roll        rollOptions
}

func newNDBChangeCommand(g *globalOptions, enable bool) *cobra.Command {
	var o ndbChangeOptions
	use, short := "enable", "Encrypt data nodes' files into @ndbdata, add their rules, restart them"
	if !enable {
		use, short = "disable", "Move data nodes' files back out of the mount, remove their rules, restart them"
	}
	cmd := &cobra.Command{
		Use:   use + " (--node ID | --all-local | --rolling --hosts HOST,...) [--stop] [--include-mgmd] [--dry-run]",
		Short: short,
		Example: `  mysecure ndb ` + use + ` --node 2 --stop --dry-run
  mysecure ndb ` + use + ` --all-local --stop
  mysecure ndb ` + use + ` --rolling --hosts ndb1,ndb2 --stop`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.roll.Rolling {
				return runNDBRoll(cmd.Context(), cmd, g, &o, enable)
			}
			if len(o.roll.Hosts) > 0 {
				return usagef("--hosts goes with --rolling")
			}
			if (o.Node == 0) == !o.AllLocal {
				return withHint(usagef("give one of --node ID and --all-local"), "'mysecure ndb status' lists the nodes of this host")
			}
			return runNDBChange(cmd.Context(), g, &o, enable)
		},
	}
	o.ndbOptions.AddFlags(cmd.Flags())
	cmd.Flags().IntVar(&o.Node, "node", 0, "the data node `ID`")
	cmd.Flags().BoolVar(&o.AllLocal, "all-local", false, "every data node of this host, one at a time")
	cmd.Flags().BoolVar(&o.Stop, "stop", false, "stop a running node (through ndb_mgm, else SIGTERM) and start it again")
	cmd.Flags().BoolVar(&o.IncludeMgmd, "include-mgmd", false, "also encrypt the local ndb_mgmd's DataDir and allow ndb_mgmd")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the plan, change nothing")
	o.creds.AddFlags(cmd.Flags())
	o.roll.AddFlags(cmd.Flags())
	return cmd
}

func runNDBChange(ctx context.Context, g *globalOptions, o *ndbChangeOptions, enable bool) error {
	c := daemon.NewClient(g.cfg.Socket)
	if _, err := c.Status(ctx); err != nil {
		return err
	}
	st, err := ndb.Discover(ctx, o.discovery(g))
	if err != nil {
		return err
	}
	logf := func(s string) { fmt.Fprintf(g.p.out, "  %s\n", s) }
	control := &ndb.Control{Mgm: ndb.Mgm{Program: o.NdbMgm, ConnectString: st.ConnectString}, StateDir: ndbStateDir(g),
		StartTimeout: o.StartTimeout, StopTimeout: o.StopTimeout, Log: logf}
	change := &ndb.Change{Status: st, Enable: enable, StateDir: ndbStateDir(g),
		Selection: ndb.Selection{Node: o.Node, AllLocal: o.AllLocal, Stop: o.Stop, IncludeMgmd: o.IncludeMgmd},
		Planner:   &ndb.Planner{Control: control, Category: ndbCategory, Log: logf, Binaries: o.binaries()}}
	// The plan is made once without the credential, so that a refusal
	// (a running node without --stop) comes before the prompt.
	plans, err := change.Plans(ctx, admin.Conn{Client: c})
	if err != nil {
		return err
	}
	if o.DryRun {
		todo := 0
		for _, p := range plans {
			fmt.Fprintf(g.p.out, "plan for node %d (%s):\n", p.Node.ID, p.Name)
			findings, err := plan.Check(ctx, p.Steps)
			if err != nil {
				return err
			}
			todo += g.p.planFindings(findings)
		}
		fmt.Fprintf(g.p.out, "dry run: %d step(s) would change; nothing was changed\n", todo)
		return nil
	}
	var cred *daemon.Credential
	if o.roll.CredStdin {
		cred, err = readStdinCredential()
	} else {
		cred, err = adminCredential(ctx, c, &o.creds)
	}
	if err != nil {
		return err
	}
	defer cred.Wipe()
	if plans, err = change.Plans(ctx, admin.Conn{Client: c, Cred: cred}); err != nil {
		return err
	}
	err = change.Apply(ctx, plans, ndb.ApplyHooks{
		Begin: func(p ndb.NodePlan) { fmt.Fprintf(g.p.out, "node %d: %s\n", p.Node.ID, change.Verb()) },
		Event: func(e plan.Event) {
			if e.Kind == plan.EventUnchanged {
				fmt.Fprintf(g.p.out, "in place:  %s\n", e.Step)
			}
			g.p.planEvent(e)
		},
		Done: func(p ndb.NodePlan, res *plan.Result) {
			fmt.Fprintf(g.p.out, "node %d: %sd: %d step(s) changed, %d in place already\n", p.Node.ID, change.Verb(), len(res.Applied), len(res.Unchanged))
		},
	})
	var ne *ndb.NodeError
	switch {
	case errors.As(err, &ne) && ne.Step.RollbackErr != nil:
		return withHint(ne, "what could not be undone is recorded in "+ne.StatePath+"; fix the cause and run again (it resumes)")
	case errors.As(err, &ne):
		_, hint := classify(ne.Step.Err)
		return withHint(ne, strings.TrimSpace(fmt.Sprintf("node %d is as it was before: its files and rules unchanged, running as it was. %s", ne.Node, hint)))
	}
	return err
}

// usageErr is a usage error that keeps err's chain.
func usageErr(err error) error { return &wrappedUsage{err} }

type wrappedUsage struct{ err error }

func (w *wrappedUsage) Error() string { return w.err.Error() }
func (w *wrappedUsage) Unwrap() error { return w.err }
