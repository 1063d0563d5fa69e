package names

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DirIVPath returns the path of a store directory's IV file.
func DirIVPath(cipherDir string) string { return filepath.Join(cipherDir, DirIVFile) }

// ReadDirIV reads the name IV of a store directory.
func ReadDirIV(cipherDir string) ([]byte, error) {
	iv, err := os.ReadFile(DirIVPath(cipherDir))
	if err != nil {
		return nil, err
	}
	if len(iv) != DirIVSize {
		return nil, fmt.Errorf("%s: bad name IV (%d bytes)", DirIVPath(cipherDir), len(iv))
	}
	return iv, nil
}

// WriteDirIV writes iv into a fresh store directory (never replaces one).
func WriteDirIV(cipherDir string, iv []byte) error {
	fd, err := os.OpenFile(DirIVPath(cipherDir), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := fd.Write(iv); err != nil {
		fd.Close()
		return err
	}
	if err := fd.Sync(); err != nil {
		fd.Close()
		return err
	}
	return fd.Close()
}

// ReadOrCreateDirIV reads a directory's IV, creating one if it has none.
func ReadOrCreateDirIV(cipherDir string) ([]byte, error) {
	iv, err := ReadDirIV(cipherDir)
	if err == nil {
		return iv, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	iv, err = NewDirIV()
	if err != nil {
		return nil, err
	}
	if err := WriteDirIV(cipherDir, iv); err != nil {
		return nil, fmt.Errorf("failed to write name IV: %w", err)
	}
	return iv, nil
}

// StoredName encrypts one plaintext name for a directory with IV iv and
// returns the name used in the store and, for long names, the encrypted
// name to keep in the side file (else "").
func (c *Cipher) StoredName(iv []byte, name string) (stored, long string, err error) {
	enc, err := c.Encrypt(iv, name)
	if err != nil {
		return "", "", err
	}
	if IsLong(enc) {
		return Long(enc), enc, nil
	}
	return enc, "", nil
}

// SplitPath splits a plaintext path relative to a category (slash
// separated) into its names, skipping empty and "." components. ".." and
// names CheckName refuses are errors.
func SplitPath(rel string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("path %q leaves the category", rel)
		}
		if err := CheckName(c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// StorePath walks the plaintext path rel (SplitPath) down from the store
// directory dir, reading each directory's name IV, and returns the store
// path and the long-name side content of the last name ("" when short).
// Every parent must exist; the last name need not. It is the one walk of
// the mount (encfs/fusefs) and of access without it (encfs/tree).
func (c *Cipher) StorePath(dir, rel string) (path, long string, err error) {
	comps, err := SplitPath(rel)
	if err != nil {
		return "", "", err
	}
	path = dir
	for _, name := range comps {
		iv, err := ReadDirIV(path)
		if err != nil {
			return "", "", err
		}
		var s string
		if s, long, err = c.StoredName(iv, name); err != nil {
			return "", "", err
		}
		path = filepath.Join(path, s)
	}
	return path, long, nil
}

// WriteLongName writes the side file of the long-named entry at path p
// (nothing when long is "").
func WriteLongName(p, long string) error {
	if long == "" {
		return nil
	}
	return os.WriteFile(p+LongSuffix, []byte(long), 0o444)
}

// IsInternal reports whether a stored name is bookkeeping (a name IV or a
// long name's side file) rather than an entry.
func IsInternal(stored string) bool {
	return stored == DirIVFile || (strings.HasPrefix(stored, LongPrefix) && strings.HasSuffix(stored, LongSuffix))
}

// DecryptStored returns the plaintext name of the entry stored as stored in
// store directory cipherDir (IV iv), reading the side file of long names.
func (c *Cipher) DecryptStored(cipherDir string, iv []byte, stored string) (string, error) {
	enc := stored
	if IsLongStored(stored) {
		b, err := os.ReadFile(filepath.Join(cipherDir, stored+LongSuffix))
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadName, err)
		}
		if err := CheckLong(stored, string(b)); err != nil {
			return "", err
		}
		enc = string(b)
	}
	return c.Decrypt(iv, enc)
}
