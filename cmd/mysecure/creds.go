package main

import (
	"bufio"
	"bytes"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/secretfile"
)

// maxSecretFile bounds how much of a secret file is read.
const maxSecretFile = secretfile.Max

// readSecretFile reads a passphrase or salt from path (a file or
// /dev/fd/N) with internal/secretfile, warning when others can read it.
func readSecretFile(path, what string) ([]byte, error) {
	b, loose, err := secretfile.Read(path, what)
	var tl *secretfile.TooLargeError
	if errors.As(err, &tl) {
		return nil, usagef(err.Error())
	}
	if err != nil {
		return nil, err
	}
	if loose != 0 {
		fmt.Fprintf(os.Stderr, "mysecure: warning: %s file %s is readable by group or others (mode %04o)\n", what, path, loose)
	}
	return b, nil
}

// readPassphraseFiles reads a passphrase and its salt secret.
func readPassphraseFiles(passFile, saltFile string) (volume.Passphrase, error) {
	p, err := readSecretFile(passFile, "passphrase")
	if err != nil {
		return volume.Passphrase{}, err
	}
	s, err := readSecretFile(saltFile, "salt")
	if err != nil {
		clear(p)
		return volume.Passphrase{}, err
	}
	return volume.Passphrase{Passphrase: p, Salt: s}, nil
}

// tty prompts on the controlling terminal, not on stdin, so that stdin
// stays free for data (file encrypt -).
type tty struct{ f *os.File }

// openTTY returns the controlling terminal, or nil when there is none
// (cron, CI, a pipe).
func openTTY() *tty {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	if !term.IsTerminal(int(f.Fd())) {
		f.Close()
		return nil
	}
	return &tty{f: f}
}

func (t *tty) Close() { t.f.Close() }

// readSecret prompts and reads one line without echo.
func (t *tty) readSecret(prompt string) ([]byte, error) {
	fmt.Fprint(t.f, prompt)
	b, err := term.ReadPassword(int(t.f.Fd()))
	fmt.Fprintln(t.f)
	if err != nil {
		return nil, fmt.Errorf("failed to read from terminal: %w", err)
	}
	return b, nil
}

// readLine prompts and reads one line (echoed), without the spaces
// around it.
func (t *tty) readLine(prompt string) (string, error) {
	fmt.Fprint(t.f, prompt)
	line, err := bufio.NewReader(t.f).ReadString('\n')
	return strings.TrimSpace(line), err
}

// readNewSecret prompts twice and insists on the same answer.
func (t *tty) readNewSecret(prompt string) ([]byte, error) {
	a, err := t.readSecret(prompt + ": ")
	if err != nil {
		return nil, err
	}
	b, err := t.readSecret("repeat " + prompt + ": ")
	if err != nil {
		clear(a)
		return nil, err
	}
	defer clear(b)
	if !bytes.Equal(a, b) {
		clear(a)
		return nil, usagef("the two entries differ")
	}
	if len(a) == 0 {
		return nil, usagef(prompt + " is empty")
	}
	return a, nil
}

// credOptions select the credential that unlocks an existing volume.
type credOptions struct {
	PassphraseFile     string
	SaltFile           string
	KeyFile            string
	RSAPrivateKey      string
	RSAKeyPasswordFile string
}

func (o *credOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.PassphraseFile, "passphrase-file", "", "read the passphrase from `FILE` (a path or /dev/fd/N)")
	f.StringVar(&o.SaltFile, "salt-file", "", "read the salt secret from `FILE` (a path or /dev/fd/N)")
	f.StringVar(&o.KeyFile, "keyfile", "", "unlock with the key file at `PATH`")
	f.StringVar(&o.RSAPrivateKey, "rsa-private-key", "", "unlock with the RSA private key in `PEM`")
	f.StringVar(&o.RSAKeyPasswordFile, "rsa-key-password-file", "", "read the RSA private key's password from `FILE`")
}

// credential builds the unlocking credential. wipe zeroes its secrets.
func (o *credOptions) credential() (c volume.Credential, wipe func(), err error) {
	switch {
	case o.KeyFile != "":
		kf, err := volume.ReadKeyFile(o.KeyFile)
		if err != nil {
			return nil, nil, err
		}
		return *kf, kf.Wipe, nil
	case o.RSAPrivateKey != "":
		k, err := o.rsaKey()
		if err != nil {
			return nil, nil, err
		}
		return volume.RSAPrivateKey{Key: k}, func() {}, nil
	case o.PassphraseFile != "" || o.SaltFile != "":
		if o.PassphraseFile == "" || o.SaltFile == "" {
			return nil, nil, usagef("--passphrase-file and --salt-file go together: both secrets are needed")
		}
		pp, err := readPassphraseFiles(o.PassphraseFile, o.SaltFile)
		if err != nil {
			return nil, nil, err
		}
		return pp, pp.Wipe, nil
	}
	t := openTTY()
	if t == nil {
		return nil, nil, withHint(usagef("no credential given and no terminal to ask on"),
			"pass --passphrase-file and --salt-file, --keyfile or --rsa-private-key")
	}
	defer t.Close()
	p, err := t.readSecret("passphrase: ")
	if err != nil {
		return nil, nil, err
	}
	s, err := t.readSecret("salt: ")
	if err != nil {
		clear(p)
		return nil, nil, err
	}
	pp := volume.Passphrase{Passphrase: p, Salt: s}
	return pp, pp.Wipe, nil
}

// rsaKey reads the RSA private key, asking for its password when it is
// encrypted and no password file was given.
func (o *credOptions) rsaKey() (*rsa.PrivateKey, error) {
	k, err := volume.ReadRSAPrivateKey(o.RSAPrivateKey, o.rsaPassword)
	var fe *volume.RSAKeyFileError
	if errors.As(err, &fe) {
		return nil, withHint(usagef(err.Error()), "give a PEM RSA private key (PKCS#1 or PKCS#8)")
	}
	return k, err
}

// newCredOptions describe the credentials of new key slots (init, key
// add, key change). prefix is "" for init and "new-" for key commands.
type newCredOptions struct {
	prefix         string
	PassphraseFile string
	SaltFile       string
	RSAPublicKey   string
	CreateKeyFile  string
	KDFMemoryMiB   uint32
	KDFTime        uint32
	KDFThreads     uint8
}

func (o *newCredOptions) AddFlags(f *pflag.FlagSet, withOthers bool) {
	f.StringVar(&o.PassphraseFile, o.prefix+"passphrase-file", "", "read the new passphrase from `FILE` (a path or /dev/fd/N)")
	f.StringVar(&o.SaltFile, o.prefix+"salt-file", "", "read the new salt secret from `FILE` (a path or /dev/fd/N)")
	if withOthers {
		f.StringVar(&o.RSAPublicKey, "rsa-public-key", "", "add a key slot wrapped to the RSA public key in `PEM`")
		f.StringVar(&o.CreateKeyFile, "create-keyfile", "", "generate a key file at `PATH` (mode 0400) and add a slot for it")
	}
	f.Uint32Var(&o.KDFMemoryMiB, "kdf-memory", volume.DefaultKDF.MemoryKiB/1024, "Argon2id memory for passphrase slots, in `MiB`")
	f.Uint32Var(&o.KDFTime, "kdf-time", volume.DefaultKDF.Time, "Argon2id passes for passphrase slots")
	f.Uint8Var(&o.KDFThreads, "kdf-threads", volume.DefaultKDF.Threads, "Argon2id lanes for passphrase slots")
}

// testKDF, when set (by tests only), replaces the KDF parameters of new
// passphrase slots so that tests do not spend a second per slot.
var testKDF *volume.KDFParams

func (o *newCredOptions) kdf() (volume.KDFParams, error) {
	const maxMiB = 4096
	if o.KDFMemoryMiB < 1 || o.KDFMemoryMiB > maxMiB {
		return volume.KDFParams{}, usagef(fmt.Sprintf("--kdf-memory %d out of range 1..%d MiB", o.KDFMemoryMiB, maxMiB))
	}
	if o.KDFTime < 1 || o.KDFTime > 64 {
		return volume.KDFParams{}, usagef(fmt.Sprintf("--kdf-time %d out of range 1..64", o.KDFTime))
	}
	if o.KDFThreads < 1 {
		return volume.KDFParams{}, usagef("--kdf-threads must be at least 1")
	}
	if testKDF != nil {
		return *testKDF, nil
	}
	return volume.KDFParams{Alg: "argon2id", Time: o.KDFTime, MemoryKiB: o.KDFMemoryMiB * 1024, Threads: o.KDFThreads}, nil
}

// passphrase builds a new passphrase credential from files or, failing
// that, from two prompts each on the terminal.
func (o *newCredOptions) passphrase() (volume.NewPassphrase, error) {
	var p, s []byte
	kdf, err := o.kdf()
	if err != nil {
		return volume.NewPassphrase{}, err
	}
	switch {
	case o.PassphraseFile != "" || o.SaltFile != "":
		if o.PassphraseFile == "" || o.SaltFile == "" {
			return volume.NewPassphrase{}, usagef(fmt.Sprintf("--%spassphrase-file and --%ssalt-file go together: both secrets are needed", o.prefix, o.prefix))
		}
		pp, err := readPassphraseFiles(o.PassphraseFile, o.SaltFile)
		if err != nil {
			return volume.NewPassphrase{}, err
		}
		if p, s = pp.Passphrase, pp.Salt; len(p) == 0 || len(s) == 0 {
			return volume.NewPassphrase{}, usagef("the passphrase and the salt must not be empty")
		}
	default:
		t := openTTY()
		if t == nil {
			return volume.NewPassphrase{}, withHint(usagef("no new passphrase given and no terminal to ask on"),
				fmt.Sprintf("pass --%spassphrase-file and --%ssalt-file", o.prefix, o.prefix))
		}
		defer t.Close()
		if p, err = t.readNewSecret("new passphrase"); err != nil {
			return volume.NewPassphrase{}, err
		}
		if s, err = t.readNewSecret("new salt"); err != nil {
			clear(p)
			return volume.NewPassphrase{}, err
		}
	}
	return volume.NewPassphrase{Passphrase: volume.Passphrase{Passphrase: p, Salt: s}, KDF: kdf}, nil
}

func (o *newCredOptions) rsa() (volume.NewRSA, error) {
	data, err := os.ReadFile(o.RSAPublicKey)
	if err != nil {
		return volume.NewRSA{}, fmt.Errorf("failed to read RSA public key: %w", err)
	}
	pub, err := volume.ParseRSAPublicKeyPEM(data)
	if err != nil {
		return volume.NewRSA{}, withHint(usagef(fmt.Sprintf("%s: %v", o.RSAPublicKey, err)),
			"make one with 'openssl pkey -in key.pem -pubout -out pub.pem'")
	}
	return volume.NewRSA{Public: pub}, nil
}

func (o *newCredOptions) keyFile() (volume.NewKeyFile, error) {
	kf, err := volume.GenerateKeyFile(o.CreateKeyFile)
	if err != nil {
		return volume.NewKeyFile{}, withHint(err, "choose another path: an existing key file is never overwritten")
	}
	return volume.NewKeyFile{KeyFile: *kf, Path: o.CreateKeyFile}, nil
}
