package volume

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mysecure/mysecure/internal/dirs"
)

// KeyFileSecretSize is the size of the random secret in a key file.
const KeyFileSecretSize = 32

// GenerateKeyFile writes a new key file at path: 32 random bytes as hex and
// a newline, mode 0400, owned by the caller. It refuses to overwrite. Its
// missing parent directories are created 0755 (the usual place,
// /etc/mysecure, also holds files that the server user reads).
//
// Trade-off (docs/threat-model.md): whoever can read the file can unlock
// the volume without any passphrase; it lets a server mount at boot with no
// one present, and protects only against copies of the store made without
// the file (a stolen data disk, a backup of the store alone).
func GenerateKeyFile(path string) (*KeyFile, error) {
	secret := make([]byte, KeyFileSecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("failed to generate key file secret: %w", err)
	}
	if err := dirs.MkdirAll(filepath.Dir(path), 0o755, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return nil, fmt.Errorf("failed to create key file: %w", err)
	}
	text := []byte(hex.EncodeToString(secret) + "\n")
	defer clear(text)
	if _, err := f.Write(text); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("failed to write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("failed to write key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("failed to write key file: %w", err)
	}
	return &KeyFile{Secret: secret}, nil
}

// ReadKeyFile reads a key file. A regular file that its group or others
// can read, or that another user owns, is refused (ErrInsecureKeyFile),
// as ssh does with private keys. /dev/fd/N and pipes are accepted as they
// are.
func ReadKeyFile(path string) (*KeyFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat key file: %w", err)
	}
	if fi.Mode().IsRegular() {
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%w: %s has mode %04o, want 0400 or 0600", ErrInsecureKeyFile, path, fi.Mode().Perm())
		}
		if uid, ok := fileUID(fi); ok && uid != os.Geteuid() {
			return nil, fmt.Errorf("%w: %s is owned by uid %d, not by the caller", ErrInsecureKeyFile, path, uid)
		}
	}
	buf := make([]byte, 4096)
	n, err := f.Read(buf)
	if err != nil {
		clear(buf)
		return nil, fmt.Errorf("failed to read key file: %w", err)
	}
	defer clear(buf)
	text := bytes.TrimSpace(buf[:n])
	secret := make([]byte, hex.DecodedLen(len(text)))
	if _, err := hex.Decode(secret, text); err != nil || len(secret) != KeyFileSecretSize {
		return nil, errors.New("key file does not hold a mysecure key (want 64 hex digits)")
	}
	return &KeyFile{Secret: secret}, nil
}

func fileUID(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
