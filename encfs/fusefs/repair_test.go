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
	for _, name := range []string{"torn", "tampered", "short"} {
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
	if len(stored) != 3 {
		t.Fatalf("store files: %v", stored)
	}
	// One torn where the stored size leaves the last block no byte (a
	// size that cannot be), one torn inside its last block (a size that
	// can), one with a flipped byte in block 1.
	tornAt := int64(content.HeaderSize + 3*content.CipherBlockSize + 20)
	if err := os.Truncate(stored[0], tornAt); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(stored[2], content.HeaderSize+3*content.CipherBlockSize+300); err != nil {
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
	for _, name := range []string{"torn", "tampered", "short"} {
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
	if eio != 1 || cut != 2 {
		t.Fatalf("%d files cut back to their whole blocks, %d read EIO; want 2 and 1", cut, eio)
	}
	// The names tell nothing about the damage (the store names are
	// encrypted): the sizes and the reports must agree with each other.
	cutNames := map[string]bool{}
	for _, name := range []string{"torn", "tampered", "short"} {
		fi, err := os.Stat(filepath.Join(m.mnt, "mysql", name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 3*content.BlockSize {
			cutNames[name] = true
		} else if fi.Size() != int64(len(data)) {
			t.Fatalf("%s: %d bytes after the opens", name, fi.Size())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(repairs) != 2 || len(cutNames) != 2 {
		t.Fatalf("repairs reported: %+v; files cut: %v", repairs, cutNames)
	}
	for _, r := range repairs {
		if r.Category != "mysql" || r.PlainTo != 3*content.BlockSize || !cutNames[r.Path] {
			t.Fatalf("repair reported: %+v; files cut: %v", r, cutNames)
		}
	}
	fi, err := os.Stat(stored[0])
	if err != nil || fi.Size() != content.CipherSize(3*content.BlockSize) {
		t.Fatalf("torn store file after the cut: %v %v", fi, err)
	}
	if fi, err := os.Stat(stored[1]); err != nil || fi.Size() != content.CipherSize(int64(len(data))) {
		t.Fatalf("tampered store file changed: %v %v", fi, err)
	}
}
