package fusefs

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/procfs"
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
	once sync.Once
	f    *os.File // the second descriptor; nil: read through main
}

// ReadAt is called with the node's write lock held (content.File merges
// only in WriteAt and Truncate), as is Close, once the last handle is gone.
func (r *mergeReader) ReadAt(p []byte, off int64) (int, error) {
	r.once.Do(func() {
		r.f, _ = os.OpenFile(procfs.SelfFDPath(int(r.main.Fd())), os.O_RDONLY|unix.O_NOATIME, 0)
	})
	if r.f != nil {
		return r.f.ReadAt(p, off)
	}
	return r.main.ReadAt(p, off)
}

// Close closes the second descriptor, if one was opened; not the main one.
// Reopening through /proc/self/fd gives the same inode even after a rename
// or unlink of the store path.
func (r *mergeReader) Close() error {
	if r.f == nil {
		return nil
	}
	return r.f.Close()
}

// openBackingNoatime opens store file p for the shared open state with
// O_NOATIME where the daemon may (it owns the file or is privileged), and
// says whether it did. content.Open reads the header through it: that read
// is the daemon's own, and a plain directory does not touch the access
// time on open(2), only on a read. clearNoatime then makes the descriptor
// an ordinary one before any read through the mount uses it.
func openBackingNoatime(p string) (*os.File, bool, error) {
	b, err := os.OpenFile(p, os.O_RDWR|unix.O_NOATIME, 0)
	if err == nil {
		return b, true, nil
	}
	if !errors.Is(err, unix.EPERM) {
		return nil, false, err
	}
	b, err = os.OpenFile(p, os.O_RDWR, 0)
	return b, false, err
}

// clearNoatime clears O_NOATIME on b (F_SETFL may change it), so that
// reads through the mount update the access time as on a plain directory.
func clearNoatime(b *os.File) error {
	fd := b.Fd()
	fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(fd, unix.F_SETFL, fl&^unix.O_NOATIME)
	return err
}
