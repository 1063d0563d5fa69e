// Package trust decides whether a file root reads instructions from can be
// changed by anyone but root.
//
// The config file names programs root runs (dump-tool, physical-tool),
// shell hooks (pre-hook, post-hook) and URLs the daemon calls: a config
// file another user can write, or replace by writing its directory, is a
// path to root. Like sshd's StrictModes, CheckFile refuses a file that is
// not owned by root, or that its group or others may write, and a file in
// a directory (any ancestor) that is not owned by root or that its group
// or others may write without the sticky bit (with it, they cannot rename
// or remove root's file).
package trust

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUntrusted: another user can change the file. Every error CheckFile
// returns for that reason matches both ErrUntrusted and os.ErrPermission
// (the CLI reports it as permission denied).
var ErrUntrusted = errors.New("another user can change it")

type untrusted struct{ msg string }

func (e *untrusted) Error() string   { return e.msg }
func (e *untrusted) Unwrap() []error { return []error{ErrUntrusted, os.ErrPermission} }

func refuse(format string, args ...any) error { return &untrusted{fmt.Sprintf(format, args...)} }

// CheckFile returns nil when only root can change path (the file, and
// which file the path names). It follows symbolic links; the link and the
// directories on the way to it are checked too.
func CheckFile(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// The path as given: a symlink in it is part of what names the file.
	if err := checkChain(abs); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	if real != abs {
		if err := checkChain(real); err != nil {
			return err
		}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return refuse("%s is not a regular file", path)
	}
	return check(real, fi, false)
}

// checkChain checks every directory above p, and p itself when it is a
// symbolic link.
func checkChain(p string) error {
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if err := check(p, fi, false); err != nil {
			return err
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if err := check(d, fi, true); err != nil {
			return err
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func check(p string, fi os.FileInfo, dir bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return refuse("cannot read the owner of %s", p)
	}
	if st.Uid != 0 {
		return refuse("%s is owned by uid %d, not root", p, st.Uid)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil // a link's own mode means nothing; its owner does
	}
	if fi.Mode().Perm()&0o022 == 0 {
		return nil
	}
	if dir && fi.Mode()&os.ModeSticky != 0 {
		return nil
	}
	what := "file"
	if dir {
		what = "directory"
	}
	return refuse("%s %s has mode %04o: its group or others can write it", what, p, fi.Mode().Perm())
}
