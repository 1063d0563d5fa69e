package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mysecure/mysecure/encfs/volume"
)

func newKeyCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the key slots that wrap the master key",
		Long: `Key slots wrap the volume's master key. Adding, removing or changing a slot
re-wraps the master key only: data is never re-encrypted. Every change needs a
master credential that opens an existing slot: the passphrase and salt, or an
RSA private key. A key file (for unattended mounts) only mounts, verifies and
decrypts. So does a kms slot (the master key wrapped by a KMIP key server,
for unattended mounts across a fleet): it needs no secret typed in, only this
host's client certificate, and is therefore not a master credential.`,
	}
	cmd.AddCommand(newKeyListCommand(g), newKeyVerifyCommand(g), newKeyAddCommand(g),
		newKeyRemoveCommand(g), newKeyChangeCommand(g), newKeyAcceptRollbackCommand(g))
	return cmd
}

// openVolume loads the store's volume and opens it with the credential
// in o, wiping the credential's secrets afterwards.
func openVolume(g *globalOptions, o *credOptions) (*volume.Volume, *volume.Keys, error) {
	v, err := volume.Load(g.cfg.Store)
	if err != nil {
		return nil, nil, err
	}
	c, wipe, err := o.credential()
	if err != nil {
		return nil, nil, err
	}
	defer wipe()
	k, err := v.Unlock(c)
	if err != nil {
		return nil, nil, err
	}
	return v, k, nil
}

// unlock is openVolume that warns on stderr when an RSA slot opened the
// volume (an RSA key cannot authenticate the config).
func unlock(g *globalOptions, o *credOptions) (*volume.Volume, *volume.Keys, error) {
	v, k, err := openVolume(g, o)
	if err != nil {
		return nil, nil, err
	}
	if !k.ConfigAuthenticated() {
		fmt.Fprintf(g.p.err, "mysecure: warning: unlocked with RSA key slot %d: an RSA key alone cannot prove that %s is genuine (docs/threat-model.md)\n", k.SlotID(), volume.ConfigPath(v.Dir))
	}
	return v, k, nil
}

// unlockMaster is unlock for commands that change the volume: the
// credential must be a master credential (passphrase and salt, or RSA).
// A key file is refused before anything is created or written; the
// volume package refuses it again in AddSlot, RemoveSlot and ReplaceSlot.
func unlockMaster(g *globalOptions, o *credOptions) (*volume.Volume, *volume.Keys, error) {
	v, k, err := unlockChecked(g, o)
	if err != nil {
		return nil, nil, err
	}
	if err := k.RequireMaster(); err != nil {
		k.Wipe()
		return nil, nil, err
	}
	return v, k, nil
}

// changeVolume unlocks the volume with a master credential, makes the
// change and records the config's new generation (observeConfig).
func changeVolume(g *globalOptions, o *credOptions, change func(*volume.Volume, *volume.Keys) error) error {
	v, k, err := unlockMaster(g, o)
	if err != nil {
		return err
	}
	defer k.Wipe()
	if err := change(v, k); err != nil {
		return err
	}
	return observeConfig(g, v)
}

// printable replaces control characters in text read from an
// unauthenticated config before it reaches a terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

type slotInfo struct {
	ID             int                 `json:"id"`
	Type           volume.SlotType     `json:"type"`
	Created        string              `json:"created"`
	Label          string              `json:"label,omitempty"`
	KDF            *volume.KDFParams   `json:"kdf,omitempty"`
	RSAFingerprint string              `json:"rsa_fingerprint,omitempty"`
	KeyFileHint    string              `json:"keyfile_hint,omitempty"`
	KMS            *volume.KMSSettings `json:"kms,omitempty"`
}

type keyListOutput struct {
	VolumeID   string     `json:"volume_id"`
	Version    int        `json:"version"`
	Categories []string   `json:"categories"`
	Slots      []slotInfo `json:"slots"`
}

func newKeyListCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the key slots (needs no credential, shows no secret)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := volume.Load(g.cfg.Store)
			if err != nil {
				return err
			}
			out := keyListOutput{VolumeID: v.Config.VolumeID, Version: v.Config.Version, Categories: v.Config.Categories, Slots: []slotInfo{}}
			for _, s := range v.Config.Slots {
				si := slotInfo{s.ID, s.Type, s.Created, s.Label, s.KDF, s.RSAFingerprint, s.KeyFileHint, nil}
				if s.KMS != nil {
					si.KMS = &s.KMS.KMSSettings
				}
				out.Slots = append(out.Slots, si)
			}
			if asJSON {
				return g.p.json(out)
			}
			fmt.Fprintf(g.p.out, "volume %s (format %d), categories @%s\n", out.VolumeID, out.Version, strings.Join(out.Categories, ", @"))
			tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tCREATED\tLABEL\tDETAIL")
			for _, s := range v.Config.Slots {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", s.ID, printable(string(s.Type)), printable(s.Created), printable(s.Label), printable(s.Detail()))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newKeyVerifyCommand(g *globalOptions) *cobra.Command {
	var creds credOptions
	var viaKMS bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that a credential opens the volume (exit 0) or not (exit 3), and ask the key server of every kms slot",
		Long: `Unlock the volume with the credential given (or, with --kms, through its kms
slots), then report for each key slot whether it still opens the volume: the
slot that opened it, and every kms slot by asking its key server to unwrap
the master key. Passphrase, RSA and key-file slots other than the one that
opened are not checked: that needs their secrets. Exit 3 when the credential
opens nothing or a kms slot no longer opens the volume.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeyVerify(cmd.Context(), g, &creds, viaKMS)
		},
	}
	creds.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&viaKMS, "kms", false, "unlock through the kms slots (no other credential needed)")
	return cmd
}

// runKeyVerify unlocks the volume and reports, slot by slot, whether each
// still opens it.
func runKeyVerify(ctx context.Context, g *globalOptions, creds *credOptions, viaKMS bool) error {
	var v *volume.Volume
	var k *volume.Keys
	var err error
	if viaKMS {
		if v, err = volume.Load(g.cfg.Store); err != nil {
			return err
		}
		if len(v.KMSSlots()) == 0 {
			return withHint(usagef("the volume has no kms key slot"), "'mysecure key add --type kms' makes one")
		}
		if k, err = unlockKMS(ctx, v); err != nil {
			return err
		}
		if err := observeConfig(g, v); err != nil {
			k.Wipe()
			return err
		}
	} else if v, k, err = unlockChecked(g, creds); err != nil {
		return err
	}
	defer k.Wipe()
	fmt.Fprintf(g.p.out, "ok: the credential opens key slot %d\n", k.SlotID())
	checks, verr := v.VerifySlots(k, volume.KMS{Ctx: ctx, Timeout: kmsTimeout})
	tw := tabwriter.NewWriter(g.p.out, 0, 4, 2, ' ', 0)
	for _, c := range checks {
		state := "not checked: needs its secret"
		switch c.State {
		case volume.SlotUnlocked:
			state = "opens the volume (it just did)"
		case volume.SlotUnwrapped:
			state = "opens the volume (the key server unwrapped it)"
		case volume.SlotFails:
			state = "FAILS: " + c.Err.Error()
		}
		fmt.Fprintf(tw, "slot %d\t%s\t%s\n", c.ID, printable(string(c.Type)), printable(state))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return verr
}

type keyAddOptions struct {
	Type  string
	Label string
	Creds credOptions
	New   newCredOptions
	KMS   kmsAddOptions
}

func (o *keyAddOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Type, "type", "passphrase", "slot type: passphrase, rsa, keyfile or kms")
	f.StringVar(&o.Label, "label", "", "a note shown by 'key list'")
	o.Creds.AddFlags(f)
	o.New.prefix = "new-"
	o.New.AddFlags(f, true)
	o.KMS.AddFlags(f)
}

func newKeyAddCommand(g *globalOptions) *cobra.Command {
	var opts keyAddOptions
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add a key slot",
		Example: `  mysecure key add --type rsa --rsa-public-key ops-pub.pem --passphrase-file P --salt-file S
  mysecure key add --type keyfile --create-keyfile /etc/mysecure/boot.key
  mysecure key add --type kms --kms kmip://kms.example:5696 --cert /etc/mysecure/kms.crt \
      --key /etc/mysecure/kms.key --ca /etc/mysecure/kms-ca.pem --key-id 1234
  mysecure key add --type passphrase --new-passphrase-file NP --new-salt-file NS --rsa-private-key ops.pem`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeyAdd(cmd.Context(), opts, g)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runKeyAdd(ctx context.Context, opts keyAddOptions, g *globalOptions) error {
	// Check the new credential's flags before asking for the old one.
	newCred, err := opts.newCredential(ctx)
	if err != nil {
		return err
	}
	var id int
	err = changeVolume(g, &opts.Creds, func(v *volume.Volume, k *volume.Keys) error {
		nc, wipe, err := newCred()
		if err != nil {
			return err
		}
		defer wipe()
		id, err = v.AddSlot(k, nc, opts.Label) // removes a key file made here when it fails
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.p.out, "added key slot %d (%s)\n", id, opts.Type)
	return nil
}

// newCredential checks the flags of the new slot's credential and
// returns what makes it once the volume is open (the new passphrase is
// asked for after the old credential); wipe zeroes its secrets.
func (o *keyAddOptions) newCredential(ctx context.Context) (func() (nc volume.NewCredential, wipe func(), err error), error) {
	switch volume.SlotType(o.Type) {
	case volume.SlotKMS:
		kms, err := o.KMS.settings()
		if err != nil {
			return nil, err
		}
		return func() (volume.NewCredential, func(), error) {
			return volume.NewKMS{Settings: kms, Ctx: ctx, Timeout: kmsTimeout}, func() {}, nil
		}, nil
	case volume.SlotRSA:
		if o.New.RSAPublicKey == "" {
			return nil, usagef("--type rsa needs --rsa-public-key")
		}
		return func() (volume.NewCredential, func(), error) {
			nc, err := o.New.rsa()
			return nc, func() {}, err
		}, nil
	case volume.SlotKeyFile:
		if o.New.CreateKeyFile == "" {
			return nil, usagef("--type keyfile needs --create-keyfile PATH")
		}
		return func() (volume.NewCredential, func(), error) {
			kf, err := o.New.keyFile()
			return kf, kf.Wipe, err
		}, nil
	case volume.SlotPassphrase:
		return func() (volume.NewCredential, func(), error) {
			p, err := o.New.passphrase()
			return p, p.Wipe, err
		}, nil
	}
	return nil, usagef(fmt.Sprintf("unknown slot type %q: want passphrase, rsa, keyfile or kms", o.Type))
}

func parseSlotID(s string) (int, error) {
	id, err := strconv.Atoi(s)
	if err != nil || id < 1 {
		return 0, usagef(fmt.Sprintf("bad slot ID %q: want a number from 'mysecure key list'", s))
	}
	return id, nil
}

func newKeyRemoveCommand(g *globalOptions) *cobra.Command {
	var creds credOptions
	cmd := &cobra.Command{
		Use:   "remove SLOT-ID",
		Short: "Remove a key slot (never the last one)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseSlotID(args[0])
			if err != nil {
				return err
			}
			err = changeVolume(g, &creds, func(v *volume.Volume, k *volume.Keys) error { return v.RemoveSlot(k, id) })
			if err != nil {
				return err
			}
			fmt.Fprintf(g.p.out, "removed key slot %d\n", id)
			return nil
		},
	}
	creds.AddFlags(cmd.Flags())
	return cmd
}

func newKeyChangeCommand(g *globalOptions) *cobra.Command {
	var creds credOptions
	newc := newCredOptions{prefix: "new-"}
	cmd := &cobra.Command{
		Use:   "change SLOT-ID",
		Short: "Change the passphrase and salt of a passphrase slot",
		Long: `Re-wrap a passphrase slot with a new passphrase and salt. The master key and
the data stay as they are. To replace an RSA key or a key file, add a new
slot and remove the old one.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseSlotID(args[0])
			if err != nil {
				return err
			}
			err = changeVolume(g, &creds, func(v *volume.Volume, k *volume.Keys) error {
				p, err := newc.passphrase()
				if err != nil {
					return err
				}
				defer p.Wipe()
				return v.ReplaceSlot(k, id, p)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.p.out, "changed key slot %d\n", id)
			return nil
		},
	}
	creds.AddFlags(cmd.Flags())
	newc.AddFlags(cmd.Flags(), false)
	return cmd
}
