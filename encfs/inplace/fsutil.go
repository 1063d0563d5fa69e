package inplace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/noatime"
)

// eintr retries a system call interrupted by a signal. Calls on a FUSE
// mount are interruptible, and the Go runtime sends itself signals
// (preemption), so raw unix calls on the mount must retry; the os package
// does this for its own calls.
func eintr(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// openDir opens a directory for fsync or flock.
func openDir(dir string) (int, error) {
	var fd int
	err := eintr(func() error {
		var err error
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// within reports whether p is dir or below it. Both must be clean.
func within(p, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// fsyncDir makes a directory's entries durable.
func fsyncDir(dir string) error {
	fd, err := openDir(dir)
	if err != nil {
		return fmt.Errorf("failed to open %s for fsync: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := eintr(func() error { return unix.Fsync(fd) }); err != nil {
		return fmt.Errorf("failed to fsync %s: %w", dir, err)
	}
	return nil
}

// openNoatime opens a file or directory for reading without updating its
// access time where allowed (we are the owner or root), so that copying a
// tree does not change the times it is meant to preserve.
func openNoatime(p string, dir bool) (*os.File, error) {
	flag := os.O_RDONLY | unix.O_NOFOLLOW
	if dir {
		flag |= unix.O_DIRECTORY
	}
	return noatime.Open(p, flag)
}

// readDirNames lists a directory, sorted, without touching its atime.
func readDirNames(dir string) ([]string, error) {
	f, err := openNoatime(dir, true)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("failed to read directory %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// lstat is unix.Lstat with the path in the error.
func lstat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := eintr(func() error { return unix.Lstat(p, &st) }); err != nil {
		return st, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return st, nil
}

// exists reports whether p exists (without following a final symlink).
func exists(p string) (bool, error) {
	_, err := os.Lstat(p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// linkTarget resolves a symlink's target as an absolute, clean path.
func linkTarget(link string) (string, error) {
	t, err := os.Readlink(link)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(t) {
		t = filepath.Join(filepath.Dir(link), t)
	}
	return filepath.Clean(t), nil
}

// pathState is what is at PATH during a job.
type pathState int

const (
	psMissing   pathState = iota // nothing at PATH
	psLinkToDst                  // a symlink to the job's destination
	psLinkOther                  // a symlink elsewhere
	psReal                       // a file or directory (the plaintext tree)
)

func (s pathState) String() string {
	return [...]string{"missing", "a symlink to the encrypted copy", "a symlink elsewhere", "a real file or directory"}[s]
}

func classify(path, dst string) (pathState, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return psMissing, nil
	}
	if err != nil {
		return 0, err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return psReal, nil
	}
	t, err := linkTarget(path)
	if err != nil {
		return 0, err
	}
	if t == dst {
		return psLinkToDst, nil
	}
	return psLinkOther, nil
}

// realPath resolves the symlinks in p's parent directories (not in p
// itself). If that fails (p's parent does not exist), p is returned.
func realPath(p string) string {
	if p == "/" {
		return p
	}
	d, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return p
	}
	return filepath.Join(d, filepath.Base(p))
}

// realDir resolves all symlinks in a directory path, or returns it as is.
func realDir(p string) string {
	if p == "" {
		return ""
	}
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return p
	}
	return r
}

// renameDurable renames and fsyncs the parent directories involved.
func renameDurable(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if err := fsyncDir(filepath.Dir(to)); err != nil {
		return err
	}
	if filepath.Dir(from) != filepath.Dir(to) {
		return fsyncDir(filepath.Dir(from))
	}
	return nil
}

// removeTreeDurable removes p and everything below it, if it exists, and
// fsyncs its parent.
func removeTreeDurable(p string) error {
	ok, err := exists(p)
	if err != nil || !ok {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	return fsyncDir(filepath.Dir(p))
}

// removeSymlink removes p if it is a symlink; anything else at p is an
// error (we never delete data we did not make).
func removeSymlink(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("%s is not a symlink; leaving it alone", p)
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	return fsyncDir(filepath.Dir(p))
}

// makeLink creates the symlink tmp -> dst owned by uid:gid (replacing a
// stale symlink at tmp), to be renamed over PATH: PATH is then either absent,
// the old tree or a complete symlink, never a half made one.
func makeLink(tmp, dst string, uid, gid int) error {
	if err := removeSymlink(tmp); err != nil {
		return fmt.Errorf("failed to remove stale %s: %w", tmp, err)
	}
	if err := os.Symlink(dst, tmp); err != nil {
		return fmt.Errorf("failed to create symlink: %w", err)
	}
	if err := os.Lchown(tmp, uid, gid); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("failed to set the symlink's owner: %w", err)
	}
	return fsyncDir(filepath.Dir(tmp))
}
