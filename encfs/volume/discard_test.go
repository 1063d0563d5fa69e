package volume

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func newKeyFile(t *testing.T) NewKeyFile {
	t.Helper()
	path := filepath.Join(t.TempDir(), "boot.key")
	kf, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return NewKeyFile{KeyFile: *kf, Path: path}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestCheckNew(t *testing.T) {
	dir, _, _ := newVolume(t)
	if err := CheckNew(dir); !errors.Is(err, ErrExists) || err.Error() != ErrExists.Error()+": "+ConfigPath(dir) {
		t.Fatalf("CheckNew of a volume: %v", err)
	}
	if err := CheckNew(t.TempDir()); err != nil {
		t.Fatalf("CheckNew of an empty dir: %v", err)
	}
}

// TestKeyFileDiscarded: a key file made for a slot that was not created
// is removed; one whose slot was created stays.
func TestKeyFileDiscarded(t *testing.T) {
	master := NewPassphrase{Passphrase: pass("p", "s"), KDF: cheapKDF}

	kf := newKeyFile(t)
	if _, _, err := Create(filepath.Join(t.TempDir(), "store"), CreateOptions{Categories: []string{"Bad"}}, master, kf); err == nil {
		t.Fatal("Create with a bad category succeeded")
	}
	if exists(kf.Path) {
		t.Fatal("Create failed and left the key file")
	}

	dir, v, k := newVolume(t)
	kf = newKeyFile(t)
	if _, _, err := Create(dir, CreateOptions{}, master, &kf); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over a volume: %v", err)
	}
	if exists(kf.Path) {
		t.Fatal("Create over a volume left the key file")
	}

	kf = newKeyFile(t)
	if _, err := v.AddSlot(k, kf, ""); err != nil {
		t.Fatal(err)
	}
	if !exists(kf.Path) {
		t.Fatal("AddSlot removed the key file of the slot it created")
	}
	// A key file unlock cannot add slots: the new key file goes.
	kk, err := v.Unlock(kf.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	kf2 := newKeyFile(t)
	if _, err := v.AddSlot(kk, kf2, ""); !errors.Is(err, ErrNotMasterCredential) {
		t.Fatalf("AddSlot with key-file keys: %v", err)
	}
	if exists(kf2.Path) || !exists(kf.Path) {
		t.Fatalf("after a refused AddSlot: new key file there %v, old one there %v", exists(kf2.Path), exists(kf.Path))
	}
}
