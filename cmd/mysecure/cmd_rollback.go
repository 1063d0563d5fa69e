package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/rollback"
	"github.com/mysecure/mysecure/encfs/volume"
)

// hintRollback is the hint for a file older than the last one seen.
const hintRollback = "put the newest copy of that file back; to keep the older one on purpose, run 'mysecure key accept-rollback' with the passphrase and salt or the RSA key"

// rollbackDir is the state directory of the last seen generations.
func rollbackDir(g *globalOptions) *rollback.Dir { return &rollback.Dir{Path: g.cfg.StateDir} }

// observeConfig refuses a volume config older than the last one this
// host saw, and records a newer one.
func observeConfig(g *globalOptions, v *volume.Volume) error {
	return rollbackDir(g).Observe(v.Config.VolumeID, volume.ConfigPath(v.Dir), v.Config.Generation)
}

// unlockChecked is unlock plus the rollback check of the config: for key
// commands and the mount, which act on this host's volume (file
// encrypt/decrypt also serve copies on other machines and do not check).
func unlockChecked(g *globalOptions, o *credOptions) (*volume.Volume, *volume.Keys, error) {
	v, k, err := unlock(g, o)
	if err != nil {
		return nil, nil, err
	}
	if err := observeConfig(g, v); err != nil {
		k.Wipe()
		return nil, nil, err
	}
	return v, k, nil
}

func newKeyAcceptRollbackCommand(g *globalOptions) *cobra.Command {
	var creds credOptions
	cmd := &cobra.Command{
		Use:   "accept-rollback",
		Short: "Accept the store's mysecure.conf and rules.json even if older than last seen (master credential)",
		Long: `mount and the key commands refuse a mysecure.conf or rules.json whose
generation is lower than the last one this host saw (kept in state-dir,
outside the store): an older copy put back could revive a removed key slot
or a deleted rule. When the older file is what you want (you restored the
store from a backup), accept it: this checks both files with the master
credential (passphrase and salt, or the RSA key; never a key file) and
records their generations as the last seen. A running daemon reads the
rules again on SIGHUP or at the next mount.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, k, err := unlock(g, &creds)
			if err != nil {
				return err
			}
			defer k.Wipe()
			acc, err := daemon.AcceptRollback(rollbackDir(g), v, k)
			for _, f := range acc {
				fmt.Fprintf(g.p.out, "accepted %s generation %d (last seen %d)\n", f.Path, f.Generation, f.Previous)
			}
			return err
		},
	}
	creds.AddFlags(cmd.Flags())
	return cmd
}

// classifyRollback maps the rollback package's errors (nil, "" if err is
// not one of them).
func classifyRollback(err error) (code int, hint string, ok bool) {
	switch {
	case errors.Is(err, rollback.ErrRollback):
		return exitVolume, hintRollback, true
	case errors.Is(err, rollback.ErrInsecureState):
		return exitPermission, "make the state directory root-only (chmod 0700 DIR, 0600 its files) or point state-dir elsewhere", true
	}
	return 0, "", false
}
