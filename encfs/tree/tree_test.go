package tree

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/fusefs"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/testenv"
)

var cheap = volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}

func newVolume(t *testing.T) (string, *volume.Volume, *volume.Keys) {
	t.Helper()
	store := t.TempDir()
	vol, keys, err := volume.Create(store, volume.CreateOptions{},
		volume.NewPassphrase{Passphrase: volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")}, KDF: cheap})
	if err != nil {
		t.Fatal(err)
	}
	return store, vol, keys
}

func newTree(t *testing.T) (*Tree, string, *volume.Volume, *volume.Keys) {
	t.Helper()
	store, vol, keys := newVolume(t)
	tr, err := Open(store, "mysqlbackup", vol, keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(tr.Root(), 0o700); err != nil {
		t.Fatal(err)
	}
	return tr, store, vol, keys
}

func TestRoundTrip(t *testing.T) {
	tr, store, _, _ := newTree(t)
	long := strings.Repeat("n", 240)
	for _, dir := range []string{"a/b/c", "a/" + long} {
		if err := tr.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := tr.MkdirAll(dir, 0o700); err != nil {
			t.Fatalf("MkdirAll of an existing dir: %v", err)
		}
	}
	data := make([]byte, 3*1024*1024+17)
	rand.Read(data)
	w, err := tr.Create("a/b/c/data", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		n := min(len(p), 70000)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	fi, size, err := tr.Stat("a/b/c/data")
	if err != nil || size != int64(len(data)) || fi.Size() != w.StoredSize() {
		t.Fatalf("Stat: %v size %d stored %d want %d / %d", err, size, fi.Size(), len(data), w.StoredSize())
	}
	r, err := tr.Open("a/b/c/data")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
	}
	if r.FileID() != w.FileID() {
		t.Fatal("file ID differs between writer and reader")
	}
	// Names are encrypted: no plaintext name in the store.
	filepath.Walk(store, func(p string, _ os.FileInfo, _ error) error {
		rel, _ := filepath.Rel(store, p)
		for _, c := range strings.Split(rel, "/") {
			if c == "a" || c == "b" || c == "c" || c == "data" || c == long {
				t.Errorf("plaintext name in store: %s", p)
			}
		}
		return nil
	})
	// Long-named file, listing, rename, atomic replace.
	if err := tr.WriteFile("a/"+long+"/"+long, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tr.WriteFile("a/"+long+"/"+long, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := tr.ReadFile("a/" + long + "/" + long); err != nil || string(b) != "second" {
		t.Fatalf("ReadFile: %q %v", b, err)
	}
	ents, err := tr.ReadDir("a")
	if err != nil || len(ents) != 2 {
		t.Fatalf("ReadDir: %v %+v", err, ents)
	}
	if err := tr.Rename("a/b", "a/renamed"); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.ReadFile("a/renamed/c/data"); err != nil {
		t.Fatalf("after rename: %v", err)
	}
	if _, err := tr.Open("a/b/c/data"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old name after rename: %v", err)
	}
	if err := tr.RemoveAll("a/" + long); err != nil {
		t.Fatal(err)
	}
	ents, _ = tr.ReadDir("a")
	if len(ents) != 1 || ents[0].Name != "renamed" {
		t.Fatalf("after RemoveAll: %+v", ents)
	}
	matches, _ := filepath.Glob(filepath.Join(tr.Root(), "*", "ms.long.*"))
	if len(matches) != 0 {
		t.Fatalf("long-name leftovers: %v", matches)
	}
	if err := tr.RemoveAll(""); err == nil {
		t.Fatal("RemoveAll of the category root was accepted")
	}
	if _, err := tr.Resolve("a/../../x"); err == nil {
		t.Fatal("a path leaving the category was accepted")
	}
}

func TestAbortAndTamper(t *testing.T) {
	tr, _, _, _ := newTree(t)
	w, err := tr.Create("f", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Abort()
	if _, _, err := tr.Stat("f"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("aborted file still there: %v", err)
	}
	if err := tr.WriteFile("f", bytes.Repeat([]byte("z"), 10000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Create("f", 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over an existing file: %v", err)
	}
	p, _ := tr.Resolve("f")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o600)
	if _, err := tr.ReadFile("f"); !errors.Is(err, content.ErrCorrupt) {
		t.Fatalf("tampered file read: %v", err)
	}
}

func TestRebase(t *testing.T) {
	tr, _, _, _ := newTree(t)
	if err := tr.MkdirAll("x/backup", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := tr.WriteFile("x/backup/manifest", []byte("m"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, _ := tr.Resolve("x/backup")
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	b, err := tr.Rebase(dst).ReadFile("manifest")
	if err != nil || string(b) != "m" {
		t.Fatalf("rebased read: %q %v", b, err)
	}
}

type allowAll struct{}

func (allowAll) Authorize(context.Context, fusefs.AccessRequest) syscall.Errno { return 0 }

// What tree writes is what the mount shows, and the other way round.
func TestSameFormatAsMount(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireFUSE(t)
	tr, store, vol, keys := newTree(t)
	mk, err := daemon.MountKeys(vol, keys)
	if err != nil {
		t.Fatal(err)
	}
	for cat := range mk {
		os.MkdirAll(filepath.Join(store, cat), 0o700)
	}
	f, err := fusefs.New(fusefs.Options{Store: store, Keys: mk, Auth: allowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	srv, err := f.Mount(mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Unmount() })
	if err := tr.MkdirAll("dir", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := tr.WriteFile("dir/from-tree", []byte("written by tree"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(mnt, "mysqlbackup", "dir", "from-tree"))
	if err != nil || string(b) != "written by tree" {
		t.Fatalf("mount read of a tree file: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "mysqlbackup", "dir", "from-mount"), []byte("written by the mount"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err = tr.ReadFile("dir/from-mount")
	if err != nil || string(b) != "written by the mount" {
		t.Fatalf("tree read of a mount file: %q %v", b, err)
	}
}
