package inplace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

const (
	copyBufSize      = 1 << 20
	progressInterval = 5 * time.Second
)

// copier copies a tree with everything the kernel lets us keep: content
// (holes included), owner, mode with setuid/setgid/sticky, atime and mtime
// to the nanosecond, extended attributes, hard links within the tree and
// symlinks as symlinks. Every file and directory it makes is fsynced.
type copier struct {
	ctx   context.Context
	log   *slog.Logger
	hook  string // test hook step after each regular file
	tree  *treeInfo
	links map[inoKey]string // source inode -> its first copy
	buf   []byte

	files, bytes int64
	lastLog      time.Time
}

// copyAll copies src to dst (which must not exist) and makes the result
// durable.
func copyAll(ctx context.Context, src, dst, hook string, tree *treeInfo, log *slog.Logger) error {
	c := &copier{
		ctx: ctx, log: log, hook: hook, tree: tree,
		links: map[inoKey]string{}, buf: make([]byte, copyBufSize), lastLog: time.Now(),
	}
	if err := c.copy(src, dst); err != nil {
		return err
	}
	if err := fsyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	// Belt and braces for what fsync of files and directories does not
	// cover everywhere (symlink inodes): flush the destination filesystem.
	if fd, err := openDir(filepath.Dir(dst)); err == nil {
		err = eintr(func() error { return unix.Syncfs(fd) })
		_ = unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("failed to sync the filesystem of %s: %w", dst, err)
		}
	}
	log.Info("copy complete", "files", c.files, "bytes", c.bytes)
	return nil
}

func (c *copier) progress() {
	if time.Since(c.lastLog) < progressInterval {
		return
	}
	c.lastLog = time.Now()
	c.log.Info("copying", "files", c.files, "of_files", c.tree.files, "bytes", c.bytes, "of_bytes", c.tree.bytes)
}

func (c *copier) copy(src, dst string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	st, err := lstat(src)
	if err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return fmt.Errorf("failed to create directory: %w", err)
		}
		names, err := readDirNames(src)
		if err != nil {
			return fmt.Errorf("failed to read %s: %w", src, err)
		}
		for _, n := range names {
			if err := c.copy(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
				return err
			}
		}
		// Owner, mode, xattrs and times only now that the contents are
		// written (a read-only directory, and its mtime).
		if err := setMeta(src, dst, &st); err != nil {
			return err
		}
		return fsyncDir(dst)
	case unix.S_IFREG:
		k := inoKey{st.Dev, st.Ino}
		if st.Nlink > 1 {
			if first, ok := c.links[k]; ok {
				if err := os.Link(first, dst); err != nil {
					return fmt.Errorf("failed to recreate hard link: %w", err)
				}
				return nil
			}
		}
		if err := c.copyFile(src, dst, &st); err != nil {
			return err
		}
		if st.Nlink > 1 {
			c.links[k] = dst
		}
		c.files++
		c.progress()
		step(c.hook)
		return nil
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("failed to read symlink: %w", err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("failed to create symlink: %w", err)
		}
		return setMeta(src, dst, &st)
	default:
		// scanTree refused these; the tree changed since.
		return fmt.Errorf("%w: %s is a %s; special files cannot be moved", ErrRefused, src, kindName(st.Mode))
	}
}

// onlyWriter and onlyReader hide ReadFrom/WriteTo so that io.CopyBuffer
// does plain reads and writes (no copy_file_range or splice tricks across
// filesystems, one of which is a FUSE mount).
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }

func (c *copier) copyFile(src, dst string, st *unix.Stat_t) error {
	in, err := openNoatime(src, false)
	if err != nil {
		return fmt.Errorf("failed to open: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("failed to create file: %w", err)
	}
	defer out.Close()
	if err := c.copyData(in, out, st.Size); err != nil {
		return fmt.Errorf("failed to copy %s: %w", src, err)
	}
	// Data first, then metadata (a FUSE filesystem may set mtime when it
	// writes back), then sync again for the metadata.
	if err := out.Sync(); err != nil {
		return fmt.Errorf("failed to fsync %s: %w", dst, err)
	}
	if err := setMeta(src, dst, st); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("failed to fsync %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("failed to close %s: %w", dst, err)
	}
	return nil
}

// copyData copies size bytes, skipping holes where the source filesystem
// reports them (SEEK_DATA/SEEK_HOLE), so sparse database files stay sparse.
func (c *copier) copyData(in, out *os.File, size int64) error {
	fd := int(in.Fd())
	for off := int64(0); off < size; {
		var data int64
		err := eintr(func() (err error) { data, err = unix.Seek(fd, off, unix.SEEK_DATA); return err })
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			data = off // no hole support: copy the rest
		}
		end := size
		if err == nil {
			var h int64
			if err := eintr(func() (err error) { h, err = unix.Seek(fd, data, unix.SEEK_HOLE); return err }); err == nil && h < size {
				end = h
			}
		}
		if data >= size {
			break
		}
		if err := c.copyRange(in, out, data, end); err != nil {
			return err
		}
		off = end
	}
	// Sets the size, and makes a trailing hole.
	return out.Truncate(size)
}

func (c *copier) copyRange(in, out *os.File, from, to int64) error {
	if _, err := in.Seek(from, io.SeekStart); err != nil {
		return err
	}
	if _, err := out.Seek(from, io.SeekStart); err != nil {
		return err
	}
	r := io.LimitReader(onlyReader{in}, to-from)
	for {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		n, err := io.CopyBuffer(onlyWriter{out}, io.LimitReader(r, copyBufSize), c.buf)
		c.bytes += n
		if err != nil {
			return err
		}
		if n < copyBufSize {
			return nil // the range is done (or the file shrank: verify catches it)
		}
		c.progress()
	}
}

// setMeta gives dst the owner, mode, extended attributes and times of src
// (whose stat is st), in the order that keeps them: chown clears setuid,
// setgid and security.capability, so it comes first; setting xattrs does
// not touch mtime; times come last.
func setMeta(src, dst string, st *unix.Stat_t) error {
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("failed to set owner of %s: %w", dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := eintr(func() error { return unix.Chmod(dst, st.Mode&0o7777) }); err != nil {
			return fmt.Errorf("failed to set mode of %s: %w", dst, &os.PathError{Op: "chmod", Path: dst, Err: err})
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := eintr(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return fmt.Errorf("failed to set times of %s: %w", dst, err)
	}
	return nil
}

// makeParents creates the missing parents of the destination, top down.
// One listed in model gets the mode and owner of the directory it names
// (the matching parent of PATH); the others get 0755.
func makeParents(missing []string, model map[string]string) error {
	for _, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("failed to create %s: %w", d, err)
		}
		mode, uid, gid := uint32(0o755), -1, -1
		if m, ok := model[d]; ok {
			var st unix.Stat_t
			if err := eintr(func() error { return unix.Stat(m, &st) }); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				mode, uid, gid = st.Mode&0o7777, int(st.Uid), int(st.Gid)
			}
		}
		if err := os.Lchown(d, uid, gid); err != nil {
			return fmt.Errorf("failed to set owner of %s: %w", d, err)
		}
		if err := eintr(func() error { return unix.Chmod(d, mode) }); err != nil {
			return fmt.Errorf("failed to set mode of %s: %w", d, err)
		}
		if err := fsyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}
