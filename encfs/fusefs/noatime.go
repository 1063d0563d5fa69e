package fusefs

import (
	"errors"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// mergeReader is how the daemon reads a store file for itself: the rest of
// a block that a write or truncate changes only in part. It reads through
// a second descriptor, opened with O_NOATIME on first use, so that those
// reads leave the store file's access time alone. Otherwise every write
// that merges would mark the inode dirty for its atime (relatime updates
// it once after each mtime change), and on ext4 without a journal the next
// fdatasync then writes the inode block synchronously as well: under
// InnoDB's redo log that was every other FSYNC (measured with the
// block:block_bio_queue tracepoint, docs/performance-mount.md). Reads of
// the file through the mount keep using the main descriptor and update
// the access time as on a plain directory.
//
// Where the reopen fails (O_NOATIME refused because the daemon is neither
// the store file's owner nor privileged, /proc missing, no descriptor left)
// it reads through the main descriptor. The second descriptor counts
// against RLIMIT_NOFILE like any other: a file that merges holds two.
type mergeReader struct {
	main *os.File

	mu     sync.Mutex
	opened bool
	f      *os.File // nil: use main
}

func (r *mergeReader) ReadAt(p []byte, off int64) (int, error) {
	return r.file().ReadAt(p, off)
}

func (r *mergeReader) file() *os.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.opened {
		r.opened = true
		f, err := reopenNoatime(r.main)
		if err == nil {
			r.f = f
		}
	}
	if r.f != nil {
		return r.f
	}
	return r.main
}

// Close closes the second descriptor, if one was opened; not the main one.
func (r *mergeReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// reopenNoatime opens the file behind f again, read-only, without
// access-time updates. Through /proc/self/fd: the same inode even after a
// rename or unlink of its store path.
func reopenNoatime(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return nil, err
	}
	return os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY|unix.O_NOATIME, 0)
}

// openReadNoatime opens a store file read-only without access-time
// updates where allowed: the daemon's own reads (hashing a program for an
// access decision) are not reads by a user.
func openReadNoatime(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = os.Open(p)
	}
	return f, err
}
