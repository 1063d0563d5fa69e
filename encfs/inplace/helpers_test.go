package inplace

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/internal/testenv"
)

// requireRoot skips a test that needs root (chown to other users, mount),
// or fails it under MYSECURE_TEST_STRICT=1 (CI).
func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t) // chown to uid 999, tmpfs mounts, trusted.* xattrs
}

// entry is what a snapshot records of one file, directory or symlink.
type entry struct {
	Type      string
	Mode      uint32 // permission bits with setuid/setgid/sticky
	UID, GID  uint32
	Size      int64 // regular files
	SHA256    string
	Target    string // symlinks
	Mtime     int64  // ns
	Atime     int64  // ns; not for symlinks (readlink updates it)
	Xattrs    map[string]string
	LinkGroup string // for hard links: the first path (sorted) of the inode
}

// snapshot maps paths relative to the root ("." for the root) to entries.
type snapshot map[string]entry

func tsNano(ts unix.Timespec) int64 { return ts.Sec*1e9 + ts.Nsec }

// takeSnapshot records a tree (or a single file) without changing its
// atimes.
func takeSnapshot(t *testing.T, root string) snapshot {
	t.Helper()
	snap := snapshot{}
	type ino struct{ dev, ino uint64 }
	groups := map[ino][]string{}
	var walk func(rel string)
	walk = func(rel string) {
		p := filepath.Join(root, rel)
		st, err := lstat(p)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		e := entry{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: tsNano(st.Mtim), Atime: tsNano(st.Atim)}
		names, err := listXattrs(p)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		for _, n := range names {
			if e.Xattrs == nil {
				e.Xattrs = map[string]string{}
			}
			v, err := getXattr(p, n)
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			e.Xattrs[n] = string(v)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			e.Type = "dir"
			ns, err := readDirNames(p)
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			for _, n := range ns {
				walk(filepath.Join(rel, n))
			}
		case unix.S_IFREG:
			e.Type = "file"
			e.Size = st.Size
			f, err := openNoatime(p, false)
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			e.SHA256 = hex.EncodeToString(h.Sum(nil))
			if st.Nlink > 1 {
				k := ino{st.Dev, st.Ino}
				groups[k] = append(groups[k], rel)
			}
		case unix.S_IFLNK:
			e.Type = "symlink"
			e.Atime = 0
			if e.Target, err = os.Readlink(p); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		default:
			e.Type = kindName(st.Mode)
		}
		snap[rel] = e
	}
	walk(".")
	for _, paths := range groups {
		slices.Sort(paths)
		for _, p := range paths {
			e := snap[p]
			e.LinkGroup = paths[0]
			snap[p] = e
		}
	}
	return snap
}

// compareSnapshots reports every path and field that differs.
func compareSnapshots(t *testing.T, what string, want, got snapshot) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	bad := 0
	for _, k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			t.Errorf("%s: %s is missing", what, k)
			bad++
		case !wok:
			t.Errorf("%s: %s is unexpected", what, k)
			bad++
		case !reflect.DeepEqual(w, g):
			wv, gv := reflect.ValueOf(w), reflect.ValueOf(g)
			for i := range wv.NumField() {
				if !reflect.DeepEqual(wv.Field(i).Interface(), gv.Field(i).Interface()) {
					t.Errorf("%s: %s: %s = %v, want %v", what, k, wv.Type().Field(i).Name, gv.Field(i).Interface(), wv.Field(i).Interface())
				}
			}
			bad++
		}
		if bad > 20 {
			t.Fatalf("%s: too many differences", what)
		}
	}
}

// env is one test's world: the data, a stand-in for the mount (a plain
// directory), the store and the journal.
type env struct {
	base    string
	path    string // PATH: base/data/src
	mount   string // MountDir
	catRoot string // mount/mysqlbackup (a category)
	store   string
	dst     string // catRoot + path
	o       Options
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{
		base:  base,
		path:  filepath.Join(base, "data", "src"),
		mount: filepath.Join(base, "mnt"),
		store: filepath.Join(base, "store"),
	}
	e.catRoot = filepath.Join(e.mount, "mysqlbackup")
	e.dst = e.catRoot + e.path
	for _, d := range []string{filepath.Dir(e.path), e.store} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The data directory's parent gets an unusual mode, which the
	// destination's parents must copy.
	if err := os.Chmod(filepath.Dir(e.path), 0o711); err != nil {
		t.Fatal(err)
	}
	// A tmpfs stands in for the FUSE mount: MountDir must be mounted.
	mountFS(t, "tmpfs", e.mount, "size=64m")
	mkdirAll(t, e.catRoot)
	e.o = Options{
		JournalDir: filepath.Join(base, "journal"),
		MountDir:   e.mount,
		StoreDir:   e.store,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return e
}

func mkdirAll(t *testing.T, d string) {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // no umask
		t.Fatal(err)
	}
}

func setXattr(t *testing.T, p, name, value string) {
	t.Helper()
	if err := unix.Lsetxattr(p, name, []byte(value), 0); err != nil {
		t.Fatalf("setxattr %s on %s: %v", name, p, err)
	}
}

func lchown(t *testing.T, p string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, p string, mode uint32) {
	t.Helper()
	if err := unix.Chmod(p, mode); err != nil {
		t.Fatalf("chmod %s: %v", p, err)
	}
}

// pastTime is a fixed time in the past, with nanoseconds, distinct per i.
func pastTime(i int) unix.Timespec {
	return unix.NsecToTimespec(time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC).UnixNano() + int64(i)*(1e9+7))
}

// setTimes gives every entry of the tree its own past atime and mtime,
// files before their directories, deepest directories first.
func setTimes(t *testing.T, root string) {
	t.Helper()
	var paths []string
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Longest (deepest) first: children before parents.
	slices.SortStableFunc(paths, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for i, p := range paths {
		ts := []unix.Timespec{pastTime(2 * i), pastTime(2*i + 1)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("utimensat %s: %v", p, err)
		}
	}
}

// buildTree makes the test tree at root:
//
//	.            dir 0750 999:999, user.root xattr
//	a/           dir, user.dirattr xattr
//	a/b/zero     0 bytes
//	a/b/one      1 byte
//	a/b/big      100000 bytes
//	a/hl2        hard link to hl1
//	hl1          "linked"
//	suid         04750 999:999
//	rel          -> a/b/one (relative symlink)
//	empty/       empty dir 02775 999:999
//	x            user.* (binary values) and trusted.* xattrs
//	sparse       1 MiB with 4 KiB of data in the middle
func buildTree(t *testing.T, root string) {
	t.Helper()
	mkdirAll(t, filepath.Join(root, "a", "b"))
	mkdirAll(t, filepath.Join(root, "empty"))
	writeFile(t, filepath.Join(root, "a", "b", "zero"), nil, 0o644)
	writeFile(t, filepath.Join(root, "a", "b", "one"), []byte("1"), 0o600)
	big := make([]byte, 100000)
	for i := range big {
		big[i] = byte(i*7 + i/251)
	}
	writeFile(t, filepath.Join(root, "a", "b", "big"), big, 0o640)
	writeFile(t, filepath.Join(root, "hl1"), []byte("linked"), 0o644)
	if err := os.Link(filepath.Join(root, "hl1"), filepath.Join(root, "a", "hl2")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "suid"), []byte("#!/bin/sh\n"), 0o750)
	lchown(t, filepath.Join(root, "suid"), 999, 999)
	chmod(t, filepath.Join(root, "suid"), 0o4750)
	if err := os.Symlink("a/b/one", filepath.Join(root, "rel")); err != nil {
		t.Fatal(err)
	}
	lchown(t, filepath.Join(root, "rel"), 999, 999)
	lchown(t, filepath.Join(root, "empty"), 999, 999)
	chmod(t, filepath.Join(root, "empty"), 0o2775)
	writeFile(t, filepath.Join(root, "x"), []byte("xattrs"), 0o644)
	setXattr(t, filepath.Join(root, "x"), "user.one", "1")
	setXattr(t, filepath.Join(root, "x"), "user.bin", "a\x00b\xff")
	setXattr(t, filepath.Join(root, "x"), "trusted.mysecure-test", "t")
	setXattr(t, filepath.Join(root, "a"), "user.dirattr", "hello")
	sp, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sp.WriteAt(bytes.Repeat([]byte{0xAB}, 4096), 512<<10)
	if err == nil {
		err = sp.Truncate(1 << 20)
	}
	if cerr := sp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	setXattr(t, root, "user.root", "r")
	lchown(t, root, 999, 999)
	chmod(t, root, 0o750)
	setTimes(t, root)
}

// buildFile makes a single file at p: 04750 999:999, an xattr, past times.
func buildFile(t *testing.T, p string) {
	t.Helper()
	writeFile(t, p, []byte("[client]\npassword=secret\n"), 0o600)
	lchown(t, p, 999, 999)
	chmod(t, p, 0o4750)
	setXattr(t, p, "user.kind", "cnf")
	setTimes(t, p)
}

// assertEncrypted checks that PATH is a symlink to dst, owned like the
// original root, and that dst holds the original tree.
func assertEncrypted(t *testing.T, e *env, orig snapshot) {
	t.Helper()
	tgt, err := os.Readlink(e.path)
	if err != nil {
		t.Fatalf("%s is not a symlink: %v", e.path, err)
	}
	if tgt != e.dst {
		t.Fatalf("%s -> %s, want -> %s", e.path, tgt, e.dst)
	}
	st, err := lstat(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid != orig["."].UID || st.Gid != orig["."].GID {
		t.Errorf("symlink owned by %d:%d, want %d:%d", st.Uid, st.Gid, orig["."].UID, orig["."].GID)
	}
	compareSnapshots(t, "encrypted copy", orig, takeSnapshot(t, e.dst))
	assertNoLeftovers(t, e)
}

// assertPlain checks that PATH is the original tree again and that the
// destination and the parents Encrypt made are gone.
func assertPlain(t *testing.T, e *env, orig snapshot) {
	t.Helper()
	fi, err := os.Lstat(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		t.Fatalf("%s is still a symlink", e.path)
	}
	compareSnapshots(t, "plaintext tree", orig, takeSnapshot(t, e.path))
	if _, err := os.Lstat(e.dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination %s still exists (err %v)", e.dst, err)
	}
	if ents, err := os.ReadDir(e.catRoot); err != nil || len(ents) != 0 {
		t.Errorf("category dir %s not empty: %v %v", e.catRoot, names(ents), err)
	}
	assertNoLeftovers(t, e)
}

// assertNoLeftovers checks that no journal and no sibling of PATH remain.
func assertNoLeftovers(t *testing.T, e *env) {
	t.Helper()
	if ents, err := os.ReadDir(e.o.JournalDir); err == nil && len(ents) != 0 {
		t.Errorf("journal dir not empty: %v", names(ents))
	}
	ents, err := os.ReadDir(filepath.Dir(e.path))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), filepath.Base(e.path)+".mysecure-") {
			t.Errorf("leftover sibling %s", d.Name())
		}
	}
}

func names(ents []os.DirEntry) []string {
	var s []string
	for _, e := range ents {
		s = append(s, e.Name())
	}
	return s
}

// mountFS mounts a filesystem of the given type on dir for the test.
func mountFS(t *testing.T, fstype, dir, data string) {
	t.Helper()
	mkdirAll(t, dir)
	if err := unix.Mount(fstype, dir, fstype, 0, data); err != nil {
		t.Fatalf("mount -t %s %s: %v", fstype, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", dir, err)
		}
	})
}

func mustErrorIs(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}
