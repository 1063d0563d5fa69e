// Package tree gives plaintext-path access to one category of a store
// without the mount: the backup module writes its streams, manifests and
// credentials through it, and offline commands read them back on a
// machine where no daemon runs.
//
// Files and names are in exactly the format the FUSE frontend uses, so
// what tree writes is visible on the mount (subject to the access rules)
// and the other way round. It must not print, and it must not keep
// plaintext anywhere but in the caller's buffers.
package tree

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/names"
	"github.com/mysecure/mysecure/encfs/volume"
)

// Tree is one category of a store.
type Tree struct {
	dir   string // STORE/<category>
	cat   string
	names *names.Cipher
	key   *content.Key
}

// New returns the tree of category cat in store with its keys.
func New(store, cat string, nc *names.Cipher, key *content.Key) *Tree {
	return &Tree{dir: filepath.Join(store, cat), cat: cat, names: nc, key: key}
}

// Open derives the category's keys from unlocked volume keys.
func Open(store, cat string, vol *volume.Volume, keys *volume.Keys) (*Tree, error) {
	if !vol.Config.HasCategory(cat) {
		return nil, fmt.Errorf("the volume has no category @%s", cat)
	}
	key, err := keys.ContentKey(cat)
	if err != nil {
		return nil, err
	}
	nc, err := keys.NamesCipher(cat)
	if err != nil {
		return nil, err
	}
	t := New(store, cat, nc, key)
	// As the mount does: the category directory and its name IV exist
	// from the first use on.
	if _, err := names.ReadDirIV(t.dir); err != nil {
		if err := os.MkdirAll(t.dir, 0o700); err != nil {
			return nil, err
		}
		if _, err := names.ReadOrCreateDirIV(t.dir); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Category is the tree's category name (without "@").
func (t *Tree) Category() string { return t.cat }

// Root is the store directory of the category.
func (t *Tree) Root() string { return t.dir }

// Rebase returns a tree with the same keys rooted at a copy of one of its
// directories: dir is a store directory (with its ms.diriv) that was
// copied out, and paths are relative to it. Offline restore of a backup
// from just its files uses it.
func (t *Tree) Rebase(dir string) *Tree {
	return &Tree{dir: dir, cat: t.cat, names: t.names, key: t.key}
}

// Resolve returns the store path of rel (slash separated, relative to the
// category). Every parent must exist.
func (t *Tree) Resolve(rel string) (string, error) {
	p, _, err := t.resolve(rel)
	return p, err
}

// resolve returns the store path and the long-name side content of the
// last component ("" when short).
func (t *Tree) resolve(rel string) (string, string, error) {
	p, long, err := t.names.StorePath(t.dir, rel)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("failed to resolve %s: %w", rel, err)
	}
	return p, long, err
}

// MkdirAll makes rel and its missing parents, each with a name IV.
func (t *Tree) MkdirAll(rel string, perm os.FileMode) error {
	comps, err := names.SplitPath(rel)
	if err != nil {
		return err
	}
	p := t.dir
	if _, err := names.ReadOrCreateDirIV(p); err != nil {
		return err
	}
	for _, c := range comps {
		iv, err := names.ReadDirIV(p)
		if err != nil {
			return err
		}
		s, long, err := t.names.StoredName(iv, c)
		if err != nil {
			return err
		}
		next := filepath.Join(p, s)
		switch err := os.Mkdir(next, perm); {
		case err == nil:
			niv, err := names.NewDirIV()
			if err == nil {
				err = names.WriteDirIV(next, niv)
			}
			if err == nil {
				err = names.WriteLongName(next, long)
			}
			if err != nil {
				os.RemoveAll(next)
				return fmt.Errorf("failed to make %s: %w", rel, err)
			}
			_ = syncDir(p)
		case errors.Is(err, os.ErrExist):
			if _, err := names.ReadDirIV(next); err != nil {
				return fmt.Errorf("%s exists but is not an encrypted directory: %w", c, err)
			}
		default:
			return err
		}
		p = next
	}
	return nil
}

// Entry is one entry of a directory.
type Entry struct {
	Name   string // plaintext name
	Stored string // store path
	IsDir  bool
}

// ReadDir lists rel. Entries whose names do not decrypt are skipped.
func (t *Tree) ReadDir(rel string) ([]Entry, error) {
	p, err := t.Resolve(rel)
	if err != nil {
		return nil, err
	}
	iv, err := names.ReadDirIV(p)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range ents {
		if names.IsInternal(e.Name()) {
			continue
		}
		name, err := t.names.DecryptStored(p, iv, e.Name())
		if err != nil {
			continue
		}
		out = append(out, Entry{Name: name, Stored: filepath.Join(p, e.Name()), IsDir: e.IsDir()})
	}
	return out, nil
}

// Stat returns the store entry of rel and, for a regular file, its
// plaintext size.
func (t *Tree) Stat(rel string) (os.FileInfo, int64, error) {
	p, err := t.Resolve(rel)
	if err != nil {
		return nil, 0, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return fi, 0, nil
	}
	n, err := content.PlainSize(fi.Size())
	if err != nil {
		return fi, 0, &content.CorruptError{File: rel, Block: content.HeaderBlock, Err: err}
	}
	return fi, n, nil
}

// Writer is a new encrypted file being written. Nothing is visible under
// its name until Commit; Abort (or a crash) leaves at most a file the
// caller's own naming marks as partial.
type Writer struct {
	f      *os.File
	cw     *content.Writer
	path   string
	long   string
	n      int64
	done   bool
	parent string
}

// Create makes a new file rel (it must not exist) for sequential writing.
func (t *Tree) Create(rel string, perm os.FileMode) (*Writer, error) {
	return t.CreateTee(rel, perm, nil)
}

// Write encrypts p.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.cw.Write(p)
	w.n += int64(n)
	return n, err
}

// Written is the plaintext byte count so far.
func (w *Writer) Written() int64 { return w.n }

// FileID is the random ID in the file's header.
func (w *Writer) FileID() [content.FileIDSize]byte { return w.cw.Header().FileID }

// StoredSize is the file's size in the store (valid after Commit).
func (w *Writer) StoredSize() int64 { return content.CipherSize(w.n) }

// Commit seals the last block and makes the file durable.
func (w *Writer) Commit() error {
	if w.done {
		return errors.New("file already closed")
	}
	w.done = true
	err := w.cw.Close()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(w.parent)
	}
	if err != nil {
		w.remove()
	}
	return err
}

// Abort removes the file.
func (w *Writer) Abort() {
	if !w.done {
		w.done = true
		w.f.Close()
	}
	w.remove()
}

func (w *Writer) remove() {
	os.Remove(w.path)
	if w.long != "" {
		os.Remove(w.path + names.LongSuffix)
	}
}

// Open returns a reader of rel's plaintext; every block is authenticated
// before its bytes are returned.
func (t *Tree) Open(rel string) (*Reader, error) {
	p, err := t.Resolve(rel)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	r, err := content.NewReader(f, t.key, rel)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Reader{f: f, r: r}, nil
}

// Reader reads a file's plaintext.
type Reader struct {
	f *os.File
	r *content.Reader
}

func (r *Reader) Read(p []byte) (int, error) { return r.r.Read(p) }

// FileID is the random ID in the file's header.
func (r *Reader) FileID() [content.FileIDSize]byte {
	h, _ := r.r.Header()
	return h.FileID
}

// Close closes the store file.
func (r *Reader) Close() error { return r.f.Close() }

// ReadFile reads a whole (small) file.
func (t *Tree) ReadFile(rel string) ([]byte, error) {
	r, err := t.Open(rel)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// WriteFile replaces rel atomically with data: a reader sees the old or
// the new content, never a mix, also after a crash.
func (t *Tree) WriteFile(rel string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(rel)
	tmp := dir + ".tmp-" + base
	_ = t.Remove(tmp)
	w, err := t.Create(tmp, perm)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	if err := w.Commit(); err != nil {
		return err
	}
	if err := t.Rename(tmp, rel); err != nil {
		_ = t.Remove(tmp)
		return err
	}
	return nil
}

// Rename moves old to new (replacing a file, or an empty directory).
func (t *Tree) Rename(oldRel, newRel string) error {
	op, olong, err := t.resolve(oldRel)
	if err != nil {
		return err
	}
	np, nlong, err := t.resolve(newRel)
	if err != nil {
		return err
	}
	if nlong != "" {
		os.Remove(np + names.LongSuffix)
		if err := names.WriteLongName(np, nlong); err != nil {
			return err
		}
	}
	if err := os.Rename(op, np); err != nil {
		return err
	}
	if olong != "" {
		os.Remove(op + names.LongSuffix)
	}
	_ = syncDir(filepath.Dir(np))
	if filepath.Dir(op) != filepath.Dir(np) {
		_ = syncDir(filepath.Dir(op))
	}
	return nil
}

// Remove removes a file or an empty directory.
func (t *Tree) Remove(rel string) error {
	p, long, err := t.resolve(rel)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		os.Remove(names.DirIVPath(p))
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	if long != "" {
		os.Remove(p + names.LongSuffix)
	}
	return nil
}

// RemoveAll removes rel and everything under it; a missing rel is not an
// error.
func (t *Tree) RemoveAll(rel string) error {
	p, long, err := t.resolve(rel)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if p == t.dir {
		return errors.New("refusing to remove a whole category")
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	if long != "" {
		os.Remove(p + names.LongSuffix)
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ContentKey is the category's content key, for writing and reading the
// same file format outside the store (backups in an object store).
func (t *Tree) ContentKey() *content.Key { return t.key }

// CreateTee is Create whose ciphertext (header and blocks, exactly the
// bytes written to the store file) is also written to tee, in order. A
// failing tee fails the write.
func (t *Tree) CreateTee(rel string, perm os.FileMode, tee io.Writer) (*Writer, error) {
	p, long, err := t.resolve(rel)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	if err := names.WriteLongName(p, long); err != nil {
		f.Close()
		os.Remove(p)
		return nil, err
	}
	var dst io.Writer = f
	if tee != nil {
		dst = io.MultiWriter(f, tee)
	}
	cw, err := content.NewWriter(dst, t.key)
	if err != nil {
		f.Close()
		os.Remove(p)
		return nil, err
	}
	return &Writer{f: f, cw: cw, path: p, long: long, parent: filepath.Dir(p)}, nil
}
