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
	"io"
	"log/slog"
	"sync"
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

func (o *remoteOptions) targets(g *globalOptions, hosts []string) ([]*sshclient.Target, error) {
	if len(hosts) == 0 {
		return nil, usagef("name at least one HOST")
	}
	var ts []*sshclient.Target
	for _, h := range hosts {
		t, err := g.cfg.SSH.Resolve(h)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func (o *remoteOptions) sshOptions(t *sshclient.Target) sshclient.Options {
	return sshclient.Options{Auth: sshAuth(t, true, o.PassphraseFile), Log: slog.New(slog.DiscardHandler)}
}

// each runs fn on every host, with the auth of each target.
func (o *remoteOptions) each(ctx context.Context, ts []*sshclient.Target, fn func(context.Context, *sshclient.Client) error) []sshclient.Result {
	// One Each per target keeps each target's own passphrase-file.
	res := make([]sshclient.Result, len(ts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(o.Parallel, 1))
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res[i] = sshclient.Each(ctx, []*sshclient.Target{t}, 1, o.sshOptions(t), fn)[0]
		}()
	}
	wg.Wait()
	return res
}

// remoteFailure reports the hosts that failed and returns the error that
// sets the exit code.
func remoteFailure(g *globalOptions, res []sshclient.Result) error {
	var worst error
	failed := 0
	for _, r := range res {
		if r.Err == nil {
			continue
		}
		failed++
		if len(res) > 1 {
			g.p.errorf("%s: %s", r.Host, oneLine(r.Err))
		}
		var ee *sshclient.ExitError
		if worst == nil || (errors.As(worst, &ee) && !errors.As(r.Err, &ee)) {
			worst = r.Err
		}
	}
	if worst == nil {
		return nil
	}
	if len(res) > 1 {
		code, hint := classify(worst)
		return &childError{msg: fmt.Sprintf("%d of %d hosts failed", failed, len(res)), code: code, hint: hint}
	}
	return worst
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
			ts, err := o.targets(g, args[:dash])
			if err != nil {
				return err
			}
			command := sshclient.Quote(args[dash:]...)
			var mu sync.Mutex
			res := o.each(cmd.Context(), ts, func(ctx context.Context, c *sshclient.Client) error {
				var stdout, stderr io.Writer = g.p.out, g.p.err
				if len(ts) > 1 {
					po := &sshclient.PrefixWriter{W: g.p.out, Prefix: c.Target().Label() + ": ", Mu: &mu}
					pe := &sshclient.PrefixWriter{W: g.p.err, Prefix: c.Target().Label() + ": ", Mu: &mu}
					defer po.Flush()
					defer pe.Flush()
					stdout, stderr = po, pe
				}
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
			ts, err := o.targets(g, args)
			if err != nil {
				return err
			}
			sts := make([]daemon.RemoteStatus, len(ts))
			res := o.each(cmd.Context(), ts, func(ctx context.Context, c *sshclient.Client) error {
				for i, t := range ts {
					if t == c.Target() {
						sts[i] = daemon.RemoteStatusOf(ctx, c.Target().Label(), c)
					}
				}
				return nil
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
