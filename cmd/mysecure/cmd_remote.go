package main

// Output rules of `mysecure remote`: a remote command's stdout and stderr
// go to ours; with several hosts every line is prefixed "HOST: ". Errors
// of one host are "mysecure: error: HOST: ..." and the exit code is the
// worst one: 16 (exitSSH) when a host could not be reached, else 17
// (exitRemote) when a command failed.

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/internal/sshclient"
)

func newRemoteCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remote",
		Short: "Run commands on other hosts over SSH, and check mysecure there",
		Long: `HOST is a name of the ssh: section of the configuration, or
user@host[:port]. Host keys are checked against known_hosts (docs/ssh.md).`,
	}
	cmd.AddCommand(newRemoteExecCommand(g), newRemoteStatusCommand(g))
	return cmd
}

type remoteOptions struct {
	Parallel       int
	PassphraseFile string
}

// fleet is the hosts named, each with the auth of its target.
func (o *remoteOptions) fleet(g *globalOptions, hosts []string) (*sshclient.Fleet, error) {
	if len(hosts) == 0 {
		return nil, usagef("name at least one HOST")
	}
	ts, err := g.cfg.SSH.ResolveAll(hosts)
	if err != nil {
		return nil, err
	}
	return &sshclient.Fleet{Targets: ts, Parallel: max(o.Parallel, 1), Options: func(t *sshclient.Target) sshclient.Options {
		return sshclient.Options{Auth: sshAuth(t, true, o.PassphraseFile)}
	}}, nil
}

// remoteFailure reports the hosts that failed and returns the error that
// sets the exit code.
func remoteFailure(g *globalOptions, res []sshclient.Result) error {
	err := sshclient.Failure(res)
	var fe *sshclient.FleetError
	if errors.As(err, &fe) {
		for _, r := range fe.Failed {
			g.p.errorf("%s: %s", r.Host, oneLine(r.Err))
		}
	}
	return err
}

func newRemoteExecCommand(g *globalOptions) *cobra.Command {
	var o remoteOptions
	cmd := &cobra.Command{
		Use:   "exec HOST... -- COMMAND [ARG...]",
		Short: "Run a command on one or more hosts",
		Long: `Runs COMMAND with its arguments (quoted for the remote shell) on each
HOST, in parallel. With several hosts every output line starts with the
host's name. Never put secrets in COMMAND: a command line is visible in the
remote process list and logs. stdin is not forwarded.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 || dash == len(args) {
				return usagef("give the command after --: mysecure remote exec HOST... -- COMMAND")
			}
			f, err := o.fleet(g, args[:dash])
			if err != nil {
				return err
			}
			command := sshclient.Quote(args[dash:]...)
			outs := sshclient.NewOutputs(g.p.out, g.p.err, len(f.Targets))
			res := f.Each(cmd.Context(), func(ctx context.Context, c *sshclient.Client) error {
				stdout, stderr, flush := outs.For(c.Target().Label())
				defer flush()
				return c.Run(ctx, command, nil, stdout, stderr)
			})
			return remoteFailure(g, res)
		},
	}
	cmd.Flags().IntVarP(&o.Parallel, "parallel", "P", 8, "run on at most `N` hosts at a time")
	cmd.Flags().StringVar(&o.PassphraseFile, "ssh-key-passphrase-file", "", "read the passphrase of encrypted SSH keys from `FILE`")
	return cmd
}

func newRemoteStatusCommand(g *globalOptions) *cobra.Command {
	var o remoteOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status HOST...",
		Short: "Show whether mysecure is installed and mounted on hosts, its mode and rule count",
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := o.fleet(g, args)
			if err != nil {
				return err
			}
			sts, res := sshclient.Gather(cmd.Context(), f, func(ctx context.Context, c *sshclient.Client) (daemon.RemoteStatus, error) {
				return daemon.RemoteStatusOf(ctx, c.Target().Label(), c), nil
			})
			for i, r := range res {
				if r.Err != nil {
					sts[i] = daemon.RemoteStatus{Host: r.Host, Error: oneLine(r.Err)}
				}
			}
			if asJSON {
				if err := g.p.json(sts); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "HOST\tREACHABLE\tINSTALLED\tMOUNTED\tMODE\tRULES\tERROR")
				for _, s := range sts {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Host, yesNo(s.Reachable), yesNo(s.Installed), yesNo(s.Mounted), dash(s.Mode), s.Rules, dash(s.Error))
				}
				tw.Flush()
			}
			return remoteFailure(g, res)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVarP(&o.Parallel, "parallel", "P", 8, "ask at most `N` hosts at a time")
	cmd.Flags().StringVar(&o.PassphraseFile, "ssh-key-passphrase-file", "", "read the passphrase of encrypted SSH keys from `FILE`")
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
