package inplace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/humanize"

	"github.com/mysecure/mysecure/internal/procfs"
)

// systemDirs may not be moved themselves (what is below them may): moving
// one would break the machine, and none is what a DBA means.
var systemDirs = []string{
	"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
	"/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
	"/usr", "/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/local", "/usr/sbin", "/usr/share",
	"/var", "/var/lib", "/var/log", "/var/run", "/var/tmp", "/var/spool", "/var/cache",
}

// preflight is what the checks found out, for the job to use.
type preflight struct {
	tree *treeInfo
	// uid and gid own the symlink at PATH.
	uid, gid int
	// missingParents are the parents of the destination to create, top
	// down, and parentModel maps some of them to the directory whose mode
	// and owner they copy.
	missingParents []string
	parentModel    map[string]string
}

// treeInfo summarises a tree to be copied.
type treeInfo struct {
	entries int64 // files, directories and symlinks, the root included
	files   int64 // regular files, each inode once
	bytes   int64 // regular file content, each inode once
	need    int64 // estimate of the space the copy takes
}

func checkPathArg(what, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: no %s given", ErrRefused, what)
	case !filepath.IsAbs(p):
		return fmt.Errorf("%w: %s %q is not an absolute path", ErrRefused, what, p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("%w: %s %q is not a clean path (use %q)", ErrRefused, what, p, filepath.Clean(p))
	case p == "/":
		return fmt.Errorf("%w: %s cannot be /", ErrRefused, what)
	}
	return nil
}

func checkSystemDir(path, rpath string) error {
	for _, p := range []string{path, rpath} {
		if slices.Contains(systemDirs, p) {
			return fmt.Errorf("%w: %s is a system directory; move the directory below it that holds the data", ErrRefused, p)
		}
	}
	return nil
}

// place is a protected directory: the mount or the store.
type place struct {
	name      string
	dir, real string
}

func places(o Options) []place {
	var ps []place
	if o.MountDir != "" {
		ps = append(ps, place{"the encrypted mount", o.MountDir, realDir(o.MountDir)})
	}
	if o.StoreDir != "" {
		ps = append(ps, place{"the ciphertext store", o.StoreDir, realDir(o.StoreDir)})
	}
	return ps
}

// checkPlacement refuses a PATH or destination in the wrong place.
func checkPlacement(path, rpath, dst string, o Options) error {
	rdst := resolveExisting(dst)
	for _, pl := range places(o) {
		for _, d := range []string{pl.dir, pl.real} {
			if within(path, d) || within(rpath, d) {
				return fmt.Errorf("%w: %s is inside %s %s", ErrRefused, path, pl.name, pl.dir)
			}
			if within(d, path) || within(d, rpath) {
				return fmt.Errorf("%w: %s contains %s %s", ErrRefused, path, pl.name, pl.dir)
			}
		}
	}
	if o.StoreDir != "" {
		rstore := realDir(o.StoreDir)
		if within(dst, o.StoreDir) || within(rdst, rstore) {
			return fmt.Errorf("%w: destination %s is inside the ciphertext store %s (it would be written unencrypted)", ErrRefused, dst, o.StoreDir)
		}
	}
	if o.MountDir != "" {
		rmount := realDir(o.MountDir)
		if dst == o.MountDir || dst == rmount || (!within(dst, o.MountDir) && !within(rdst, rmount)) {
			return fmt.Errorf("%w: destination %s is not inside the encrypted mount %s", ErrRefused, dst, o.MountDir)
		}
	}
	for _, a := range [][2]string{{dst, path}, {rdst, rpath}} {
		if within(a[0], a[1]) || within(a[1], a[0]) {
			return fmt.Errorf("%w: destination %s and %s overlap", ErrRefused, dst, path)
		}
	}
	return checkJournalOutside(o.JournalDir, path, dst)
}

// checkJournalOutside refuses a journal directory inside PATH or the
// destination (the job would move its own journal). It runs before the
// journal directory is created.
func checkJournalOutside(journal, path, dst string) error {
	rjournal := resolveExisting(journal)
	for _, p := range []string{path, dst} {
		if !filepath.IsAbs(p) || filepath.Clean(p) == "/" {
			continue // refused later, with a better message
		}
		p = filepath.Clean(p)
		for _, q := range []string{p, resolveExisting(p)} {
			if within(journal, q) || within(rjournal, q) {
				return fmt.Errorf("%w: the journal directory %s is inside %s", ErrRefused, journal, p)
			}
		}
	}
	return nil
}

// resolveExisting resolves the symlinks in the longest existing prefix of
// p and appends the rest.
func resolveExisting(p string) string {
	rest := ""
	for d := p; ; d = filepath.Dir(d) {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			return filepath.Join(r, rest)
		}
		if d == "/" || d == "." {
			return p
		}
		rest = filepath.Join(filepath.Base(d), rest)
	}
}

func checkPending(dir, path string) error {
	j, err := pendingJobFor(dir, path)
	if err != nil {
		return fmt.Errorf("failed to read the journal: %w", err)
	}
	if j != nil {
		return fmt.Errorf("%w: an interrupted %s of %s is pending (job %s); run recovery first", ErrRefused, j.Op, j.Path, j.ID)
	}
	return nil
}

// checkMounts refuses a root that is a mount point or has one below it.
func checkMounts(root, rroot string) error {
	st, err := lstat(root)
	if err != nil {
		return err
	}
	var pst unix.Stat_t
	if err := eintr(func() error { return unix.Stat(filepath.Dir(root), &pst) }); err != nil {
		return fmt.Errorf("failed to stat %s: %w", filepath.Dir(root), err)
	}
	if st.Dev != pst.Dev {
		return fmt.Errorf("%w: %s is a mount point (or another filesystem)", ErrRefused, root)
	}
	mounts, err := procfs.Mounts()
	if err != nil {
		return err
	}
	for _, mp := range mountPoints(mounts) {
		if mp == root || mp == rroot {
			return fmt.Errorf("%w: %s is a mount point", ErrRefused, root)
		}
		if within(mp, root) || within(mp, rroot) {
			return fmt.Errorf("%w: %s contains the mount point %s", ErrRefused, root, mp)
		}
	}
	return nil
}

// checkMounted refuses to work while the encrypted mount is not mounted:
// the destination would then be a plain directory, and the "encrypted" copy
// plaintext on disk. Without a MountDir there is nothing to check.
func checkMounted(mountDir string) error {
	if mountDir == "" {
		return nil
	}
	mounts, err := procfs.Mounts()
	if err != nil {
		return err
	}
	real := realDir(mountDir)
	for _, mp := range mountPoints(mounts) {
		if mp == mountDir || mp == real {
			return nil
		}
	}
	return fmt.Errorf("%w: the encrypted mount %s is not mounted", ErrRefused, mountDir)
}

// mountPoints returns the absolute mount points of a mount table,
// cleaned.
func mountPoints(mounts []procfs.Mount) []string {
	var mps []string
	for _, m := range mounts {
		if filepath.IsAbs(m.Point) {
			mps = append(mps, filepath.Clean(m.Point))
		}
	}
	return mps
}

func kindName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFLNK:
		return "symlink"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

type inoKey struct{ dev, ino uint64 }

// scanTree walks the tree to be copied and refuses what cannot be copied
// faithfully: special files, other filesystems below the root, hard links
// to files outside the tree.
func scanTree(ctx context.Context, root string) (*treeInfo, error) {
	rootSt, err := lstat(root)
	if err != nil {
		return nil, err
	}
	info := &treeInfo{}
	type count struct {
		path         string
		nlink, found uint64
	}
	links := map[inoKey]*count{}
	var visit func(p string, st *unix.Stat_t) error
	visit = func(p string, st *unix.Stat_t) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		info.entries++
		info.need += 4096 // inode, directory entry, file header
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if st.Dev != rootSt.Dev {
				return fmt.Errorf("%w: %s is on another filesystem (a mount point below %s)", ErrRefused, p, root)
			}
			names, err := readDirNames(p)
			if err != nil {
				return fmt.Errorf("failed to read %s: %w", p, err)
			}
			for _, n := range names {
				c := filepath.Join(p, n)
				cst, err := lstat(c)
				if err != nil {
					return err
				}
				if err := visit(c, &cst); err != nil {
					return err
				}
			}
		case unix.S_IFREG:
			if st.Dev != rootSt.Dev {
				return fmt.Errorf("%w: %s is on another filesystem (a mount point below %s)", ErrRefused, p, root)
			}
			if st.Nlink > 1 {
				k := inoKey{st.Dev, st.Ino}
				c := links[k]
				if c != nil {
					c.found++
					return nil
				}
				links[k] = &count{path: p, nlink: st.Nlink, found: 1}
			}
			info.files++
			info.bytes += st.Size
			est := (st.Size + 4095) &^ 4095
			if alloc := st.Blocks * 512; alloc < est {
				est = alloc // sparse: the copy keeps the holes
			}
			info.need += est
		case unix.S_IFLNK:
		default:
			return fmt.Errorf("%w: %s is a %s; special files cannot be moved", ErrRefused, p, kindName(st.Mode))
		}
		return nil
	}
	if err := visit(root, &rootSt); err != nil {
		return nil, err
	}
	for _, c := range links {
		if c.found < c.nlink {
			return nil, fmt.Errorf("%w: %s has %d hard links, %d of them outside %s; a copy would leave those behind in plaintext",
				ErrRefused, c.path, c.nlink, c.nlink-c.found, root)
		}
	}
	info.need += info.need / 64 // encryption overhead: 32 bytes per 4 KiB block, headers
	return info, nil
}

// missingAncestors returns the nearest existing ancestor of p (which must
// be a directory) and the missing directories between it and p, top down.
func missingAncestors(p string) (string, []string, error) {
	var missing []string
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return "", nil, fmt.Errorf("%w: %s is not a directory", ErrRefused, d)
			}
			slices.Reverse(missing)
			return d, missing, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", nil, err
		}
		if d == "/" {
			return "", nil, err
		}
		missing = append(missing, d)
	}
}

func checkSpace(dir string, info *treeInfo) error {
	var s unix.Statfs_t
	if err := eintr(func() error { return unix.Statfs(dir, &s) }); err != nil {
		return fmt.Errorf("failed to statfs %s: %w", dir, err)
	}
	if s.Blocks == 0 {
		return nil // the filesystem does not tell (ramfs, some FUSE servers)
	}
	avail := int64(s.Bavail) * s.Bsize
	if info.need > avail {
		return fmt.Errorf("%w: the copy needs about %s but the filesystem of %s has %s available: %w",
			ErrRefused, humanize.Bytes(info.need), dir, humanize.Bytes(avail), unix.ENOSPC)
	}
	if s.Files > 0 && int64(s.Ffree) < info.entries {
		return fmt.Errorf("%w: the copy needs %d inodes but the filesystem of %s has %d free: %w",
			ErrRefused, info.entries, dir, s.Ffree, unix.ENOSPC)
	}
	return nil
}

// checkNameLen refuses a PATH whose name leaves no room for the suffix of
// the siblings a job makes next to it (PATH.mysecure-old-<id> ...).
func checkNameLen(path string) error {
	if len(filepath.Base(path))+len(linkSuffix)+16 > 255 {
		return fmt.Errorf("%w: the name of %s is too long to add a %q suffix", ErrRefused, path, linkSuffix+"<id>")
	}
	return nil
}

func preflightEncrypt(ctx context.Context, path, dst string, o Options) (*preflight, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to encrypt %s: %w", path, err)
	}
	if err := checkPathArg("PATH", path); err != nil {
		return nil, err
	}
	if err := checkPathArg("destination", dst); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("failed to encrypt %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		t, err := linkTarget(path)
		if err != nil {
			return nil, fmt.Errorf("failed to encrypt %s: %w", path, err)
		}
		if o.MountDir != "" && (within(t, o.MountDir) || within(resolveExisting(t), realDir(o.MountDir))) {
			return nil, fmt.Errorf("%w: %s is a symlink to %s", ErrAlreadyEncrypted, path, t)
		}
		return nil, fmt.Errorf("%w: %s is a symlink (to %s); encrypt what it points to", ErrRefused, path, t)
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		st, _ := lstat(path)
		return nil, fmt.Errorf("%w: %s is a %s; only files and directories can be encrypted", ErrRefused, path, kindName(st.Mode))
	}
	rpath := realPath(path)
	if err := checkSystemDir(path, rpath); err != nil {
		return nil, err
	}
	if err := checkPlacement(path, rpath, dst, o); err != nil {
		return nil, err
	}
	if err := checkMounted(o.MountDir); err != nil {
		return nil, err
	}
	if err := checkPending(o.JournalDir, path); err != nil {
		return nil, err
	}
	if err := checkMounts(path, rpath); err != nil {
		return nil, err
	}
	tree, err := scanTree(ctx, path)
	if err != nil {
		return nil, err
	}
	if ok, err := exists(dst); err != nil {
		return nil, fmt.Errorf("failed to encrypt %s: %w", path, err)
	} else if ok {
		return nil, fmt.Errorf("%w: destination %s already exists", ErrRefused, dst)
	}
	base, missing, err := missingAncestors(dst)
	if err != nil {
		return nil, fmt.Errorf("failed to encrypt %s: destination %s: %w", path, dst, err)
	}
	if err := checkNameLen(path); err != nil {
		return nil, err
	}
	if err := checkSpace(base, tree); err != nil {
		return nil, err
	}
	if !o.Force {
		if err := checkInUse([]string{path, rpath}); err != nil {
			return nil, err
		}
	}
	st, err := lstat(path)
	if err != nil {
		return nil, err
	}
	pf := &preflight{tree: tree, uid: int(st.Uid), gid: int(st.Gid), missingParents: missing, parentModel: map[string]string{}}
	// dst is <mount>/<category><PATH>: its parents below the category
	// mirror PATH's parents.
	if strings.HasSuffix(dst, path) && len(dst) > len(path) {
		catRoot := dst[:len(dst)-len(path)]
		for _, m := range missing {
			if within(m, catRoot) && m != catRoot {
				pf.parentModel[m] = m[len(catRoot):]
			}
		}
	}
	return pf, nil
}

func preflightDecrypt(ctx context.Context, path, dst string, o Options) (*preflight, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to decrypt %s: %w", path, err)
	}
	if err := checkPathArg("PATH", path); err != nil {
		return nil, err
	}
	if err := checkPathArg("destination", dst); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNotEncrypted, path)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to decrypt %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return nil, fmt.Errorf("%w: %s is not a symlink", ErrNotEncrypted, path)
	}
	t, err := linkTarget(path)
	if err != nil {
		return nil, fmt.Errorf("failed to decrypt %s: %w", path, err)
	}
	if t != dst {
		return nil, fmt.Errorf("%w: %s points to %s, not to %s", ErrNotEncrypted, path, t, dst)
	}
	rpath := realPath(path)
	if err := checkSystemDir(path, rpath); err != nil {
		return nil, err
	}
	if err := checkPlacement(path, rpath, dst, o); err != nil {
		return nil, err
	}
	if err := checkMounted(o.MountDir); err != nil {
		return nil, err
	}
	dfi, err := os.Lstat(dst)
	if err != nil {
		return nil, fmt.Errorf("failed to decrypt %s: its encrypted copy is missing (is the volume mounted?): %w", path, err)
	}
	if !dfi.IsDir() && !dfi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a file or directory", ErrRefused, dst)
	}
	if err := checkPending(o.JournalDir, path); err != nil {
		return nil, err
	}
	rdst := realPath(dst)
	if err := checkMounts(dst, rdst); err != nil {
		return nil, err
	}
	tree, err := scanTree(ctx, dst)
	if err != nil {
		return nil, err
	}
	if err := checkNameLen(path); err != nil {
		return nil, err
	}
	if err := checkSpace(filepath.Dir(path), tree); err != nil {
		return nil, err
	}
	if !o.Force {
		if err := checkInUse([]string{dst, rdst, path, rpath}); err != nil {
			return nil, err
		}
	}
	st, err := lstat(path)
	if err != nil {
		return nil, err
	}
	return &preflight{tree: tree, uid: int(st.Uid), gid: int(st.Gid)}, nil
}
