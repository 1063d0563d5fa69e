package fusefs

import (
	"context"
	"io"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/encfs/content"

	"github.com/mysecure/mysecure/internal/procfs"
)

// handle is an open file. Its existence is the access decision: it was
// made only after the Authorizer allowed the open.
type handle struct {
	n      *node
	of     *openState
	append bool
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	yield()
	h.n.rw.RLock()
	defer h.n.rw.RUnlock()
	k, err := h.of.cf.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	yield()
	h.of.killPriv(ctx)
	h.n.rw.Lock()
	defer h.n.rw.Unlock()
	if h.append {
		size, err := h.of.cf.Size()
		if err != nil {
			return 0, toErrno(err)
		}
		off = size
	}
	k, err := h.of.cf.WriteAt(data, off)
	if err != nil {
		return uint32(k), toErrno(err)
	}
	return uint32(k), 0
}

func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	yield()
	fd := int(h.of.backing.Fd())
	if flags&fsyncDataSync != 0 {
		return fs.ToErrno(unix.Fdatasync(fd))
	}
	return fs.ToErrno(unix.Fsync(fd))
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.n.release()
	return 0
}

// Getattr reports the file as it is between writes: under the node's
// lock (a write in progress may have grown the store file by part of a
// block), with the exact plaintext size the open file keeps.
func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	h.n.rw.RLock()
	defer h.n.rw.RUnlock()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(h.of.backing.Fd()), &st); err != nil {
		return fs.ToErrno(err)
	}
	h.n.fillAttr("", &st, &out.Attr)
	if size, err := h.of.cf.Size(); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
		out.Size = uint64(size)
	}
	return 0
}

func (h *handle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	fd := int(h.of.backing.Fd())
	if size, ok := in.GetSize(); ok {
		h.of.killPriv(ctx)
		h.n.rw.Lock()
		err := h.of.cf.Truncate(int64(size))
		h.n.rw.Unlock()
		if err != nil {
			return toErrno(err)
		}
	}
	if m, ok := in.GetMode(); ok {
		if err := unix.Fchmod(fd, m); err != nil {
			return fs.ToErrno(err)
		}
		h.of.notePriv(m)
	}
	if uid, gid, ok := owner(in); ok {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fs.ToErrno(err)
		}
	}
	if ts, ok := times(in); ok {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, procfs.SelfFDPath(fd), ts, 0); err != nil {
			return fs.ToErrno(err)
		}
	}
	return h.Getattr(ctx, out)
}

// Allocate supports mode 0 (extend with zeros), FALLOC_FL_KEEP_SIZE and
// FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE (InnoDB page compression).
// Growing leaves a hole; the store's space for the range is reserved with
// fallocate on the store file where its filesystem can. Other modes (zero
// range, collapse, insert) are EOPNOTSUPP.
func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	end := int64(off + size)
	if end < 0 || int64(off) < 0 {
		return syscall.EFBIG
	}
	switch mode {
	case 0, unix.FALLOC_FL_KEEP_SIZE:
		h.n.rw.Lock()
		defer h.n.rw.Unlock()
		cur, err := h.of.cf.Size()
		if err != nil {
			return toErrno(err)
		}
		if mode == 0 && end > cur {
			if err := h.of.cf.Truncate(end); err != nil {
				return toErrno(err)
			}
		}
		h.reserve(int64(off), end, mode)
		return 0
	case unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE:
		h.of.killPriv(ctx)
		h.n.rw.Lock()
		defer h.n.rw.Unlock()
		return toErrno(h.of.cf.PunchHole(int64(off), int64(size)))
	}
	return syscall.EOPNOTSUPP
}

// reserve asks the store's filesystem for the space of plaintext range
// [off, end) (best effort: not every filesystem can, and the data is
// right either way). Reserved, unwritten space reads as zeros: a hole.
func (h *handle) reserve(off, end int64, mode uint32) {
	from := content.CipherSize(off / content.BlockSize * content.BlockSize)
	to := content.CipherSize(end)
	if to > from {
		_ = unix.Fallocate(int(h.of.backing.Fd()), mode, from, to-from)
	}
}

// Lseek answers SEEK_DATA and SEEK_HOLE from the holes in the store; the
// kernel handles the other whences itself.
func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	h.n.rw.RLock()
	defer h.n.rw.RUnlock()
	var r int64
	var err error
	switch whence {
	case unix.SEEK_DATA:
		r, err = h.of.cf.SeekData(int64(off))
	case unix.SEEK_HOLE:
		r, err = h.of.cf.SeekHole(int64(off))
	default:
		return 0, syscall.EINVAL
	}
	if err != nil {
		return 0, toErrno(err)
	}
	return uint64(r), 0
}

// fsyncDataSync is FUSE_FSYNC_FDATASYNC: the caller asked for fdatasync.
const fsyncDataSync = 1
