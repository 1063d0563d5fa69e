package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/volume"
)

func newCategoryCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "category",
		Short: "Add, list and remove the volume's categories",
		Long: `Categories group data that shares keys and access rules (@mysql,
@mysqlbackup, @ndbdata, @protected by default). 'category add NAME' makes a new
one, with keys derived from the master key as at init; 'category remove NAME'
removes an empty one that no rule names. Both need the master credential
(passphrase and salt, or the RSA key; never a key file), also in admin mode.

With the volume mounted the daemon makes the change and the mount shows the
new category at once; without a daemon the volume config is changed directly
and the next mount creates the category's directory.`,
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the categories, whether each is empty and how many rules name it (no credential)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cats, online, err := admin.ListCategories(cmd.Context(), daemon.NewClient(g.cfg.Socket), g.cfg.Socket, g.cfg.Store)
			if err != nil {
				return err
			}
			if asJSON {
				return g.p.json(cats)
			}
			tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CATEGORY\tCONTENT\tRULES")
			for _, c := range cats {
				content := "empty"
				if !c.Empty {
					content = entriesText(c.Entries)
				}
				fmt.Fprintf(tw, "@%s\t%s\t%d\n", c.Name, content, c.Rules)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if !online {
				g.p.noticef("not mounted: rule counts read from %s without checking its MAC", filepath.Join(g.cfg.Store, daemon.RulesFile))
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var addCreds, rmCreds credOptions
	add := &cobra.Command{
		Use:     "add NAME",
		Short:   "Add a category (master credential)",
		Example: "  mysecure category add appdata\n  mysecure encrypt @appdata /srv/appdata",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCategoryChange(cmd.Context(), g, &addCreds, admin.CategoryAdd, args[0])
		},
	}
	addCreds.AddFlags(add.Flags())
	rm := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an empty category that no rule names (master credential)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCategoryChange(cmd.Context(), g, &rmCreds, admin.CategoryRemove, args[0])
		},
	}
	rmCreds.AddFlags(rm.Flags())
	cmd.AddCommand(list, add, rm)
	return cmd
}

func entriesText(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}

// daemonForStore returns a client of the daemon serving this store, or
// nil when none runs (the offline path).
func daemonForStore(ctx context.Context, g *globalOptions) (*daemon.Client, error) {
	c, err := admin.StoreDaemon(ctx, daemon.NewClient(g.cfg.Socket), g.cfg.Socket, g.cfg.Store)
	var other *admin.OtherStoreError
	if errors.As(err, &other) {
		return nil, withHint(usagef(other.Error()), "point --store at the mounted store, or --socket at the daemon that serves this one")
	}
	return c, err
}

func runCategoryChange(ctx context.Context, g *globalOptions, creds *credOptions, op, arg string) error {
	name, err := admin.ParseCategoryName(arg)
	if err != nil {
		return err
	}
	c, err := daemonForStore(ctx, g)
	if err != nil {
		return err
	}
	if c == nil {
		return runCategoryOffline(g, creds, op, name)
	}
	// Always the master credential, admin mode or not: this rewrites the
	// volume config.
	cred, err := creds.masterCredential()
	if err != nil {
		return err
	}
	defer cred.Wipe()
	gen, err := admin.ChangeCategory(ctx, admin.Conn{Client: c, Cred: cred}, op, name)
	if err != nil {
		return err
	}
	if op == admin.CategoryAdd {
		fmt.Fprintf(g.p.out, "added category @%s (volume config generation %d): %s\n", name, gen, filepath.Join(g.cfg.Mount, name))
		g.p.hintf("rules decide who reads it: mysecure acl add \"ALLOW @%s * /path/to/program\"", name)
	} else {
		fmt.Fprintf(g.p.out, "removed category @%s (volume config generation %d)\n", name, gen)
	}
	return nil
}

func runCategoryOffline(g *globalOptions, creds *credOptions, op, name string) error {
	var gen uint64
	err := changeVolume(g, creds, func(v *volume.Volume, k *volume.Keys) (err error) {
		gen, err = admin.ChangeCategoryOffline(v, k, op, name)
		return err
	})
	if err != nil {
		return err
	}
	if op == admin.CategoryAdd {
		fmt.Fprintf(g.p.out, "added category @%s (volume config generation %d)\n", name, gen)
		g.p.hintf("the next 'mysecure mount' creates its directory %s", filepath.Join(g.cfg.Mount, name))
	} else {
		fmt.Fprintf(g.p.out, "removed category @%s (volume config generation %d)\n", name, gen)
	}
	return nil
}

// checkCategory is volume.CheckCategory with the hint that makes the
// category.
func checkCategory(cat string, have []string) error {
	if err := volume.CheckCategory(cat, have); err != nil {
		return withHint(err, unknownCategoryHint(cat))
	}
	return nil
}

func unknownCategoryHint(cat string) string {
	if !volume.ValidCategory(cat) {
		return "a category name is a lower-case letter, then up to 31 of a-z 0-9 _ -; 'mysecure category list' shows the categories"
	}
	return "create it with 'mysecure category add " + cat + "' (needs the master credential)"
}
