package volume

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func states(cs []SlotCheck) map[int]SlotState {
	m := map[int]SlotState{}
	for _, c := range cs {
		m[c.ID] = c.State
	}
	return m
}

func TestVerifySlotsPassphraseOnly(t *testing.T) {
	_, v, k := newVolume(t)
	defer k.Wipe()
	cs, err := v.VerifySlots(k, KMS{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].ID != k.SlotID() || cs[0].State != SlotUnlocked || cs[0].Type != SlotPassphrase {
		t.Fatalf("checks %+v", cs)
	}
}

func TestVerifySlotsKMS(t *testing.T) {
	e := newKMSEnv(t)
	v, err := Load(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	// Unlocked with the passphrase: the kms slot is checked at its server.
	cs, err := v.VerifySlots(e.master, KMS{})
	if err != nil {
		t.Fatal(err)
	}
	if got := states(cs); len(got) != 2 || got[e.master.SlotID()] != SlotUnlocked || got[e.slot] != SlotUnwrapped {
		t.Fatalf("with the passphrase: %v", got)
	}
	// Unlocked through kms: the passphrase slot needs its secret.
	k, err := e.unlock(t)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Wipe()
	cs, err = v.VerifySlots(k, KMS{})
	if err != nil {
		t.Fatal(err)
	}
	if got := states(cs); got[e.master.SlotID()] != SlotUnchecked || got[e.slot] != SlotUnlocked {
		t.Fatalf("through kms: %v", got)
	}
	// A kms slot whose wrapped key changed fails, and the error counts it.
	e.rewriteSlot(t, false, func(s *Slot) {
		w, _ := base64.StdEncoding.DecodeString(s.Wrapped)
		w[20] ^= 1
		s.Wrapped = base64.StdEncoding.EncodeToString(w)
	})
	v, err = Load(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	cs, err = v.VerifySlots(e.master, KMS{})
	if err == nil || !strings.HasPrefix(err.Error(), "1 of 1 kms slots do not open the volume: ") {
		t.Fatalf("changed kms slot: %v", err)
	}
	var ke *KMSError
	if !errors.As(err, &ke) || ke.Slot != e.slot {
		t.Fatalf("the error does not wrap the slot's failure: %v", err)
	}
	for _, c := range cs {
		if c.ID == e.slot && (c.State != SlotFails || c.Err == nil) {
			t.Fatalf("changed kms slot checked as %+v", c)
		}
	}
}
