package fusefs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/names"

	"github.com/mysecure/mysecure/internal/procfs"
)

// node is a file, directory or symlink below a category.
type node struct {
	fs.Inode
	fsys    *FS
	cat     string
	catRoot bool // the category's top directory

	ivMu sync.Mutex
	iv   []byte // name IV, for directories, read once

	// Regular files: one backing descriptor and content.File shared by
	// every handle, so that all of them see one header and one size. fmu
	// guards of; rw orders I/O on it: reads share, writes exclude.
	fmu sync.Mutex
	of  *openState
	// tailChecked: the end of the store file was checked for a torn
	// block (checkTail) since this node was made; guarded by fmu. Only
	// a process killed while writing leaves one, and this daemon is
	// the only writer from then on.
	tailChecked bool
	rw          sync.RWMutex
}

type openState struct {
	refs    int
	backing *os.File
	merges  *mergeReader // the daemon's own reads of backing (noatime.go)
	cf      *content.File
	// priv: the file has S_ISUID or S_ISGID, which a write, truncate or
	// O_TRUNC open by an unprivileged caller must clear (the mount
	// negotiates HANDLE_KILLPRIV_V2, so the kernel leaves that to us).
	priv atomic.Bool
}

// killPriv clears S_ISUID, and S_ISGID when the group may execute, as the
// kernel does on a write by a caller without CAP_FSETID (root keeps them).
// A security.capability xattr needs nothing: the daemon's write to the
// store file makes the kernel drop it there.
func (of *openState) killPriv(ctx context.Context) {
	if !of.priv.Load() {
		return
	}
	if c, ok := fuse.FromContext(ctx); ok && c.Uid == 0 {
		return
	}
	fd := int(of.backing.Fd())
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return
	}
	m := st.Mode & 0o7777
	nm := m &^ unix.S_ISUID
	if m&unix.S_IXGRP != 0 {
		nm &^= unix.S_ISGID
	}
	if nm != m {
		unix.Fchmod(fd, nm)
	}
	of.priv.Store(nm&(unix.S_ISUID|unix.S_ISGID) != 0)
}

// notePriv records whether mode has the bits killPriv clears.
func (of *openState) notePriv(mode uint32) {
	of.priv.Store(mode&(unix.S_ISUID|unix.S_ISGID) != 0)
}

// keys returns the keys of the node's category, or ENOENT once the
// category is no longer served (removed while the kernel still held the
// inode).
func (n *node) keys() (CategoryKeys, syscall.Errno) {
	ck, ok := n.fsys.categoryKeys(n.cat)
	if !ok {
		return CategoryKeys{}, syscall.ENOENT
	}
	return ck, 0
}

// parentNode returns the node's parent directory and its name in it.
func (n *node) parentNode() (string, *node, syscall.Errno) {
	name, parent := n.Parent()
	if parent == nil {
		return "", nil, syscall.ESTALE
	}
	pn, ok := parent.Operations().(*node)
	if !ok {
		return "", nil, syscall.ESTALE
	}
	return name, pn, 0
}

// Store paths are reached through descriptors: the daemon walks the
// store from the category directory one component at a time with openat
// (O_NOFOLLOW, so a symlink swapped into the store is never followed) and
// names an entry as /proc/self/fd/<parent descriptor>/<stored name>.
// Such a path stays short whatever the depth, so every plaintext path
// that is legal (components up to 255 bytes, under PATH_MAX) works,
// though encrypted names are longer than plaintext ones.

// openStoreDir opens directory n in the store (O_PATH) by walking it from
// the category directory; the caller closes the descriptor.
func (n *node) openStoreDir() (int, syscall.Errno) {
	if n.catRoot {
		fd, err := unix.Open(filepath.Join(n.fsys.store, n.cat), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return fd, fs.ToErrno(err)
	}
	name, pn, errno := n.parentNode()
	if errno != 0 {
		return -1, errno
	}
	pfd, errno := pn.openStoreDir()
	if errno != 0 {
		return -1, errno
	}
	defer unix.Close(pfd)
	stored, _, errno := pn.stored(name)
	if errno != 0 {
		return -1, errno
	}
	fd, err := unix.Openat(pfd, stored, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fs.ToErrno(err)
	}
	return fd, 0
}

// fdPath names entry name of the directory open as fd.
func fdPath(fd int, name string) string {
	return procfs.SelfFDPath(fd) + "/" + name
}

func noop() {}

// cipherPath returns a path of the node in the store and a function to
// call when done with it (it closes the parent's descriptor).
func (n *node) cipherPath() (string, func(), syscall.Errno) {
	if n.catRoot {
		return filepath.Join(n.fsys.store, n.cat), noop, 0
	}
	name, pn, errno := n.parentNode()
	if errno != 0 {
		return "", noop, errno
	}
	p, _, done, errno := pn.childPath(name)
	return p, done, errno
}

// dirIV returns the name IV of directory n.
func (n *node) dirIV() ([]byte, syscall.Errno) {
	n.ivMu.Lock()
	defer n.ivMu.Unlock()
	if n.iv != nil {
		return n.iv, 0
	}
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return nil, errno
	}
	defer doneP()
	iv, err := names.ReadDirIV(p)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	n.iv = iv
	return iv, 0
}

// stored returns the store name of child name of directory n and, for a
// long name, the encrypted name for its side file.
func (n *node) stored(name string) (string, string, syscall.Errno) {
	iv, errno := n.dirIV()
	if errno != 0 {
		return "", "", errno
	}
	ck, errno := n.keys()
	if errno != 0 {
		return "", "", errno
	}
	s, long, err := ck.Names.StoredName(iv, name)
	if err != nil {
		return "", "", syscall.ENAMETOOLONG
	}
	return s, long, 0
}

// childPath returns a store path of child name, its long-name side file
// content ("" for short names) and a function to call when done with the
// path.
func (n *node) childPath(name string) (string, string, func(), syscall.Errno) {
	s, long, errno := n.stored(name)
	if errno != 0 {
		return "", "", noop, errno
	}
	fd, errno := n.openStoreDir()
	if errno != 0 {
		return "", "", noop, errno
	}
	return fdPath(fd, s), long, func() { unix.Close(fd) }, 0
}

func removeLongName(p, long string) {
	if long != "" {
		os.Remove(p + names.LongSuffix)
	}
}

// relPath is the node's plaintext path relative to its category.
func (n *node) relPath() string {
	full := n.Path(n.Root())
	_, rest, _ := strings.Cut(full, "/")
	return rest
}

// childRel is the category-relative path of child name of directory n.
func (n *node) childRel(name string) string {
	return strings.TrimPrefix(n.relPath()+"/"+name, "/")
}

// authorizeChange asks whether the caller may change the plaintext
// namespace at rel (unlink, rename, link, symlink): the same rules as
// opening it for writing. Without this a process no rule names could
// swap two tables' files, or move a file out from under a DENY pattern.
func (n *node) authorizeChange(ctx context.Context, rel string) syscall.Errno {
	return n.authorize(ctx, rel, syscall.O_WRONLY)
}

func (n *node) authorize(ctx context.Context, rel string, flags uint32) syscall.Errno {
	caller, ok := fuse.FromContext(ctx)
	if !ok {
		return syscall.EACCES
	}
	return n.fsys.auth.Authorize(ctx, AccessRequest{
		Pid: int(caller.Pid), Uid: caller.Uid, Gid: caller.Gid,
		Category: n.cat, Path: rel, Flags: flags,
	})
}

// chownCaller gives a new store entry the caller's uid and gid: the
// daemon creates everything as root, but mysqld runs as mysql.
func chownCaller(ctx context.Context, p string) {
	if caller, ok := fuse.FromContext(ctx); ok {
		_ = unix.Lchown(p, int(caller.Uid), int(caller.Gid))
	}
}

// fillAttr converts a store stat into the plaintext view.
func (n *node) fillAttr(p string, st *syscall.Stat_t, out *fuse.Attr) {
	out.FromStat(st)
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		size, err := content.PlainSize(st.Size)
		if err != nil && st.Size > content.HeaderSize {
			// The last block has no room for a byte: a torn end, which
			// the first open cuts (checkTail). Report the size after
			// the cut, or the kernel would cache a size of 0 and read
			// nothing of the file until the attributes expire.
			whole := (st.Size - content.HeaderSize) / content.CipherBlockSize
			size = whole * content.BlockSize
		} else if err != nil {
			size = 0 // reads report the damage; listing must still work
		}
		out.Size = uint64(size)
	case syscall.S_IFLNK:
		if t, err := n.readlink(p); err == nil {
			out.Size = uint64(len(t))
		}
	}
}

func (n *node) newChild(ctx context.Context, st *syscall.Stat_t) *fs.Inode {
	child := &node{fsys: n.fsys, cat: n.cat}
	return n.NewInode(ctx, child, fs.StableAttr{Mode: st.Mode & syscall.S_IFMT, Ino: st.Ino})
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p, _, doneP, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	defer doneP()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	n.fillAttr(p, &st, &out.Attr)
	return n.newChild(ctx, &st), 0
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := fh.(*handle); ok {
		return h.Getattr(ctx, out)
	}
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return errno
	}
	defer doneP()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return fs.ToErrno(err)
	}
	n.fillAttr(p, &st, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if h, ok := fh.(*handle); ok {
		return h.Setattr(ctx, in, out)
	}
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return errno
	}
	defer doneP()
	if size, ok := in.GetSize(); ok {
		// truncate(2) by path changes plaintext: the same rule as open
		// for writing.
		if errno := n.authorize(ctx, n.relPath(), syscall.O_WRONLY); errno != 0 {
			return errno
		}
		of, errno := n.acquire()
		if errno != 0 {
			return errno
		}
		of.killPriv(ctx)
		n.rw.Lock()
		err := of.cf.Truncate(int64(size))
		n.rw.Unlock()
		n.release()
		if err != nil {
			return toErrno(err)
		}
	}
	if m, ok := in.GetMode(); ok {
		if err := syscall.Chmod(p, m); err != nil {
			return fs.ToErrno(err)
		}
		n.notePriv(m)
	}
	if errno := setOwner(p, in); errno != 0 {
		return errno
	}
	if errno := setTimes(p, in); errno != 0 {
		return errno
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return fs.ToErrno(err)
	}
	n.fillAttr(p, &st, &out.Attr)
	return 0
}

func setOwner(p string, in *fuse.SetAttrIn) syscall.Errno {
	uid, gid, ok := owner(in)
	if !ok {
		return 0
	}
	return fs.ToErrno(unix.Lchown(p, uid, gid))
}

func setTimes(p string, in *fuse.SetAttrIn) syscall.Errno {
	ts, ok := times(in)
	if !ok {
		return 0
	}
	return fs.ToErrno(unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
}

// owner returns the uid and gid a setattr asks for, -1 for one it leaves
// alone; ok is false when it changes neither.
func owner(in *fuse.SetAttrIn) (uid, gid int, ok bool) {
	u, uok := in.GetUID()
	g, gok := in.GetGID()
	uid, gid = -1, -1
	if uok {
		uid = int(u)
	}
	if gok {
		gid = int(g)
	}
	return uid, gid, uok || gok
}

// times returns the atime and mtime a setattr asks for (UTIME_OMIT for
// one it leaves alone), as utimensat takes them; ok is false when it
// changes neither.
func times(in *fuse.SetAttrIn) ([]unix.Timespec, bool) {
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if !mok && !aok {
		return nil, false
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if aok {
		ts[0] = unix.NsecToTimespec(atime.UnixNano())
	}
	if mok {
		ts[1] = unix.NsecToTimespec(mtime.UnixNano())
	}
	return ts, true
}

// acquire returns the shared open state of regular file n, opening the
// backing file on first use.
func (n *node) acquire() (*openState, syscall.Errno) { return n.acquirePath("") }

// acquirePath is acquire with the store path already known (a node made
// by Create is not in the tree yet, so it cannot compute its path).
func (n *node) acquirePath(p string) (*openState, syscall.Errno) {
	n.fmu.Lock()
	defer n.fmu.Unlock()
	if n.of != nil {
		n.of.refs++
		return n.of, 0
	}
	if p == "" {
		var errno syscall.Errno
		var done func()
		if p, done, errno = n.cipherPath(); errno != 0 {
			return nil, errno
		}
		defer done()
	}
	ck, errno := n.keys()
	if errno != 0 {
		return nil, errno
	}
	b, noatime, err := openBackingNoatime(p)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	if err := n.checkTail(b, ck.Content, p); err != nil {
		b.Close()
		return nil, toErrno(err)
	}
	cf, err := content.Open(b, ck.Content, p)
	if err != nil {
		b.Close()
		return nil, toErrno(err)
	}
	if noatime {
		if err := clearNoatime(b); err != nil {
			b.Close()
			return nil, fs.ToErrno(err)
		}
	}
	mr := &mergeReader{main: b}
	cf.SetMergeReader(mr)
	n.of = &openState{refs: 1, backing: b, merges: mr, cf: cf}
	if fi, err := b.Stat(); err == nil {
		n.of.notePriv(uint32(fi.Mode().Perm()) | suidBits(fi.Mode()))
	}
	return n.of, 0
}

// checkTail cuts a torn end off store file b (content.RepairTail) the
// first time the node is opened, and reports the cut. Called with fmu
// held, before content.Open.
func (n *node) checkTail(b *os.File, key *content.Key, p string) error {
	if n.tailChecked {
		return nil
	}
	r, err := content.RepairTail(b, key, p)
	if err != nil {
		return err
	}
	n.tailChecked = true
	if r != nil {
		n.fsys.onRepair(Repair{Category: n.cat, Path: n.relPath(), TailRepair: *r})
	}
	return nil
}

func (n *node) release() {
	n.fmu.Lock()
	defer n.fmu.Unlock()
	if n.of == nil {
		return
	}
	n.of.refs--
	if n.of.refs == 0 {
		n.of.merges.Close()
		n.of.backing.Close()
		n.of = nil
	}
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.authorize(ctx, n.relPath(), flags); errno != 0 {
		return nil, 0, errno
	}
	return n.openHandle(ctx, "", flags)
}

// openHandle returns a handle on an authorized open.
func (n *node) openHandle(ctx context.Context, p string, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	of, errno := n.acquirePath(p)
	if errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		of.killPriv(ctx)
		n.rw.Lock()
		err := of.cf.Truncate(0)
		n.rw.Unlock()
		if err != nil {
			n.release()
			return nil, 0, toErrno(err)
		}
	}
	n.fsys.opens.Add(1)
	// Keep the kernel's page cache across opens: every change to the
	// plaintext goes through this mount, so cached pages stay true. Each
	// open is still decided by the rules.
	return &handle{n: n, of: of, append: flags&syscall.O_APPEND != 0}, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.authorize(ctx, n.childRel(name), flags|syscall.O_CREAT); errno != 0 {
		return nil, nil, 0, errno
	}
	p, long, doneP, errno := n.childPath(name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer doneP()
	// Always O_EXCL (as gocryptfs): the kernel asks to create only a name
	// its lookup found free; a store file that appeared since is another
	// creator's, and opening it here would hand its content to this one.
	fd, err := syscall.Open(p, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, mode)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	// Owner first, then the exact mode the kernel asked for (it applied
	// the caller's umask already; chown would clear setuid/setgid).
	chownCaller(ctx, p)
	_ = syscall.Fchmod(fd, mode&07777)
	syscall.Close(fd)
	if err := names.WriteLongName(p, long); err != nil {
		// Without its long name the entry could never be listed or
		// removed through the mount: take it back.
		syscall.Unlink(p)
		return nil, nil, 0, fs.ToErrno(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	n.fillAttr(p, &st, &out.Attr)
	ch := n.newChild(ctx, &st)
	cn, ok := ch.Operations().(*node)
	if !ok {
		return nil, nil, 0, syscall.EIO
	}
	fh, fuseFlags, errno := cn.openHandle(ctx, p, flags)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return ch, fh, fuseFlags, 0
}

// Mknod creates a FIFO, a unix domain socket (bind(2) arrives here) or a
// device node. None of them has content to encrypt: the store holds the
// node itself under its encrypted name, as gocryptfs does. Opens of these
// nodes never reach the daemon (the kernel serves FIFOs and sockets
// itself), so rules cannot apply to them; device nodes cannot be opened
// through the mount at all (it is mounted nodev). Creating one changes
// the namespace: the same rule as unlink or symlink (docs/limitations.md).
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	case syscall.S_IFREG, 0:
		// mknod(2) of a regular file: an empty file in the content format.
		mode = syscall.S_IFREG | mode&07777
	default:
		return nil, syscall.EINVAL
	}
	if errno := n.authorizeChange(ctx, n.childRel(name)); errno != 0 {
		return nil, errno
	}
	p, long, doneP, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	defer doneP()
	if err := syscall.Mknod(p, mode, int(dev)); err != nil {
		return nil, fs.ToErrno(err)
	}
	if err := names.WriteLongName(p, long); err != nil {
		syscall.Unlink(p)
		return nil, fs.ToErrno(err)
	}
	return n.newEntry(ctx, p, &mode, out)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p, long, doneP, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	defer doneP()
	if err := syscall.Mkdir(p, mode); err != nil {
		return nil, fs.ToErrno(err)
	}
	iv, err := names.NewDirIV()
	if err == nil {
		err = names.WriteDirIV(p, iv)
	}
	if err == nil {
		err = names.WriteLongName(p, long)
	}
	if err != nil {
		os.RemoveAll(p)
		return nil, fs.ToErrno(err)
	}
	ch, errno := n.newEntry(ctx, p, &mode, out)
	if errno != 0 {
		return nil, errno
	}
	if cn, ok := ch.Operations().(*node); ok {
		cn.ivMu.Lock()
		cn.iv = iv
		cn.ivMu.Unlock()
	}
	return ch, 0
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	p, long, doneP, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	defer doneP()
	d, err := os.Open(p)
	if err != nil {
		return fs.ToErrno(err)
	}
	ents, err := d.Readdirnames(3)
	d.Close()
	if err != nil && len(ents) == 0 {
		return fs.ToErrno(err)
	}
	for _, e := range ents {
		if e != names.DirIVFile {
			return syscall.ENOTEMPTY
		}
	}
	iv, ivErr := names.ReadDirIV(p)
	if err := os.Remove(names.DirIVPath(p)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fs.ToErrno(err)
	}
	if err := syscall.Rmdir(p); err != nil {
		if ivErr == nil {
			_ = names.WriteDirIV(p, iv) // put it back: the directory stays usable
		}
		return fs.ToErrno(err)
	}
	removeLongName(p, long)
	return 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.authorizeChange(ctx, n.childRel(name)); errno != 0 {
		return errno
	}
	p, long, doneP, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	defer doneP()
	if err := syscall.Unlink(p); err != nil {
		return fs.ToErrno(err)
	}
	removeLongName(p, long)
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.cat != n.cat {
		// Another category has other keys: mv copies instead.
		return syscall.EXDEV
	}
	if errno := n.authorizeChange(ctx, n.childRel(name)); errno != 0 {
		return errno
	}
	if errno := np.authorizeChange(ctx, np.childRel(newName)); errno != 0 {
		return errno
	}
	p1, long1, doneP1, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	defer doneP1()
	p2, long2, doneP2, errno := np.childPath(newName)
	if errno != 0 {
		return errno
	}
	defer doneP2()
	if err := names.WriteLongName(p2, long2); err != nil {
		return fs.ToErrno(err)
	}
	err := unix.Renameat2(unix.AT_FDCWD, p1, unix.AT_FDCWD, p2, uint(flags))
	if (err == unix.ENOTEMPTY || err == unix.EEXIST) && flags&(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) == 0 {
		err = renameOverEmptyDir(p1, p2, flags, err)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	if flags&unix.RENAME_EXCHANGE == 0 {
		removeLongName(p1, long1)
	}
	return 0
}

// renameOverEmptyDir retries a rename that failed with errno (ENOTEMPTY
// or EEXIST) because the target p2 is a directory that is empty on the
// mount but holds its IV file in the store: the IV file is removed and the
// rename tried again, which replaces the directory as on a plain
// directory. A target with other entries, or a retry that fails, leaves
// the target as it was (its IV put back) and returns the original error.
// The kernel holds the target's inode lock during a rename, so nothing is
// looked up or created in it meanwhile.
func renameOverEmptyDir(p1, p2 string, flags uint32, errno error) error {
	d, err := os.Open(p2)
	if err != nil {
		return errno
	}
	ents, _ := d.Readdirnames(2)
	d.Close()
	if len(ents) != 1 || ents[0] != names.DirIVFile {
		return errno
	}
	iv, err := names.ReadDirIV(p2)
	if err != nil {
		return errno
	}
	if err := os.Remove(names.DirIVPath(p2)); err != nil {
		return errno
	}
	if err := unix.Renameat2(unix.AT_FDCWD, p1, unix.AT_FDCWD, p2, uint(flags)); err != nil {
		_ = names.WriteDirIV(p2, iv) // put it back: the directory stays usable
		return err
	}
	return nil
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	tn, ok := target.(*node)
	if !ok || tn.cat != n.cat {
		return nil, syscall.EXDEV
	}
	if errno := tn.authorizeChange(ctx, tn.relPath()); errno != 0 {
		return nil, errno
	}
	if errno := n.authorizeChange(ctx, n.childRel(name)); errno != 0 {
		return nil, errno
	}
	tp, doneTp, errno := tn.cipherPath()
	if errno != 0 {
		return nil, errno
	}
	defer doneTp()
	p, long, doneP, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	defer doneP()
	if err := syscall.Link(tp, p); err != nil {
		return nil, fs.ToErrno(err)
	}
	if err := names.WriteLongName(p, long); err != nil {
		return nil, fs.ToErrno(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	n.fillAttr(p, &st, &out.Attr)
	return n.newChild(ctx, &st), 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.authorizeChange(ctx, n.childRel(name)); errno != 0 {
		return nil, errno
	}
	p, long, doneP, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	defer doneP()
	ck, errno := n.keys()
	if errno != 0 {
		return nil, errno
	}
	sealed, err := sealSymlink(ck.Content, target)
	if err != nil {
		return nil, syscall.EIO
	}
	if err := syscall.Symlink(sealed, p); err != nil {
		return nil, fs.ToErrno(err)
	}
	if err := names.WriteLongName(p, long); err != nil {
		return nil, fs.ToErrno(err)
	}
	return n.newEntry(ctx, p, nil, out)
}

// newEntry finishes a new store entry at p: the caller as owner, then the
// exact mode when one is given (chown clears setuid/setgid; a symlink has
// none), and returns its inode with out filled.
func (n *node) newEntry(ctx context.Context, p string, mode *uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	chownCaller(ctx, p)
	if mode != nil {
		_ = syscall.Chmod(p, *mode&07777)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	n.fillAttr(p, &st, &out.Attr)
	return n.newChild(ctx, &st), 0
}

func (n *node) readlink(p string) (string, error) {
	buf := make([]byte, 8192)
	k, err := syscall.Readlink(p, buf)
	if err != nil {
		return "", err
	}
	ck, errno := n.keys()
	if errno != 0 {
		return "", errno
	}
	return openSymlink(ck.Content, string(buf[:k]), p)
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return nil, errno
	}
	defer doneP()
	t, err := n.readlink(p)
	if err != nil {
		return nil, toErrno(err)
	}
	return []byte(t), 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return nil, errno
	}
	defer doneP()
	iv, errno := n.dirIV()
	if errno != 0 {
		return nil, errno
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	ck, errno := n.keys()
	if errno != 0 {
		return nil, errno
	}
	out := make([]fuse.DirEntry, 0, len(ents))
	for _, e := range ents {
		stored := e.Name()
		if names.IsInternal(stored) {
			continue
		}
		name, err := ck.Names.DecryptStored(p, iv, stored)
		if err != nil {
			continue // not ours, or damaged: not shown
		}
		out = append(out, fuse.DirEntry{Name: name, Mode: uint32(e.Type())})
	}
	return fs.NewListDirStream(out), 0
}

// Fsync of a directory (a handle-less fsync reaches the node): sync the
// store directory, so that entries created in it are durable.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if h, ok := fh.(*handle); ok {
		return h.Fsync(ctx, flags)
	}
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return errno
	}
	defer doneP()
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	return fs.ToErrno(syscall.Fsync(fd))
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Statfs(n.fsys.store, &s); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&s)
	return 0
}

// Extended attributes are passed through to the store entry (names and
// values are not encrypted: docs/limitations.md).

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return 0, errno
	}
	defer doneP()
	sz, err := unix.Lgetxattr(p, attr, dest)
	return uint32(sz), fs.ToErrno(err)
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return errno
	}
	defer doneP()
	return fs.ToErrno(unix.Lsetxattr(p, attr, data, int(flags)))
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return errno
	}
	defer doneP()
	return fs.ToErrno(unix.Lremovexattr(p, attr))
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	p, doneP, errno := n.cipherPath()
	if errno != 0 {
		return 0, errno
	}
	defer doneP()
	sz, err := unix.Llistxattr(p, dest)
	return uint32(sz), fs.ToErrno(err)
}

// toErrno maps content errors to EIO and the rest through fs.ToErrno.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if errors.Is(err, content.ErrCorrupt) {
		return syscall.EIO
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return fs.ToErrno(err)
}

// notePriv updates the open state (if any) after a mode change.
func (n *node) notePriv(mode uint32) {
	n.fmu.Lock()
	defer n.fmu.Unlock()
	if n.of != nil {
		n.of.notePriv(mode)
	}
}

func suidBits(m os.FileMode) uint32 {
	var b uint32
	if m&os.ModeSetuid != 0 {
		b |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		b |= unix.S_ISGID
	}
	return b
}
