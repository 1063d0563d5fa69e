package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/mysecure/mysecure/encfs/volume"
)

// kms key slots in the CLI: the flags of 'key add --type kms', the
// unlock through the key server at mount (with the fallback to another
// credential) and 'key verify --kms'. The slot itself is encfs/volume's.

// kmsTimeout bounds each request to a key server.
const kmsTimeout = 10 * time.Second

// hintKMS is the hint for a kms slot that did not open.
const hintKMS = "check that the key server is up and accepts this host's client certificate ('mysecure key verify --kms' asks it for every kms slot); the passphrase slot still mounts: 'mysecure mount' on a terminal or with --passphrase-file and --salt-file (docs/fleet.md)"

// hintKMSAdd is the hint for a kms slot the key server would not make.
const hintKMSAdd = "the key must exist on the server, be active, allow Encrypt and Decrypt and belong to the identity of --cert; --ca must sign the server's certificate"

// kmsAddOptions are the settings of a new kms slot.
type kmsAddOptions struct {
	URL, Cert, Key, CA, KeyID string
}

func (o *kmsAddOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.URL, "kms", "", "(--type kms) the KMIP key server, `kmip://HOST[:PORT]` (port 5696 by default)")
	f.StringVar(&o.Cert, "cert", "", "(--type kms) this host's client certificate, `PEM`")
	f.StringVar(&o.Key, "key", "", "(--type kms) the client certificate's private key, `PEM` (mode 0600 or 0400)")
	f.StringVar(&o.CA, "ca", "", "(--type kms) the CA certificates that sign the key server's certificate, `PEM`")
	f.StringVar(&o.KeyID, "key-id", "", "(--type kms) the unique identifier of the AES-256 key on the server")
}

// settings checks the flags (before any credential is asked for) and
// makes the paths absolute: the daemon starts in /.
func (o *kmsAddOptions) settings() (volume.KMSSettings, error) {
	if o.URL == "" || o.Cert == "" || o.Key == "" || o.CA == "" || o.KeyID == "" {
		return volume.KMSSettings{}, withHint(usagef("--type kms needs --kms, --cert, --key, --ca and --key-id"),
			"for example: --kms kmip://kms.example:5696 --cert /etc/mysecure/kms.crt --key /etc/mysecure/kms.key --ca /etc/mysecure/kms-ca.pem --key-id 1234")
	}
	s, err := volume.KMSSettings{URL: o.URL, KeyID: o.KeyID, Cert: o.Cert, Key: o.Key, CA: o.CA}.Absolute()
	if err != nil {
		return volume.KMSSettings{}, err
	}
	if err := s.Validate(); err != nil {
		return volume.KMSSettings{}, usagef(err.Error())
	}
	return s, nil
}

// explicit reports whether a credential was named on the command line.
func (o *credOptions) explicit() bool {
	return o.PassphraseFile != "" || o.SaltFile != "" || o.KeyFile != "" || o.RSAPrivateKey != ""
}

// fallbackName names what a failed kms unlock falls back to.
func (o *credOptions) fallbackName() string {
	switch {
	case o.KeyFile != "":
		return "the key file"
	case o.RSAPrivateKey != "":
		return "the RSA key"
	}
	return "the passphrase slot"
}

// useKMS reports whether mount tries the volume's kms slots first: with
// --kms, or when the volume has kms slots and no credential was named
// (a boot unit's plain 'mysecure mount --foreground').
func (o *mountOptions) useKMS(v *volume.Volume) (bool, error) {
	use, err := v.UseKMS(o.KMS, o.Creds.explicit())
	if err != nil {
		return false, withHint(usagef(err.Error()), "'mysecure key add --type kms' makes one; 'mysecure key list' shows the slots")
	}
	return use, nil
}

// unlockKMS opens v through its kms slots.
func unlockKMS(ctx context.Context, v *volume.Volume) (*volume.Keys, error) {
	return v.Unlock(volume.KMS{Ctx: ctx, Timeout: kmsTimeout})
}

// tryKMS is what mount does with kms slots: the keys when one opened;
// when none did, one warning line per slot ("kms slot 2: kmip://...:
// connection refused; falling back to the passphrase slot") and no keys
// when canFallBack, else an error that says there is nothing to fall back
// to.
func tryKMS(ctx context.Context, g *globalOptions, v *volume.Volume, o *credOptions, canFallBack bool) (*volume.Keys, error) {
	k, err := v.TryKMS(volume.KMS{Ctx: ctx, Timeout: kmsTimeout}, canFallBack, func(s *volume.KMSError) {
		fmt.Fprintf(g.p.err, "mysecure: warning: %s; falling back to %s\n", s, o.fallbackName())
	})
	var ue *volume.KMSUnlockError
	if !canFallBack && errors.As(err, &ue) {
		return nil, withHint(fmt.Errorf("%w (no terminal, no --passphrase-file)", err), hintKMS)
	}
	return k, err
}

// canFallBack reports whether mount has another credential to try: one
// named on the command line, or a terminal to ask for the passphrase.
func (o *credOptions) canFallBack() bool {
	if o.explicit() {
		return true
	}
	if t := openTTY(); t != nil {
		t.Close()
		return true
	}
	return false
}

// unlockForMount opens the volume for the daemon (mount --foreground).
// Run by hand or by systemd, it tries the kms slots when useKMS says so
// and falls back to the credential of the command line or the terminal.
// As the child of a detached mount, it follows the parent, which tried
// the key server itself: --kms when that worked, with the credential fd
// as the fallback when the parent had one.
func (o *mountOptions) unlockForMount(ctx context.Context, g *globalOptions, v *volume.Volume) (*volume.Keys, error) {
	kms := o.KMS
	if o.CredFD == 0 {
		var err error
		if kms, err = o.useKMS(v); err != nil {
			return nil, err
		}
	}
	var c volume.Credential
	wipe := func() {}
	defer func() { wipe() }()
	if o.CredFD > 0 {
		// Read (and close) the credential fd first, whatever opens the
		// volume: it must not stay open in the daemon.
		var err error
		if c, wipe, err = o.Creds.credentialFromFD(o.CredFD); err != nil {
			return nil, err
		}
	}
	if kms {
		canFallBack := o.Creds.canFallBack()
		if o.CredFD > 0 {
			// The parent hands over an empty passphrase when it had
			// nothing to fall back to.
			p, isPass := c.(volume.Passphrase)
			canFallBack = !isPass || len(p.Passphrase) > 0
		}
		if k, err := tryKMS(ctx, g, v, &o.Creds, canFallBack); k != nil || err != nil {
			return k, err
		}
	}
	if c == nil {
		var err error
		if c, wipe, err = o.Creds.credential(); err != nil {
			return nil, err
		}
	}
	return v.Unlock(c)
}

// mountKMSParent is the detached parent's part: with kms slots to use, it
// asks the key server itself, so that a failure is reported (and the
// passphrase asked for on the terminal) before the daemon starts. It
// returns whether the daemon should unlock through the kms slots.
func (o *mountOptions) mountKMSParent(ctx context.Context, g *globalOptions, v *volume.Volume) (bool, error) {
	kms, err := o.useKMS(v)
	if err != nil || !kms {
		return false, err
	}
	k, err := tryKMS(ctx, g, v, &o.Creds, o.Creds.canFallBack())
	if k != nil {
		k.Wipe()
	}
	return k != nil, err
}

// classifyKMS maps a kms slot that could not be made or opened.
func classifyKMS(err error) (int, string, bool) {
	var ke *volume.KMSError
	var ue *volume.KMSUnlockError
	switch {
	case errors.As(err, &ke) && errors.Is(err, volume.ErrInsecureKeyFile):
		return exitPermission, "the client key: chmod 0600 and owned by the caller; the certificate and CA files: owned by root or the caller, not writable by group or others", true
	case errors.As(err, &ke) && ke.Slot == 0:
		return exitCredentials, hintKMSAdd, true
	case errors.As(err, &ke), errors.As(err, &ue):
		return exitCredentials, hintKMS, true
	}
	return 0, "", false
}
