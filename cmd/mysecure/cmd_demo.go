package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/internal/demo"
)

// Output of 'mysecure demo': one line per step, "[n/N] step: what it
// proves", on stdout; errors as every command prints them.

func newDemoCommand(g *globalOptions) *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Tell the whole story on a sandbox, in about a minute; nothing of the host is changed",
		Long: `Runs the main job end to end in a temporary directory: a volume and a mount,
a private MariaDB (a copy of mariadbd) with sample data, 'policy apply
mysql-host' on it, the server serving from the encrypted datadir while cat of
its files is denied and the store holds only ciphertext, a backup run by a
throwaway member of the backup group who never sees the MySQL password,
verify, a restore into a fresh database with equal checksums, the guard
dropping --skip-grant-tables, and 'policy check' clean, then drifting after a
rule is deleted. Each step prints one line of what it proves.

Everything is private (store, mount, sockets, state, logs, config) and removed
at the end, on success, failure or Ctrl-C, with the throwaway user and group
mysecure-demo. Needs root, FUSE and MariaDB (make deps).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(g, cmd.Context())
			defer stop()
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Exe = exe
			n := 0
			o.Report = func(e demo.Event) {
				n++
				fmt.Fprintf(g.p.out, "[%2d/%d] %s: %s\n", n, len(demo.Steps), e.Step, e.Proves)
			}
			if err := demo.Run(ctx, o); err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("%w: the demo stopped; its sandbox was removed", errInterrupted)
				}
				if o.Keep {
					return withHint(err, "the sandbox directory is kept under "+orDefault(o.Parent, os.TempDir())+" (mysecure-demo-*); the mount, server and demo user are gone")
				}
				return withHint(err, "the sandbox was removed; run it again with --keep to look at what was left")
			}
			fmt.Fprintln(g.p.out, "demo complete")
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Parent, "dir", "", "make the sandbox under `DIR` (default: the temp directory)")
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "on failure, keep the sandbox directory (the mount, server and demo user are removed all the same)")
	return cmd
}
