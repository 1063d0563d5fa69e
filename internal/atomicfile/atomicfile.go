// Package atomicfile replaces a file so that a crash leaves either the
// old or the new content, never a mix or a truncated file: a temp file in
// the same directory, fsync, rename over the target, fsync of the
// directory. It must not follow a caller's path anywhere but into that
// directory, and must not leave its temp file behind on an error.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, mode perm (exactly: chmod, not the
// umask).
func Write(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
