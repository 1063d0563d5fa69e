package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/hardening/audit"
)

type auditOptions struct {
	Profile      string
	Only, Skip   []string
	JSON         bool
	Client       string
	DefaultsFile string
	Socket       string
	User         string
	OptionFiles  []string
	DataDir      string
	ServerUser   string
}

func newHardenAuditCommand(g *globalOptions) *cobra.Command {
	var o auditOptions
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "CIS-style checks of a live server and its files",
		Long: `Checks the server, its files and its host against the CIS MariaDB 10.11
and MySQL 8.4 benchmarks (accounts, privileges, server variables, TLS,
logging, file ownership and modes) and against the ways around privilege
checks (skip-grant-tables and init-file in option files, systemd units and
the running command line, plugins, UDFs, library preloads). Each finding
says why it matters and how to fix it; docs/audit.md lists every check with
its CIS id. Exits 14 when a check fails or could not run (warnings do not
fail). Connect as root: with a less privileged account, the checks that need
more report an error.

The administrator accounts, the other accounts in use, allowed plugins and
UDFs come from the audit: section of the configuration file (admins,
accounts, plugins, udfs).

It connects with the mariadb/mysql client as the OS user running it (root
has unix_socket access on Debian), or with --defaults-file (a client option
file holding the credentials: they are never taken from argv).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runAudit(cmd.Context(), g, o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.JSON, "json", false, "print the report as JSON (schema in docs/audit.md)")
	f.StringVar(&o.Profile, "profile", "mysecure", "checks to run: cis-level1, cis-level2 or mysecure (all)")
	f.StringSliceVar(&o.Only, "only", nil, "run only these checks (`ID`s or CIS ids)")
	f.StringSliceVar(&o.Skip, "skip", nil, "leave these checks out (`ID`s or CIS ids)")
	f.StringVar(&o.Client, "client", "", "the client program (default mariadb, else mysql)")
	f.StringVar(&o.DefaultsFile, "defaults-file", "", "client option `FILE` with user and password (e.g. /etc/mysql/debian.cnf)")
	f.StringVar(&o.Socket, "mysql-socket", "", "the server's unix `SOCKET`")
	f.StringVar(&o.User, "mysql-user", "", "the MySQL `USER` (default: the client's default)")
	f.StringSliceVar(&o.OptionFiles, "option-files", nil, "server option files to inspect (default /etc/my.cnf, /etc/mysql/my.cnf)")
	f.StringVar(&o.DataDir, "datadir", "", "the datadir (default: the server's @@datadir)")
	f.StringVar(&o.ServerUser, "server-user", "mysql", "the OS user the server runs as")
	return cmd
}

func runAudit(ctx context.Context, g *globalOptions, o auditOptions) error {
	q, err := audit.Client{Program: o.Client, DefaultsFile: o.DefaultsFile, Socket: o.Socket, User: o.User}.Connect(ctx)
	switch {
	case errors.Is(err, audit.ErrNoClient):
		return withHint(err, "install mariadb-client, or pass --client")
	case errors.Is(err, audit.ErrConnect):
		return withHint(err, "run as root on the server's host, or pass --defaults-file with a client [client] user and password")
	case err != nil:
		return err
	}
	t := audit.Target{Query: q, OptionFiles: o.OptionFiles, DataDir: o.DataDir, ServerUser: o.ServerUser,
		Profile: o.Profile, Only: o.Only, Skip: o.Skip, Host: audit.Host{Mount: g.cfg.Mount}}
	g.cfg.Audit.Apply(&t)
	r, err := audit.RunReport(ctx, t)
	if errors.Is(err, audit.ErrProfile) {
		return withHint(usagef(err.Error()), "docs/audit.md lists the checks and profiles")
	}
	if err != nil {
		return err
	}
	r.Stamp("mysecure", version)
	fs := r.Findings
	if o.JSON {
		if err := g.p.json(r); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
		for _, f := range fs {
			cis := f.CISID
			if cis == "" {
				cis = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ToUpper(string(f.Result)), f.ID, cis, f.Summary)
		}
		tw.Flush()
		for _, f := range fs {
			if f.Result == audit.Pass || f.Result == audit.NotApplicable {
				continue
			}
			fmt.Fprintf(g.p.out, "\n%s %s: %s\n", strings.ToUpper(string(f.Result)), f.ID, f.Summary)
			if f.Summary != f.Title {
				fmt.Fprintf(g.p.out, "  expected: %s\n", f.Title)
			}
			for _, e := range f.Evidence {
				fmt.Fprintf(g.p.out, "  - %s\n", e.Text)
			}
			if f.Why != "" {
				fmt.Fprintf(g.p.out, "  why: %s\n", f.Why)
			}
			if f.Fix != "" {
				fmt.Fprintf(g.p.out, "  fix: %s\n", f.Fix)
			}
		}
		s := r.Summary
		fmt.Fprintf(g.p.out, "\n%d checks on %s %s (profile %s): %d passed, %d failed, %d warnings, %d could not run, %d not applicable\n",
			s.Total, r.Server.Flavor, r.Server.Version, r.Profile, s.Pass, s.Fail, s.Warn, s.Error, s.NotApplicable)
	}
	return r.Err()
}
