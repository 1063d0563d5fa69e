// Package noatime opens files without updating their access time where the
// kernel allows it, for reads a program makes for itself rather than for a
// user (copying a tree whose times it preserves, the mount daemon's reads
// of its store).
package noatime

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Open opens path with flag|O_NOATIME, and with flag alone where O_NOATIME
// is refused: EPERM (the caller neither owns the file nor is privileged)
// or EINVAL (a file system without it).
func Open(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		f, err = os.OpenFile(path, flag, 0)
	}
	return f, err
}
