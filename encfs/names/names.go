// Package names encrypts file names deterministically with EME
// (github.com/rfjakob/eme, the wide-block mode gocryptfs uses) under a
// per-directory IV, and maps names too long for the backing filesystem to
// a hashed form with a side file.
//
// It must not touch the filesystem beyond what its callers hand it: the
// FUSE frontend decides where IV and side files live. Names are not
// authenticated (see docs/threat-model.md).
package names

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/rfjakob/eme"
)

const (
	// DirIVSize is the size of a directory's random name IV.
	DirIVSize = 16

	// DirIVFile is the name of the file holding a directory's IV in the
	// store. Encrypted names never start with "ms." (base64url has no dot).
	DirIVFile = "ms.diriv"

	// LongPrefix starts the stored name of a long name.
	LongPrefix = "ms.long."

	// LongSuffix ends the side file holding a long name's full encrypted
	// form.
	LongSuffix = ".name"

	// MaxStoredName is the longest encrypted name stored as it is; longer
	// ones get the hashed form. 255 is the limit of ext4, xfs and btrfs.
	MaxStoredName = 255

	// MaxPlainName is the longest plaintext name accepted (as on Linux).
	MaxPlainName = 255
)

// ErrBadName is matched by errors about a stored name that does not decrypt
// to a valid name (corrupt, or from another directory or key).
var ErrBadName = errors.New("invalid encrypted name")

var b64 = base64.RawURLEncoding.Strict()

// Cipher encrypts and decrypts names of one category.
type Cipher struct {
	eme *eme.EMECipher
}

// New returns a Cipher for a 32-byte key.
func New(key []byte) (*Cipher, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("name key is %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return &Cipher{eme: eme.New(b)}, nil
}

// NewDirIV returns a fresh random directory IV.
func NewDirIV() ([]byte, error) {
	iv := make([]byte, DirIVSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("failed to generate directory IV: %w", err)
	}
	return iv, nil
}

// CheckName reports whether name can be a plaintext file name.
func CheckName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid name %q", name)
	case len(name) > MaxPlainName:
		return fmt.Errorf("name is %d bytes, longer than %d", len(name), MaxPlainName)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or NUL", name)
	}
	return nil
}

// Encrypt returns the encrypted, base64url form of name in a directory
// with IV dirIV. The result may be longer than MaxStoredName: see Long.
func (c *Cipher) Encrypt(dirIV []byte, name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	if len(dirIV) != DirIVSize {
		return "", fmt.Errorf("directory IV is %d bytes, want %d", len(dirIV), DirIVSize)
	}
	padded := pad([]byte(name))
	return b64.EncodeToString(c.eme.Encrypt(dirIV, padded)), nil
}

// Decrypt reverses Encrypt.
func (c *Cipher) Decrypt(dirIV []byte, enc string) (string, error) {
	if len(dirIV) != DirIVSize {
		return "", fmt.Errorf("directory IV is %d bytes, want %d", len(dirIV), DirIVSize)
	}
	// The decoder skips \r and \n even in strict mode: a name with them
	// would be a second spelling of another name in the same directory.
	ct, err := b64.DecodeString(enc)
	if err != nil || strings.ContainsAny(enc, "\r\n") {
		return "", fmt.Errorf("%w: %q is not base64url", ErrBadName, enc)
	}
	// EME takes 1 to 128 AES blocks; a padded 255-byte name is 16 blocks.
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 || len(ct) > 16*aes.BlockSize {
		return "", fmt.Errorf("%w: %q has a bad length", ErrBadName, enc)
	}
	pt, err := unpad(c.eme.Decrypt(dirIV, ct))
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadName, enc, err)
	}
	name := string(pt)
	if err := CheckName(name); err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadName, enc, err)
	}
	return name, nil
}

// IsLong reports whether an encrypted name must be stored in hashed form.
func IsLong(enc string) bool { return len(enc) > MaxStoredName }

// Long returns the stored form of a long encrypted name:
// "ms.long." + base64url(SHA-256(enc)). The full enc goes into a side file
// named Long(enc) + LongSuffix.
func Long(enc string) string {
	sum := sha256.Sum256([]byte(enc))
	return LongPrefix + b64.EncodeToString(sum[:])
}

// IsLongStored reports whether a stored name is a hashed long name (and not
// its side file).
func IsLongStored(stored string) bool {
	return strings.HasPrefix(stored, LongPrefix) && !strings.HasSuffix(stored, LongSuffix)
}

// CheckLong verifies that enc, read from the side file of stored, belongs
// to it.
func CheckLong(stored, enc string) error {
	if Long(enc) != stored {
		return fmt.Errorf("%w: side file of %s does not match its name", ErrBadName, stored)
	}
	return nil
}

// pad applies PKCS#7 padding to a multiple of 16 bytes.
func pad(b []byte) []byte {
	n := aes.BlockSize - len(b)%aes.BlockSize
	return append(b, bytes.Repeat([]byte{byte(n)}, n)...)
}

func unpad(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("empty")
	}
	n := int(b[len(b)-1])
	if n < 1 || n > aes.BlockSize || n > len(b) {
		return nil, errors.New("bad padding")
	}
	for _, x := range b[len(b)-n:] {
		if int(x) != n {
			return nil, errors.New("bad padding")
		}
	}
	return b[:len(b)-n], nil
}
