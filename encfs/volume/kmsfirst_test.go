package volume

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestUseKMS: the kms slots are tried first when asked for, or when the
// volume has them and no other credential was named.
func TestUseKMS(t *testing.T) {
	_, plain, k := newVolume(t)
	k.Wipe()
	withKMS, err := Load(newKMSEnv(t).dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		v             *Volume
		forced, named bool
		want          bool
		wantErr       error
	}{
		{plain, false, false, false, nil},
		{plain, false, true, false, nil},
		{plain, true, false, false, ErrNoKMSSlot},
		{withKMS, false, false, true, nil},
		{withKMS, false, true, false, nil},
		{withKMS, true, true, true, nil},
		{withKMS, true, false, true, nil},
	} {
		got, err := tc.v.UseKMS(tc.forced, tc.named)
		if got != tc.want || !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
			t.Errorf("kms slots %d, forced %v, named %v: %v %v, want %v %v", len(tc.v.KMSSlots()), tc.forced, tc.named, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestTryKMS: a kms slot that opens gives the keys; one that does not
// gives a warning per slot and no keys when there is a fallback, and an
// error that says there is none otherwise.
func TestTryKMS(t *testing.T) {
	e := newKMSEnv(t)
	v, err := Load(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var warned []*KMSError
	warn := func(s *KMSError) { warned = append(warned, s) }
	k, err := v.TryKMS(KMS{}, false, warn)
	if err != nil || k == nil || k.SlotID() != e.slot || len(warned) != 0 {
		t.Fatalf("kms up: keys %v, %v, warnings %v", k, err, warned)
	}
	k.Wipe()

	// The client key readable by others: the slot refuses to open.
	if err := os.Chmod(e.settings.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(e.settings.Key, 0o600)
	k, err = v.TryKMS(KMS{}, true, warn)
	if k != nil || err != nil || len(warned) != 1 || warned[0].Slot != e.slot || !errors.Is(warned[0], ErrInsecureKeyFile) {
		t.Fatalf("with a fallback: keys %v, %v, warnings %v", k, err, warned)
	}
	warned = nil
	k, err = v.TryKMS(KMS{}, false, warn)
	var ue *KMSUnlockError
	if k != nil || !errors.As(err, &ue) || len(warned) != 0 {
		t.Fatalf("without a fallback: keys %v, %v, warnings %v", k, err, warned)
	}
	if want := ue.Error() + "; no passphrase to fall back to"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}

}

func TestKMSSettingsAbsolute(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	s := KMSSettings{URL: "kmip://kms", KeyID: "7", Cert: "c.pem", Key: "/etc/k/../k.pem", CA: "/ca.pem"}
	got, err := s.Absolute()
	if err != nil {
		t.Fatal(err)
	}
	want := KMSSettings{URL: "kmip://kms", KeyID: "7", Cert: filepath.Join(wd, "c.pem"), Key: "/etc/k.pem", CA: "/ca.pem"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("absolute settings do not validate: %v", err)
	}
}
