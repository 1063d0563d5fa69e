// Package dirs creates directories with the modes asked for, whatever
// the process umask: a root umask of 077 would otherwise make every parent
// of the store or the mount 0700, and the database server, which runs as
// its own user, could not reach the mount. It never changes a directory
// that exists.
package dirs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// MkdirAll creates path and its missing parents: the parents with mode
// parent, path itself with mode leaf (both applied with chmod, so the
// umask does not narrow them). Directories that exist keep their mode.
func MkdirAll(path string, parent, leaf os.FileMode) error {
	path = filepath.Clean(path)
	if fi, err := os.Stat(path); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", path)
		}
		return nil
	}
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p, mode := missing[i], parent
		if i == 0 {
			mode = leaf
		}
		if err := os.Mkdir(p, mode); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		} else if err == nil {
			if err := os.Chmod(p, mode); err != nil {
				return err
			}
		}
	}
	return nil
}
