package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mysecure/mysecure/encfs/volume"
)

type initOptions struct {
	Categories []string
	New        newCredOptions
}

func (o *initOptions) AddFlags(f *pflag.FlagSet) {
	f.StringSliceVar(&o.Categories, "categories", nil, "the volume's categories (default "+strings.Join(volume.DefaultCategories, ",")+")")
	o.New.AddFlags(f, true)
}

func newInitCommand(g *globalOptions) *cobra.Command {
	var opts initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create an encrypted volume",
		Long: `Create an encrypted volume in the store directory: a random 256-bit master
key wrapped in one key slot per credential given. With no credential flags,
prompts for a passphrase and a salt on the terminal.

Keep every credential safe: without at least one of them the data cannot be
decrypted, by you or anyone.`,
		Example: `  mysecure init --store /var/lib/mysecure/storage
  mysecure init --store DIR --passphrase-file /dev/fd/3 --salt-file /dev/fd/4 3<pass 4<salt
  mysecure init --store DIR --rsa-public-key admin-pub.pem --create-keyfile /etc/mysecure/boot.key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInit(cmd.Context(), opts, g)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runInit(ctx context.Context, opts initOptions, g *globalOptions) error {
	for i, c := range opts.Categories {
		opts.Categories[i] = strings.TrimPrefix(c, "@")
	}
	if err := volume.CheckNew(g.cfg.Store); err != nil {
		return err
	}
	var creds []volume.NewCredential
	var wipes []func()
	defer func() {
		for _, w := range wipes {
			w()
		}
	}()
	n := &opts.New
	// Every volume gets a master credential (a passphrase, or an RSA key):
	// a key file only unlocks, so a volume with a key file alone could
	// never have its rules, categories or slots changed.
	if n.PassphraseFile != "" || n.SaltFile != "" || n.RSAPublicKey == "" {
		p, err := n.passphrase()
		if err != nil {
			if n.CreateKeyFile != "" && n.PassphraseFile == "" {
				return withHint(usagef("a key file only unlocks the volume: init also needs a master credential, a passphrase or an RSA key"),
					"add --passphrase-file F --salt-file F (or /dev/fd/N), or --rsa-public-key PEM")
			}
			return err
		}
		wipes = append(wipes, p.Wipe)
		creds = append(creds, p)
	}
	if n.RSAPublicKey != "" {
		r, err := n.rsa()
		if err != nil {
			return err
		}
		creds = append(creds, r)
	}
	if n.CreateKeyFile != "" {
		k, err := n.keyFile()
		if err != nil {
			return err
		}
		wipes = append(wipes, k.Wipe)
		creds = append(creds, k)
	}
	// A key file made here is removed when this fails.
	v, keys, err := volume.Create(g.cfg.Store, volume.CreateOptions{Categories: opts.Categories}, creds...)
	if err != nil {
		return err
	}
	keys.Wipe()
	var slots []string
	for _, s := range v.Config.Slots {
		slots = append(slots, fmt.Sprintf("%d (%s)", s.ID, s.Type))
	}
	fmt.Fprintf(g.p.out, "created volume %s in %s\n", v.Config.VolumeID, v.Dir)
	fmt.Fprintf(g.p.out, "key slots: %s\n", strings.Join(slots, ", "))
	fmt.Fprintf(g.p.out, "categories: @%s\n", strings.Join(v.Config.Categories, ", @"))
	g.p.hintf("keep a copy of %s and of every credential apart from the data: without them nothing can be decrypted", volume.ConfigPath(v.Dir))
	return nil
}
