package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/hardening"
	"github.com/mysecure/mysecure/internal/plan"
	"github.com/mysecure/mysecure/ndb"
	"github.com/mysecure/mysecure/policies"
)

func newPolicyCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Policy bundles: set up a host in one step, and check it stays so",
		Long: `A policy bundle declares categories, paths to encrypt, access rules, backup
schedules with their retention, and the skip-grant-tables guard, with
parameters (--set datadir=/srv/mysql). Built-in bundles are listed by
'policy list'; a bundle file of your own (a path, or NAME.yaml) works the same
way. 'apply' prints the plan, skips what is in place, and rolls back on the
first failure; 'check' reports drift and exits 15 when there is any.
See docs/policies.md.`,
	}
	cmd.AddCommand(newPolicyListCommand(g), newPolicyShowCommand(g), newPolicyApplyCommand(g), newPolicyCheckCommand(g))
	return cmd
}

func newPolicyListCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use: "list", Short: "List the built-in bundles", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			bs, err := policies.List()
			if err != nil {
				return err
			}
			if asJSON {
				type entry struct {
					Name        string   `json:"name"`
					Description string   `json:"description"`
					Params      []string `json:"params"`
				}
				out := []entry{}
				for _, b := range bs {
					out = append(out, entry{b.Name, b.Description, b.ParamNames()})
				}
				return g.p.json(out)
			}
			for _, b := range bs {
				fmt.Fprintf(g.p.out, "%-20s %s\n", b.Name, b.Description)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newPolicyShowCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME|FILE", Short: "Print a bundle, its includes and its parameters", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := loadBundle(args[0])
			if err != nil {
				return err
			}
			vals, _ := b.Values(nil)
			fmt.Fprintf(g.p.out, "# %s (%s)\n# parameters (--set NAME=VALUE), as resolved on this host:\n", b.Name, b.Source)
			params := b.AllParams()
			for _, n := range b.ParamNames() {
				v := vals[n]
				if v == "" && len(params[n].Find) > 0 {
					v = "(none of " + strings.Join(params[n].Find, ", ") + " found)"
				}
				fmt.Fprintf(g.p.out, "#   %-18s %-28s %s\n", n, v, params[n].Description)
			}
			fmt.Fprint(g.p.out, b.Text)
			for _, inc := range b.Included() {
				fmt.Fprintf(g.p.out, "---\n# included: %s\n%s", inc.Name, inc.Text)
			}
			return nil
		},
	}
}

type policyOptions struct {
	Sets   []string
	DryRun bool
	JSON   bool
	creds  credOptions
}

func newPolicyApplyCommand(g *globalOptions) *cobra.Command {
	var o policyOptions
	cmd := &cobra.Command{
		Use:   "apply NAME|FILE [--set NAME=VALUE]... [--dry-run]",
		Short: "Apply a bundle: print the plan, change what is not in place, roll back on failure",
		Example: `  mysecure policy apply mysql-datadir --set datadir=/srv/mysql --dry-run
  mysecure policy apply mysql-host`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPolicyApply(cmd.Context(), g, &o, args[0])
		},
	}
	cmd.Flags().StringArrayVar(&o.Sets, "set", nil, "set a parameter (`NAME=VALUE`, repeatable)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the plan, change nothing")
	o.creds.AddFlags(cmd.Flags())
	return cmd
}

func newPolicyCheckCommand(g *globalOptions) *cobra.Command {
	var o policyOptions
	cmd := &cobra.Command{
		Use:   "check [NAME|FILE] [--set NAME=VALUE]... [--json]",
		Short: "Compare the host with a bundle (default: every bundle applied here); exit 15 on drift",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("policy check takes at most one bundle")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPolicyCheck(cmd.Context(), g, &o, args)
		},
	}
	cmd.Flags().StringArrayVar(&o.Sets, "set", nil, "set a parameter (`NAME=VALUE`, repeatable; default: the values of the last apply)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

func loadBundle(ref string) (*policies.Bundle, error) {
	b, err := policies.Load(ref)
	switch {
	case errors.Is(err, policies.ErrUnknown):
		return nil, withHint(usagef(oneLine(err)), "'mysecure policy list' shows the built-in bundles; a file of your own needs a '/' or .yaml in its name")
	case errors.Is(err, policies.ErrInvalid):
		return nil, withHint(usagef(oneLine(err)), "docs/policies.md describes the bundle format")
	}
	return b, err
}

// compilePolicy resolves the bundle's parameters (--set, else those of
// the last apply, else the defaults) and makes its plan.
func compilePolicy(g *globalOptions, b *policies.Bundle, setArgs []string, conn admin.Conn) ([]plan.Step, map[string]string, error) {
	sets, err := policies.ParseSets(setArgs)
	if err != nil {
		return nil, nil, withHint(usagef(oneLine(err)), "--set NAME=VALUE; 'mysecure policy show "+b.Name+"' lists the parameters")
	}
	b.WithLast(sets, g.cfg.Store)
	vals, err := b.Values(sets)
	if err != nil {
		return nil, nil, withHint(usagef(oneLine(err)), "'mysecure policy show "+b.Name+"' lists the parameters")
	}
	env := policies.Env{Conn: conn, ConfigFile: g.configFileForEdit(),
		Harden: g.hostHarden(hardening.Options{}),
		NDB:    policyNDBEnv(g),
		HardenReport: func(e hardening.Event) {
			switch e.Kind {
			case hardening.EventNotice:
				g.p.noticef("%s", e.Text)
			default:
				fmt.Fprintf(g.p.out, "           harden: %s: %s\n", e.Kind, e.Text)
			}
		}}
	steps, err := b.Compile(sets, env)
	if errors.Is(err, ndb.ErrRunning) {
		return nil, nil, withHint(err, "--set stop=true stops the node through the management server and starts it again afterwards")
	}
	if err != nil {
		return nil, nil, withHint(usagef(oneLine(err)), "'mysecure policy show "+b.Name+"' lists the parameters")
	}
	return steps, vals, nil
}

func runPolicyApply(ctx context.Context, g *globalOptions, o *policyOptions, ref string) error {
	b, err := loadBundle(ref)
	if err != nil {
		return err
	}
	c := daemon.NewClient(g.cfg.Socket)
	conn := admin.Conn{Client: c}
	steps, vals, err := compilePolicy(g, b, o.Sets, conn)
	if err != nil {
		return err
	}
	if _, err := c.Status(ctx); err != nil {
		return err
	}
	_, changing, err := g.p.checkPlan(ctx, fmt.Sprintf("plan for %s (%s):\n", b.Name, policies.ParamLine(vals)), steps)
	if err != nil {
		return err
	}
	if changing == 0 {
		fmt.Fprintf(g.p.out, "nothing to change: every step of %s is in place\n", b.Name)
		return nil
	}
	if o.DryRun {
		g.p.dryRun(changing)
		return nil
	}
	cred, err := adminCredential(ctx, c, &o.creds)
	if err != nil {
		return err
	}
	defer cred.Wipe()
	conn.Cred = cred
	// The steps hold the connection by value: make them again with it.
	if steps, _, err = compilePolicy(g, b, o.Sets, conn); err != nil {
		return err
	}
	r := &plan.Runner{StatePath: policies.StatePath(g.cfg.Store, b.Name), Params: vals}
	res, err := applyPlan(ctx, g, r, b.Name, steps, true, "apply again", "the host is as it was before the apply. ")
	if err != nil {
		return err
	}
	fmt.Fprintf(g.p.out, "applied %s: %d step(s) changed, %d in place already\n", b.Name, len(res.Applied), len(res.Unchanged))
	return nil
}

func runPolicyCheck(ctx context.Context, g *globalOptions, o *policyOptions, args []string) error {
	var refs []string
	if len(args) == 1 {
		refs = args
	} else {
		var err error
		if refs, err = policies.Applied(g.cfg.Store); err != nil {
			return err
		}
		if len(refs) == 0 {
			return withHint(fmt.Errorf("%w: no policy was applied on this host (%s is empty)", os.ErrNotExist, policies.StateDir(g.cfg.Store)), "name a bundle: 'mysecure policy check mysql-datadir'")
		}
		if len(o.Sets) > 0 {
			return usagef("--set needs a bundle name")
		}
	}
	c := daemon.NewClient(g.cfg.Socket)
	if _, err := c.Status(ctx); err != nil {
		return err
	}
	var reports []policies.Report
	for _, ref := range refs {
		b, err := loadBundle(ref)
		if err != nil {
			return err
		}
		steps, vals, err := compilePolicy(g, b, o.Sets, admin.Conn{Client: c})
		if err != nil {
			return err
		}
		fs, err := plan.Check(ctx, steps)
		if err != nil {
			return err
		}
		reports = append(reports, policies.NewReport(b.Name, vals, fs))
	}
	if o.JSON {
		if err := g.p.json(reports); err != nil {
			return err
		}
	} else {
		for _, r := range reports {
			for _, f := range r.Findings {
				switch {
				case f.OK():
					fmt.Fprintf(g.p.out, "%s: ok:    %s\n", r.Bundle, f.Step)
				case f.CheckErr != "":
					fmt.Fprintf(g.p.out, "%s: drift: %s: cannot check: %s\n", r.Bundle, f.Step, f.CheckErr)
				default:
					fmt.Fprintf(g.p.out, "%s: drift: %s\n", r.Bundle, f.Drift)
				}
			}
		}
	}
	return policies.DriftError(reports, refs)
}

// policyNDBEnv is what the ndb entries of a bundle use: the defaults of
// 'mysecure ndb enable' (ndb_mgm from PATH, my.cnf, the running programs).
func policyNDBEnv(g *globalOptions) *policies.NDBEnv {
	o := ndbOptions{MyCnf: []string{"/etc/my.cnf", "/etc/mysql/my.cnf"}, StartTimeout: 10 * time.Minute, StopTimeout: 5 * time.Minute}
	logf := func(s string) { fmt.Fprintf(g.p.out, "  %s\n", s) }
	control := &ndb.Control{StateDir: ndbStateDir(g), StartTimeout: o.StartTimeout, StopTimeout: o.StopTimeout, Log: logf}
	return &policies.NDBEnv{Planner: &ndb.Planner{Control: control, Category: ndbCategory, Log: logf}, Discovery: o.discovery(g)}
}
