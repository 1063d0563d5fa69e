package fusefs

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/mysecure/mysecure/encfs/content"
)

// TestTornTailCutOnOpen: a store file whose last block was torn (what a
// daemon killed in the middle of an extending write leaves) opens after
// the next mount, cut back to its whole blocks, and the cut is reported;
// a file with a damaged block in the middle still reads as EIO and is
// left alone.
func TestTornTailCutOnOpen(t *testing.T) {
	store := t.TempDir()
	keys := testKeys(t)
	data := make([]byte, 3*content.BlockSize+500)
	rand.Read(data)
	m := mount(t, store, keys)
	for _, name := range []string{"torn", "tampered"} {
		if err := os.WriteFile(filepath.Join(m.mnt, "mysql", name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m.unmount(t)

	// The two store files (names are encrypted: which is which only
	// shows through the mount, below).
	var stored []string
	filepath.Walk(filepath.Join(store, "mysql"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() == content.CipherSize(int64(len(data))) {
			stored = append(stored, p)
		}
		return nil
	})
	if len(stored) != 2 {
		t.Fatalf("store files: %v", stored)
	}
	// One torn (the stored size leaves the last block no byte), the
	// other with a flipped byte in block 1.
	tornAt := int64(content.HeaderSize + 3*content.CipherBlockSize + 20)
	if err := os.Truncate(stored[0], tornAt); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(stored[1])
	if err != nil {
		t.Fatal(err)
	}
	b[content.HeaderSize+content.CipherBlockSize+100] ^= 1
	if err := os.WriteFile(stored[1], b, 0o600); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var repairs []Repair
	m = mount(t, store, keys, func(o *Options) {
		o.OnRepair = func(r Repair) { mu.Lock(); repairs = append(repairs, r); mu.Unlock() }
	})
	var eio, cut int
	for _, name := range []string{"torn", "tampered"} {
		got, err := os.ReadFile(filepath.Join(m.mnt, "mysql", name))
		switch {
		case errors.Is(err, syscall.EIO):
			eio++
		case err == nil && bytes.Equal(got, data[:3*content.BlockSize]):
			cut++
		default:
			t.Fatalf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	if eio != 1 || cut != 1 {
		t.Fatalf("%d files cut back to their whole blocks, %d read EIO; want one each", cut, eio)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(repairs) != 1 || repairs[0].Category != "mysql" || repairs[0].PlainTo != 3*content.BlockSize || repairs[0].StoredFrom != tornAt {
		t.Fatalf("repairs reported: %+v", repairs)
	}
	fi, err := os.Stat(stored[0])
	if err != nil || fi.Size() != content.CipherSize(3*content.BlockSize) {
		t.Fatalf("torn store file after the cut: %v %v", fi, err)
	}
	if fi, err := os.Stat(stored[1]); err != nil || fi.Size() != content.CipherSize(int64(len(data))) {
		t.Fatalf("tampered store file changed: %v %v", fi, err)
	}
}
