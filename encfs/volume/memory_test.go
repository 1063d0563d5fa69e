package volume

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/mysecure/mysecure/internal/procfs"
)

func vmLck(t *testing.T) uint64 {
	t.Helper()
	st, err := procfs.ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return st.VmLck
}

// TestMasterKeyLocked: unlocked keys hold the master key on locked pages
// (VmLck grows by a page), and Wipe gives them back.
func TestMasterKeyLocked(t *testing.T) {
	dir, _, k0 := newVolume(t)
	want, _ := k0.Subkey(PurposeContent, "mysql")
	k0.Wipe()
	v, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := vmLck(t)
	k, err := v.Unlock(pass("correct horse", "pepper"))
	if err != nil {
		t.Fatal(err)
	}
	if err := MemoryLockError(); err != nil {
		t.Fatalf("master key not locked: %v", err)
	}
	if got := vmLck(t); got < before+uint64(os.Getpagesize()) {
		t.Fatalf("VmLck %d after Unlock, was %d", got, before)
	}
	if k.mem == nil || !k.mem.Locked() || &k.master[0] != &k.mem.Bytes()[0] {
		t.Fatal("the master key is not in the locked buffer")
	}
	if got, _ := k.Subkey(PurposeContent, "mysql"); !bytes.Equal(got, want) {
		t.Fatal("subkey differs")
	}
	k.Wipe()
	if got := vmLck(t); got != before {
		t.Fatalf("VmLck %d after Wipe, want %d", got, before)
	}
	if _, err := k.Subkey(PurposeContent, "mysql"); err == nil {
		t.Fatal("subkey after Wipe")
	}
}

// TestSetArgon2: passphrase slots derive through the function set, with
// the same result as argon2.IDKey; its failure is reported as such, not
// as a wrong passphrase.
func TestSetArgon2(t *testing.T) {
	dir, _, k0 := newVolume(t)
	k0.Wipe()
	v, _ := Load(dir)
	calls := 0
	SetArgon2(func(parts [][]byte, salt []byte, time, mem uint32, threads uint8, keyLen uint32) ([]byte, error) {
		calls++
		return argon2.IDKey(bytes.Join(parts, nil), salt, time, mem, threads, keyLen), nil
	})
	defer SetArgon2(nil)
	k, err := v.Unlock(pass("correct horse", "pepper"))
	if err != nil || calls != 1 {
		t.Fatalf("unlock: %v, %d calls", err, calls)
	}
	k.Wipe()
	SetArgon2(func([][]byte, []byte, uint32, uint32, uint8, uint32) ([]byte, error) {
		return nil, errors.New("child killed")
	})
	_, err = v.Unlock(pass("correct horse", "pepper"))
	if err == nil || errors.Is(err, ErrIncorrectCredentials) || !strings.Contains(err.Error(), "child killed") {
		t.Fatalf("failing KDF: %v", err)
	}
	if _, err := v.PassphraseSlotKey(pass("correct horse", "pepper")); err == nil || !strings.Contains(err.Error(), "child killed") {
		t.Fatalf("failing KDF, slot key: %v", err)
	}
	SetArgon2(nil)
	if k, err := v.Unlock(pass("correct horse", "pepper")); err != nil {
		t.Fatalf("in process again: %v", err)
	} else {
		k.Wipe()
	}
}

// TestSlotKey: the key of the slot a passphrase opens unlocks that slot
// alone, as a master credential, to the same keys.
func TestSlotKey(t *testing.T) {
	dir, v0, k0 := newVolume(t)
	if _, err := v0.AddSlot(k0, NewPassphrase{Passphrase: pass("second", "pass"), KDF: cheapKDF}, "two"); err != nil {
		t.Fatal(err)
	}
	want, _ := k0.Subkey(PurposeRules, "")
	k0.Wipe()
	v, _ := Load(dir)
	sk, err := v.PassphraseSlotKey(pass("second", "pass"))
	if err != nil || sk.Slot != 2 || len(sk.Key) != 32 {
		t.Fatalf("slot key: %+v, %v", sk, err)
	}
	k, err := v.Unlock(*sk)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := k.Subkey(PurposeRules, "")
	if !bytes.Equal(got, want) || !k.IsMaster() || k.SlotID() != 2 {
		t.Fatalf("keys from the slot key: same %v, master %v, slot %d", bytes.Equal(got, want), k.IsMaster(), k.SlotID())
	}
	k.Wipe()
	wrongSlot := SlotKey{Slot: 1, Key: sk.Key}
	flipped := SlotKey{Slot: 2, Key: bytes.Clone(sk.Key)}
	flipped.Key[0] ^= 1
	for name, c := range map[string]SlotKey{"other slot": wrongSlot, "flipped": flipped, "empty": {}, "short": {Slot: 2, Key: sk.Key[:16]}} {
		if _, err := v.Unlock(c); err == nil || err.Error() != ErrIncorrectCredentials.Error() {
			t.Errorf("%s: %v", name, err)
		}
	}
	sk.Wipe()
	if !bytes.Equal(sk.Key, make([]byte, 32)) {
		t.Fatal("Wipe left the key")
	}
	if _, err := v.PassphraseSlotKey(pass("second", "wrong")); err == nil || err.Error() != ErrIncorrectCredentials.Error() {
		t.Fatalf("wrong passphrase: %v", err)
	}
}
