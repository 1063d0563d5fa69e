package volume

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestKeyFileIsNotMaster: a volume unlocked with a key file may be read
// (subkeys) but may not add, change or remove key slots; the attack run's
// "key add --type passphrase --keyfile K" minted a master passphrase.
func TestKeyFileIsNotMaster(t *testing.T) {
	dir, v, k := newVolume(t)
	rk := genRSA(t)
	if _, err := v.AddSlot(k, NewRSA{Public: &rk.PublicKey}, ""); err != nil {
		t.Fatal(err)
	}
	kfPath := filepath.Join(t.TempDir(), "boot.key")
	kf, err := GenerateKeyFile(kfPath)
	if err != nil {
		t.Fatal(err)
	}
	kfID, err := v.AddSlot(k, NewKeyFile{KeyFile: *kf, Path: kfPath}, "")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := len(v2.Config.Slots)
	kk, err := v2.Unlock(*kf)
	if err != nil {
		t.Fatal(err)
	}
	if kk.IsMaster() {
		t.Fatal("a key file unlock claims to be a master credential")
	}
	if _, err := kk.Subkey(PurposeContent, "mysql"); err != nil {
		t.Fatalf("a key file must still give the data keys: %v", err)
	}
	np := NewPassphrase{Passphrase: pass("minted", "by key file"), KDF: cheapKDF}
	if _, err := v2.AddSlot(kk, np, ""); !errors.Is(err, ErrNotMasterCredential) {
		t.Fatalf("AddSlot with a key file unlock: %v, want ErrNotMasterCredential", err)
	}
	if err := v2.ReplaceSlot(kk, 1, np); !errors.Is(err, ErrNotMasterCredential) {
		t.Fatalf("ReplaceSlot with a key file unlock: %v, want ErrNotMasterCredential", err)
	}
	if err := v2.RemoveSlot(kk, 1); !errors.Is(err, ErrNotMasterCredential) {
		t.Fatalf("RemoveSlot with a key file unlock: %v, want ErrNotMasterCredential", err)
	}
	if err := v2.RemoveSlot(kk, kfID); !errors.Is(err, ErrNotMasterCredential) {
		t.Fatalf("RemoveSlot (its own slot) with a key file unlock: %v, want ErrNotMasterCredential", err)
	}
	// Nothing reached the disk.
	v3, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(v3.Config.Slots) != before || len(v2.Config.Slots) != before {
		t.Fatalf("slots changed: %d on disk, %d in memory, want %d", len(v3.Config.Slots), len(v2.Config.Slots), before)
	}
	if _, err := v3.Unlock(pass("minted", "by key file")); !errors.Is(err, ErrIncorrectCredentials) {
		t.Fatalf("the minted passphrase opens the volume: %v", err)
	}

	// Passphrase and RSA unlocks are master credentials.
	for name, c := range map[string]Credential{"passphrase": pass("correct horse", "pepper"), "rsa": RSAPrivateKey{Key: rk}} {
		km, err := v3.Unlock(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !km.IsMaster() {
			t.Fatalf("%s unlock is not a master credential", name)
		}
	}
	km, _ := v3.Unlock(pass("correct horse", "pepper"))
	if err := v3.RemoveSlot(km, kfID); err != nil {
		t.Fatalf("master removes the key file slot: %v", err)
	}
	// The keys of a new volume come from its creator: master.
	if !k.IsMaster() {
		t.Fatal("Create's keys are not master")
	}
}
