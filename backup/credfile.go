package backup

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"

	"github.com/mysecure/mysecure/internal/mycnf"
)

// FillFromCnf completes c from the client groups of the option file at
// path (`backup credentials set --from-cnf`): what c already has (given
// as flags) wins, except the password, which comes from the file.
func (c *CredentialsIn) FillFromCnf(path string) error {
	opts, err := mycnf.Load(path)
	if err != nil {
		return err
	}
	f, err := mycnf.ParseClient(opts)
	if err != nil {
		return err
	}
	if c.User == "" {
		c.User = f.User
	}
	c.Password = f.Password
	if c.Host == "" {
		c.Host = f.Host
	}
	if c.Port == 0 {
		c.Port = f.Port
	}
	if c.Socket == "" {
		c.Socket = f.Socket
	}
	return nil
}

// Shred overwrites a regular file with random bytes three times, syncing
// each pass, then truncates and removes it (the plaintext option file a
// password was read from). On journaling or copy-on-write file systems
// and SSDs old blocks may survive (docs/backup.md says so).
func Shred(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := overwrite(f, fi.Size()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Remove(p)
}

// overwrite writes size random bytes over f three times, syncing each
// pass, and truncates it.
func overwrite(f *os.File, size int64) error {
	buf := make([]byte, 64<<10)
	for pass := 0; pass < 3; pass++ {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		for left := size; left > 0; {
			n := min(left, int64(len(buf)))
			rand.Read(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			left -= n
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return f.Truncate(0)
}
