// Package fusefs is the FUSE frontend of a mysecure volume: it serves the
// plaintext view of the store through go-fuse v2, encrypting names and
// contents on the way down. It asks an Authorizer whether the calling
// process may see or change plaintext: in Open and Create (an exec
// arrives as an open with FMODE_EXEC), and, as for an open for writing,
// before a truncate through Setattr and before every change of the
// namespace (unlink, rename, link, symlink, mknod). An open's decision is
// bound to the file handle; reads and writes are never checked again.
//
// The mount root lists one directory per category. Below it, every
// directory of the store holds an ms.diriv with its name IV; file names
// and symlink targets are encrypted, file contents are in the
// encfs/content format.
//
// It must not decide policy itself (the Authorizer does), must not print,
// and must not hold the master key: it receives per-category keys only.
package fusefs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/names"
	"github.com/mysecure/mysecure/internal/noatime"
)

// AccessRequest describes an open of plaintext (or a change of the
// namespace, asked as an open for writing) for the Authorizer.
type AccessRequest struct {
	Pid      int
	Uid, Gid uint32
	Category string // without '@'
	Path     string // relative to the category, no leading slash
	Flags    uint32 // open(2) flags, including FMODE_EXEC (0x20) for exec
}

// Authorizer decides whether a process may open plaintext. It returns 0 to
// allow, or the errno to return (normally EACCES). It is called from FUSE
// request goroutines and must be safe for concurrent use.
type Authorizer interface {
	Authorize(ctx context.Context, req AccessRequest) syscall.Errno
}

// CategoryKeys are the keys of one category.
type CategoryKeys struct {
	Content *content.Key
	Names   *names.Cipher
}

// Options configure a FS.
type Options struct {
	// Store is the store directory; category directories live below it.
	Store string
	// Keys maps category names to their keys.
	Keys map[string]CategoryKeys
	// Auth decides opens. Required.
	Auth Authorizer
	// OnRepair, if set, is told of every torn file end the mount cut
	// (see Repair). Called with the file's lock held: it must not touch
	// the mount.
	OnRepair func(Repair)
}

// Repair reports a file whose torn end the mount cut when the file was
// first opened (content.RepairTail): the daemon was killed in the middle
// of a write that extended it.
type Repair struct {
	Category string
	Path     string // relative to the category
	content.TailRepair
}

// FS is a mounted (or mountable) plaintext view of a store.
type FS struct {
	store string
	// keys maps category names to their keys. Every operation reads it;
	// AddCategory and HideCategory replace the whole map (copy on
	// write, under keysMu), never change one in place.
	keys   atomic.Pointer[map[string]CategoryKeys]
	keysMu sync.Mutex
	auth   Authorizer
	root   *rootNode
	// onRepair is Options.OnRepair, never nil.
	onRepair func(Repair)

	// Counters for status.
	opens atomic.Uint64

	mountDev atomic.Uint64 // st_dev of the mount, once mounted

	hashMu sync.Mutex
	hashes map[hashKey]string // plaintext SHA-256 of executables on the mount
}

// hashKey names one version of a store file.
type hashKey struct {
	ino, size    uint64
	mtime, ctime int64
}

// New checks the store and creates missing category directories (each
// with its own name IV).
func New(o Options) (*FS, error) {
	if o.Auth == nil {
		return nil, errors.New("fusefs: no authorizer")
	}
	f := &FS{store: o.Store, auth: o.Auth, onRepair: o.OnRepair}
	if f.onRepair == nil {
		f.onRepair = func(Repair) {}
	}
	keys := make(map[string]CategoryKeys, len(o.Keys))
	for cat, ck := range o.Keys {
		if err := f.makeCategoryDir(cat); err != nil {
			return nil, err
		}
		keys[cat] = ck
	}
	f.keys.Store(&keys)
	f.root = &rootNode{fsys: f}
	return f, nil
}

// makeCategoryDir creates the store directory of category cat and its
// name IV when missing.
func (f *FS) makeCategoryDir(cat string) error {
	dir := filepath.Join(f.store, cat)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("failed to create category dir: %w", err)
	}
	if _, err := names.ReadOrCreateDirIV(dir); err != nil {
		return err
	}
	return nil
}

// categoryKeys returns the keys of category cat; ok is false for a
// category the mount does not serve (never had, or hidden).
func (f *FS) categoryKeys(cat string) (CategoryKeys, bool) {
	ck, ok := (*f.keys.Load())[cat]
	return ck, ok
}

// Categories returns the categories the mount serves, sorted.
func (f *FS) Categories() []string {
	m := *f.keys.Load()
	cats := make([]string, 0, len(m))
	for c := range m {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	return cats
}

// AddCategory makes the mount serve category cat with keys ck at once:
// its store directory and name IV are created as New does, then the
// category appears in the root listing. Adding a category the mount
// serves already is an error.
func (f *FS) AddCategory(cat string, ck CategoryKeys) error {
	if ck.Content == nil || ck.Names == nil {
		return fmt.Errorf("fusefs: incomplete keys for category %q", cat)
	}
	f.keysMu.Lock()
	defer f.keysMu.Unlock()
	old := *f.keys.Load()
	if _, ok := old[cat]; ok {
		return fmt.Errorf("fusefs: category %q is served already", cat)
	}
	if err := f.makeCategoryDir(cat); err != nil {
		return err
	}
	m := make(map[string]CategoryKeys, len(old)+1)
	for c, k := range old {
		m[c] = k
	}
	m[cat] = ck
	f.keys.Store(&m)
	f.invalidateRootEntry(cat)
	return nil
}

// HideCategory stops serving category cat: the root no longer lists or
// finds it, and operations on inodes of it the kernel still holds fail
// with ENOENT from then on. restore undoes it (when the removal it
// prepares is refused). Hiding a category the mount does not serve is an
// error.
func (f *FS) HideCategory(cat string) (restore func(), err error) {
	f.keysMu.Lock()
	defer f.keysMu.Unlock()
	old := *f.keys.Load()
	ck, ok := old[cat]
	if !ok {
		return nil, fmt.Errorf("fusefs: category %q is not served", cat)
	}
	m := make(map[string]CategoryKeys, len(old))
	for c, k := range old {
		if c != cat {
			m[c] = k
		}
	}
	f.keys.Store(&m)
	f.invalidateRootEntry(cat)
	return func() {
		f.keysMu.Lock()
		defer f.keysMu.Unlock()
		cur := *f.keys.Load()
		m := make(map[string]CategoryKeys, len(cur)+1)
		for c, k := range cur {
			m[c] = k
		}
		m[cat] = ck
		f.keys.Store(&m)
		f.invalidateRootEntry(cat)
	}, nil
}

// invalidateRootEntry drops what the kernel and go-fuse cache of the root
// entry cat, so the next lookup asks us. Only while mounted (go-fuse has
// no server to notify before).
func (f *FS) invalidateRootEntry(cat string) {
	if f.mountDev.Load() == 0 {
		return
	}
	f.root.RmChild(cat)
	_ = f.root.NotifyEntry(cat)
}

// Opens is the number of successful opens of plaintext since start.
func (f *FS) Opens() uint64 { return f.opens.Load() }

// MountOptions returns the go-fuse options of a mysecure mount.
func MountOptions(store string) *fs.Options {
	entry := time.Second
	attr := time.Second
	return &fs.Options{
		MountOptions: fuse.MountOptions{
			// Other users' processes (mysqld runs as mysql) must reach
			// the mount at all; the ACL decides who sees plaintext.
			AllowOther: true,
			// The kernel checks modes and owners as on a plain
			// filesystem; mysecure's process rules come on top.
			// "suid": an encrypted mysqld in @protected keeps its
			// mode bits meaningful; exec is allowed (no noexec).
			// "nodev": device nodes on the mount cannot be opened (an
			// open of one never reaches the daemon, so no rule could
			// govern it); go-fuse sets it by default, said here on
			// purpose (docs/limitations.md).
			Options: []string{"default_permissions", "suid", "nodev"},
			// Fewer, larger write requests: whole blocks sealed at
			// once and less per-request overhead.
			MaxWrite: 1 << 20,
			// Mount with mount(2) directly (the daemon runs as root);
			// no dependency on the fusermount3 helper for mounting.
			DirectMount: true,
			FsName:      "mysecure:" + store,
			Name:        "mysecure",
			// go-fuse's own log lines (e.g. a splice falling back to a
			// copy for 1 MiB reads) are not errors; keep them out of the
			// daemon's log.
			Logger: log.New(io.Discard, "", 0),
			// HANDLE_KILLPRIV_V2: the daemon clears setuid/setgid on
			// writes and truncates itself (openState.killPriv), so the
			// kernel stops sending a GETXATTR(security.capability)
			// before every write: one FUSE round trip less per write
			// (+6 % sysbench tps, docs/performance-mount.md).
			ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2,
		},
		// Short caches: rule changes do not depend on them (opens
		// always reach us), but metadata of encrypt-in-place moves
		// should show up quickly.
		EntryTimeout: &entry,
		AttrTimeout:  &attr,
		// Report modes as stored: without this go-fuse shows a file
		// created with mode 0 as 0644 (and a directory as 0755), which
		// the kernel then enforces. The daemon reaches its own store
		// entries as root whatever their mode.
		NullPermissions: true,
	}
}

// Mount mounts f at dir and returns the server; call Wait or Unmount on it.
func (f *FS) Mount(dir string) (*fuse.Server, error) {
	srv, err := fs.Mount(dir, f.root, MountOptions(f.store))
	if err != nil {
		return nil, err
	}
	spareProcs() // after the mount: go-fuse has sized its reader pool (sched.go)
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		srv.Unmount()
		return nil, fmt.Errorf("failed to stat the new mount: %w", err)
	}
	f.mountDev.Store(uint64(st.Dev))
	setReadAhead(uint64(st.Dev), readAheadKiB)
	return srv, nil
}

// readAheadKiB is the kernel read-ahead of the mount. FUSE connections
// start at 128 KiB; sequential reads then arrive as 128 KiB requests, and
// the per-request cost (a round trip to the daemon, one batch of blocks)
// bounds throughput. 1 MiB matches MaxWrite (max_read): measured on a
// 2-core VM, a cold 512 MiB dd read went from 290-710 MB/s to 950 MB/s.
const readAheadKiB = 1024

// setReadAhead sets the read-ahead of the mount's backing device info
// (best effort: without sysfs the kernel default stays).
func setReadAhead(dev uint64, kib int) {
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(dev), unix.Minor(dev))
	_ = os.WriteFile(p, []byte(strconv.Itoa(kib)), 0o644)
}

// CipherPath returns the store path of rel (slash separated, relative to
// the category) by reading name IVs from the store directly. Used to hash
// executables that live on the mount without going through the kernel.
func (f *FS) CipherPath(cat, rel string) (string, error) {
	ck, ok := f.categoryKeys(cat)
	if !ok {
		return "", fmt.Errorf("unknown category %q", cat)
	}
	p, _, err := ck.Names.StorePath(filepath.Join(f.store, cat), rel)
	return p, err
}

// HashPlain returns the SHA-256 (hex) of the plaintext of a file given by
// its path on the mount mounted at mountDir. ok is false for paths not on
// the mount.
//
// st, when not nil, is the stat of the file the caller actually found at
// path (through /proc/PID/exe): it must be this mount's file, on the
// mount's device with the store file's inode number. A process in another
// mount namespace can put any file at the same path; it is refused, not
// hashed by name. Sums are cached per store file version.
func (f *FS) HashPlain(mountDir, path string, st *unix.Stat_t) (sum string, ok bool, err error) {
	rel, found := strings.CutPrefix(path, strings.TrimSuffix(mountDir, "/")+"/")
	if !found {
		return "", false, nil
	}
	cat, rest, _ := strings.Cut(rel, "/")
	cp, err := f.CipherPath(cat, rest)
	if err != nil {
		return "", true, err
	}
	// The daemon's own read (an access decision), not a user's: no atime.
	b, err := noatime.Open(cp, os.O_RDONLY)
	if err != nil {
		return "", true, err
	}
	defer b.Close()
	var cst unix.Stat_t
	if err := unix.Fstat(int(b.Fd()), &cst); err != nil {
		return "", true, err
	}
	if st != nil {
		if dev := f.mountDev.Load(); dev == 0 || st.Dev != dev || st.Ino != cst.Ino {
			return "", true, fmt.Errorf("%s is not the file on the mysecure mount (a file from another mount namespace?)", path)
		}
	}
	key := hashKey{ino: cst.Ino, size: uint64(cst.Size), mtime: cst.Mtim.Nano(), ctime: cst.Ctim.Nano()}
	f.hashMu.Lock()
	if sum, hit := f.hashes[key]; hit {
		f.hashMu.Unlock()
		return sum, true, nil
	}
	f.hashMu.Unlock()
	ck, ok := f.categoryKeys(cat)
	if !ok {
		return "", true, fmt.Errorf("unknown category %q", cat)
	}
	cf, err := content.Open(b, ck.Content, cp)
	if err != nil {
		return "", true, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(readerAt{cf}, 0, 1<<62)); err != nil {
		return "", true, err
	}
	sum = hex.EncodeToString(h.Sum(nil))
	// A file changed within the last two seconds may change again within
	// the ctime granularity: do not cache it.
	if time.Since(time.Unix(0, key.ctime)) > 2*time.Second {
		f.hashMu.Lock()
		if f.hashes == nil || len(f.hashes) > 4096 {
			f.hashes = map[hashKey]string{}
		}
		f.hashes[key] = sum
		f.hashMu.Unlock()
	}
	return sum, true, nil
}

// readerAt adapts a content.File to io.ReaderAt for SectionReader.
type readerAt struct{ f *content.File }

func (r readerAt) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }

// sealSymlink encrypts a symlink target: the content format of the target
// bytes, base64url. Targets up to about 3000 bytes fit PATH_MAX.
func sealSymlink(key *content.Key, target string) (string, error) {
	var buf bytes.Buffer
	w, err := content.NewWriter(&buf, key)
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(target)); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return b64.EncodeToString(buf.Bytes()), nil
}

func openSymlink(key *content.Key, stored, name string) (string, error) {
	raw, err := b64.DecodeString(stored)
	if err != nil {
		return "", fmt.Errorf("%s: symlink target is not base64url", name)
	}
	r, err := content.NewReader(bytes.NewReader(raw), key, name)
	if err != nil {
		return "", err
	}
	t, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	return string(t), nil
}
