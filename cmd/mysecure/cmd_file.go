package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/atomicfile"
)

// defaultFileCategory is the category `file encrypt` uses unless told:
// the one meant for files that travel (backups).
const defaultFileCategory = "mysqlbackup"

func newFileCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "file",
		Short: "Encrypt or decrypt single files offline (no mount, no daemon)",
		Long: `Encrypt or decrypt one file with the volume's keys, without a mount or a
daemon. A copy of the store's mysecure.conf and a credential are all another
machine needs to decrypt a file encrypted here. IN and OUT may be - for
stdin and stdout.`,
	}
	cmd.AddCommand(newFileEncryptCommand(g), newFileDecryptCommand(g))
	return cmd
}

type fileOptions struct {
	Category string
	Force    bool
	Creds    credOptions
}

func (o *fileOptions) AddFlags(f *pflag.FlagSet, what string) {
	f.StringVar(&o.Category, "category", "", what)
	f.BoolVarP(&o.Force, "force", "f", false, "overwrite OUT if it exists")
	o.Creds.AddFlags(f)
}

func newFileEncryptCommand(g *globalOptions) *cobra.Command {
	var opts fileOptions
	cmd := &cobra.Command{
		Use:     "encrypt IN OUT",
		Short:   "Encrypt IN into OUT with a category's key",
		Example: `  mysecure file encrypt --store /var/lib/mysecure/storage dump.sql dump.sql.msec`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFile(cmd.Context(), opts, g, args[0], args[1], true)
		},
	}
	opts.AddFlags(cmd.Flags(), "category whose key encrypts (default @"+defaultFileCategory+")")
	return cmd
}

func newFileDecryptCommand(g *globalOptions) *cobra.Command {
	var opts fileOptions
	cmd := &cobra.Command{
		Use:   "decrypt IN OUT",
		Short: "Decrypt IN into OUT; every block is authenticated",
		Long: `Decrypt IN into OUT. The file's header names its category key; --category
insists on one. OUT appears only when the whole file decrypted and
authenticated; on any error it is removed. With OUT = -, plaintext is written
as blocks authenticate, and the exit code says whether all of it did.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFile(cmd.Context(), opts, g, args[0], args[1], false)
		},
	}
	opts.AddFlags(cmd.Flags(), "accept only files of this category")
	return cmd
}

func runFile(ctx context.Context, opts fileOptions, g *globalOptions, in, out string, encrypt bool) error {
	cat := strings.TrimPrefix(opts.Category, "@")
	if encrypt && cat == "" {
		cat = defaultFileCategory
	}
	if cat != "" && !volume.ValidCategory(cat) {
		return usagef(fmt.Sprintf("bad category name %q", opts.Category))
	}
	if out != "-" && !opts.Force {
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("output %s: %w", out, os.ErrExist)
		}
	}
	src, err := openInput(in, g.in)
	if err != nil {
		return err
	}
	defer src.Close()

	v, k, err := unlock(g, &opts.Creds)
	if err != nil {
		return err
	}
	defer k.Wipe()
	if cat != "" {
		if err := checkCategory(cat, v.Config.Categories); err != nil {
			return err
		}
	}

	dst, err := content.CreateOutput(out, g.p.out)
	if err != nil {
		return err
	}
	defer dst.Abort()
	defer g.cleanups.Add(dst.Abort)()

	name := in
	if in == "-" {
		name = "stdin"
	}
	if encrypt {
		var key *content.Key
		if key, err = k.ContentKey(cat); err != nil {
			return err
		}
		err = content.EncryptTo(ctx, dst, src, key)
	} else {
		var ring content.Keyring
		if cat != "" {
			ring, err = k.ContentKey(cat)
		} else {
			ring, err = k.Keyring()
		}
		if err != nil {
			return err
		}
		err = content.DecryptTo(ctx, dst, src, ring, name)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, atomicfile.ErrAborted) {
		return errInterrupted
	}
	return err
}

func openInput(path string, stdin io.Reader) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, usagef(path + " is a directory")
	}
	return f, nil
}
