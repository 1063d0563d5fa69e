package fusefs

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

var b64 = base64.RawURLEncoding

// rootNode is the mount root: one read-only directory per category.
type rootNode struct {
	fs.Inode
	fsys *FS
}

func (r *rootNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Stat(r.fsys.store, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if _, ok := r.fsys.categoryKeys(name); !ok {
		return nil, syscall.ENOENT
	}
	p := filepath.Join(r.fsys.store, name)
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	n := &node{fsys: r.fsys, cat: name, catRoot: true}
	return r.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: st.Ino}), 0
}

func (r *rootNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	cats := r.fsys.Categories()
	ents := make([]fuse.DirEntry, 0, len(cats))
	for _, c := range cats {
		ents = append(ents, fuse.DirEntry{Name: c, Mode: syscall.S_IFDIR})
	}
	return fs.NewListDirStream(ents), 0
}

func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Statfs(r.fsys.store, &s); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&s)
	return 0
}
