package volume

import "testing"

// TestSlotDetail: the DETAIL column of 'key list' for each slot type,
// and nothing for a slot whose settings are missing (a config that
// failed validation must not make the listing panic).
func TestSlotDetail(t *testing.T) {
	for _, tc := range []struct {
		slot Slot
		want string
	}{
		{Slot{Type: SlotPassphrase, KDF: &KDFParams{Alg: "argon2id", Time: 3, MemoryKiB: 256 * 1024, Threads: 4}}, "argon2id t=3 m=256MiB p=4"},
		{Slot{Type: SlotPassphrase, KDF: &KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 1536, Threads: 1}}, "argon2id t=1 m=1MiB p=1"},
		{Slot{Type: SlotRSA, RSAFingerprint: "SHA256:abc"}, "SHA256:abc"},
		{Slot{Type: SlotKeyFile, KeyFileHint: "/etc/mysecure/boot.key"}, "/etc/mysecure/boot.key"},
		{Slot{Type: SlotKMS, KMS: &KMSRef{KMSSettings: KMSSettings{URL: "kmip://kms.example:5696", KeyID: "1234"}}}, "kmip://kms.example:5696 key 1234"},
		{Slot{Type: SlotPassphrase}, ""},
		{Slot{Type: SlotKMS}, ""},
		{Slot{Type: "other", RSAFingerprint: "SHA256:abc"}, ""},
	} {
		if got := tc.slot.Detail(); got != tc.want {
			t.Errorf("%s slot: detail %q, want %q", tc.slot.Type, got, tc.want)
		}
	}
}
