package volume

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/kmip"
	"github.com/mysecure/mysecure/internal/testenv"
)

func TestKMSAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kmip://kms.example", "kms.example:5696"},
		{"kmip://kms.example:7000", "kms.example:7000"},
		{"kmip://127.0.0.1:5696/", "127.0.0.1:5696"},
		{"kmip://[::1]:5696", "[::1]:5696"},
		{"https://kms.example", ""},
		{"kmip://", ""},
		{"kmip://user@kms.example", ""},
		{"kmip://kms.example/path", ""},
		{"kmip://kms.example?x=1", ""},
		{"kms.example:5696", ""},
	} {
		got, err := KMSAddr(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("KMSAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestKMSSettingsValidate(t *testing.T) {
	ok := KMSSettings{URL: "kmip://kms:5696", KeyID: "42", Cert: "/etc/mysecure/kms.crt", Key: "/etc/mysecure/kms.key", CA: "/etc/mysecure/kms-ca.pem"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(*KMSSettings){
		"url":          func(s *KMSSettings) { s.URL = "http://kms" },
		"empty key id": func(s *KMSSettings) { s.KeyID = "" },
		"key id space": func(s *KMSSettings) { s.KeyID = "a b" },
		"key id long":  func(s *KMSSettings) { s.KeyID = strings.Repeat("x", maxKeyID+1) },
		"relative":     func(s *KMSSettings) { s.Cert = "kms.crt" },
		"unclean":      func(s *KMSSettings) { s.Key = "/etc/../etc/kms.key" },
		"empty ca":     func(s *KMSSettings) { s.CA = "" },
	} {
		s := ok
		f(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, s)
		}
	}
}

// kmsEnv is a volume with a passphrase slot and a kms slot on a real
// pykmip-server.
type kmsEnv struct {
	ks       *testenv.KMIPServer
	dir      string
	keyID    string
	settings KMSSettings
	slot     int
	master   *Keys
}

func newKMSEnv(t *testing.T) *kmsEnv {
	t.Helper()
	ks := testenv.StartKMIPServer(t)
	c := &kmip.Client{Addr: ks.Addr, TLS: ks.TLSConfig(ks.Client)}
	id, err := c.CreateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir, v, k := newVolume(t)
	st := KMSSettings{URL: ks.URL(), KeyID: id, Cert: ks.ClientCert, Key: ks.ClientKey, CA: ks.CAPath}
	slot, err := v.AddSlot(k, NewKMS{Settings: st}, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Wipe)
	return &kmsEnv{ks: ks, dir: dir, keyID: id, settings: st, slot: slot, master: k}
}

func (e *kmsEnv) unlock(t *testing.T) (*Keys, error) {
	t.Helper()
	v, err := Load(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	return v.Unlock(KMS{})
}

func TestKMSSlot(t *testing.T) {
	e := newKMSEnv(t)
	raw, err := os.ReadFile(ConfigPath(e.dir))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Volume struct {
			Slots []map[string]any `json:"slots"`
		} `json:"volume"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	s := file.Volume.Slots[1]
	if s["type"] != "kms" || s["label"] != "fleet" {
		t.Fatalf("slot %v", s)
	}
	ref, _ := s["kms"].(map[string]any)
	for k, want := range map[string]string{"url": e.settings.URL, "key_id": e.keyID, "cert": e.settings.Cert, "key": e.settings.Key, "ca": e.settings.CA} {
		if ref[k] != want {
			t.Errorf("kms.%s = %v, want %q", k, ref[k], want)
		}
	}
	if fp, _ := ref["client_key"].(string); !strings.HasPrefix(fp, "SHA256:") {
		t.Errorf("client_key %q", fp)
	}
	w, err := base64.StdEncoding.DecodeString(s["wrapped"].(string))
	if err != nil || len(w) != 60 {
		t.Fatalf("wrapped: %d bytes, %v", len(w), err)
	}
	if bytes.Contains(w, e.master.master[:8]) {
		t.Fatal("the wrapped key holds the master key")
	}

	var feats struct {
		Volume struct {
			Features []string `json:"features"`
		} `json:"volume"`
	}
	json.Unmarshal(raw, &feats)
	if !slices.Contains(feats.Volume.Features, FeatureSlotKMS) {
		t.Fatalf("features %v lack %q: an older build would call the volume corrupt", feats.Volume.Features, FeatureSlotKMS)
	}

	k, err := e.unlock(t)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Wipe()
	if !bytes.Equal(k.master, e.master.master) || k.SlotID() != e.slot {
		t.Fatalf("kms unlock: slot %d, other master key", k.SlotID())
	}
	if k.IsMaster() || !errors.Is(k.RequireMaster(), ErrNotMasterCredential) {
		t.Fatal("a kms slot counts as a master credential")
	}
	if !k.ConfigAuthenticated() {
		t.Fatal("a kms unlock does not authenticate the config")
	}
	v, _ := Load(e.dir)
	if _, err := v.AddSlot(k, NewPassphrase{Passphrase: pass("x", "y"), KDF: cheapKDF}, ""); !errors.Is(err, ErrNotMasterCredential) {
		t.Fatalf("kms keys added a passphrase slot: %v", err)
	}
	if err := v.RemoveSlot(k, 1); !errors.Is(err, ErrNotMasterCredential) {
		t.Fatalf("kms keys removed the passphrase slot: %v", err)
	}
	if err := v.CheckKMSSlot(k, e.slot, KMS{}); err != nil {
		t.Fatalf("CheckKMSSlot: %v", err)
	}
	// The passphrase slot stays the master credential: removing it would
	// leave a volume that mounts but cannot be managed.
	if err := v.RemoveSlot(e.master, 1); !errors.Is(err, ErrLastSlot) {
		t.Fatalf("removing the last master slot beside a kms slot: %v", err)
	}
}

// rewriteSlot changes the kms slot in the config on disk; resign signs it
// again with the client key, as only the holder of that key can.
func (e *kmsEnv) rewriteSlot(t *testing.T, resign bool, f func(s *Slot)) {
	t.Helper()
	v, err := Load(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &v.Config.Slots[v.slotIndex(e.slot)]
	f(s)
	if resign {
		w, _ := base64.StdEncoding.DecodeString(s.Wrapped)
		sig, err := kmsSign(e.ks.Client.Key, kmsSigned(v.Config.volumeID(), s, w))
		if err != nil {
			t.Fatal(err)
		}
		s.KMS.Signature = base64.StdEncoding.EncodeToString(sig)
	}
	// Save with the master key: the MAC is right, so only the slot itself
	// can refuse.
	if err := v.save(e.master); err != nil {
		t.Fatal(err)
	}
}

func kmsFailure(t *testing.T, err error) *KMSError {
	t.Helper()
	var ue *KMSUnlockError
	if !errors.As(err, &ue) || len(ue.Slots) != 1 || !errors.Is(err, ErrIncorrectCredentials) {
		t.Fatalf("want one kms slot failure, got %v", err)
	}
	return ue.Slots[0]
}

func TestKMSSlotRefusals(t *testing.T) {
	e := newKMSEnv(t)
	v0, _ := Load(e.dir)
	orig := v0.Config.Slots[v0.slotIndex(e.slot)]
	origRef := *orig.KMS
	restore := func(t *testing.T) {
		e.rewriteSlot(t, false, func(s *Slot) { ref := origRef; *s = orig; s.KMS = &ref })
		if k, err := e.unlock(t); err != nil {
			t.Fatalf("restored slot: %v", err)
		} else {
			k.Wipe()
		}
	}
	flip := func(s *Slot) {
		w, _ := base64.StdEncoding.DecodeString(s.Wrapped)
		w[20] ^= 1
		s.Wrapped = base64.StdEncoding.EncodeToString(w)
	}
	t.Run("changed slot, unsigned", func(t *testing.T) {
		for name, f := range map[string]func(*Slot){
			"wrapped": flip,
			"url":     func(s *Slot) { s.KMS.URL = "kmip://127.0.0.2:5696" },
			"key id":  func(s *Slot) { s.KMS.KeyID = "999" },
			"ca":      func(s *Slot) { s.KMS.CA = "/etc/ssl/certs/ca-certificates.crt" },
		} {
			e.rewriteSlot(t, false, f)
			_, err := e.unlock(t)
			ke := kmsFailure(t, err)
			if !errors.Is(ke, errKMSSlotChanged) || ke.Slot != e.slot {
				t.Errorf("%s changed: %v", name, err)
			}
			restore(t)
		}
	})
	t.Run("tampered wrapped key, signed again", func(t *testing.T) {
		// Even with the client key, a changed ciphertext fails the
		// server's GCM authentication.
		e.rewriteSlot(t, true, flip)
		_, err := e.unlock(t)
		var se *kmip.ServerError
		if ke := kmsFailure(t, err); !errors.As(ke, &se) || se.Op != "Decrypt" {
			t.Fatalf("tampered wrapped key: %v", err)
		}
		restore(t)
	})
	t.Run("moved to another slot ID, signed again", func(t *testing.T) {
		// The additional data holds the slot ID: the server refuses.
		e.rewriteSlot(t, true, func(s *Slot) { s.ID = 7 })
		v, _ := Load(e.dir)
		_, err := v.Unlock(KMS{})
		var se *kmip.ServerError
		if ke := kmsFailure(t, err); !errors.As(ke, &se) || ke.Slot != 7 {
			t.Fatalf("moved slot: %v", err)
		}
		v, _ = Load(e.dir)
		v.Config.Slots[1].ID = e.slot
		if err := v.save(e.master); err != nil {
			t.Fatal(err)
		}
		restore(t)
	})
	t.Run("kms slot without its feature flag", func(t *testing.T) {
		v, _ := Load(e.dir)
		v.Config.Features = slices.DeleteFunc(v.Config.Features, func(f string) bool { return f == FeatureSlotKMS })
		if err := v.save(e.master); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(e.dir); !errors.Is(err, ErrCorruptConfig) {
			t.Fatalf("kms slot without %q: %v", FeatureSlotKMS, err)
		}
		v.Config.Features = append(v.Config.Features, FeatureSlotKMS)
		if err := v.save(e.master); err != nil {
			t.Fatal(err)
		}
		restore(t)
	})
	t.Run("client key readable by others", func(t *testing.T) {
		os.Chmod(e.settings.Key, 0o644)
		defer os.Chmod(e.settings.Key, 0o600)
		_, err := e.unlock(t)
		if ke := kmsFailure(t, err); !errors.Is(ke, ErrInsecureKeyFile) {
			t.Fatalf("world-readable client key: %v", err)
		}
	})
	t.Run("client certificate replaced by another key pair", func(t *testing.T) {
		// Another identity's files at the slot's paths: refused before
		// the server is asked, naming both keys.
		oc, _ := os.ReadFile(e.settings.Cert)
		ok, _ := os.ReadFile(e.settings.Key)
		defer os.WriteFile(e.settings.Cert, oc, 0o600)
		defer os.WriteFile(e.settings.Key, ok, 0o600)
		other := testenv.NewCert(t, "mysecure", e.ks.CA, false, x509.ExtKeyUsageClientAuth)
		c, k := other.Write(t, t.TempDir(), "x")
		for src, dst := range map[string]string{c: e.settings.Cert, k: e.settings.Key} {
			b, _ := os.ReadFile(src)
			os.WriteFile(dst, b, 0o600)
		}
		_, err := e.unlock(t)
		if ke := kmsFailure(t, err); !strings.Contains(ke.Error(), "the slot was made with "+origRef.ClientKey) {
			t.Fatalf("replaced client key: %v", err)
		}
	})
	t.Run("CA file owned by another user", func(t *testing.T) {
		// Its owner could put a CA of their own in it and answer in the
		// key server's place (and at key add be sent the master key).
		testenv.RequireRoot(t)
		if err := os.Chown(e.settings.CA, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		defer os.Chown(e.settings.CA, 0, 0)
		_, err := e.unlock(t)
		if ke := kmsFailure(t, err); !errors.Is(ke, ErrInsecureKeyFile) || !strings.Contains(ke.Error(), e.settings.CA) {
			t.Fatalf("CA file of uid 65534: %v", err)
		}
		v, _ := Load(e.dir)
		if _, err := v.AddSlot(e.master, NewKMS{Settings: e.settings}, ""); !errors.Is(err, ErrInsecureKeyFile) {
			t.Fatalf("key add with a CA file of uid 65534: %v", err)
		}
	})
	t.Run("other client of the same CA", func(t *testing.T) {
		other := testenv.NewCert(t, "other-host", e.ks.CA, false, x509.ExtKeyUsageClientAuth)
		cert, key := other.Write(t, t.TempDir(), "other")
		st := e.settings
		st.Cert, st.Key = cert, key
		v, _ := Load(e.dir)
		_, err := v.AddSlot(e.master, NewKMS{Settings: st}, "")
		var ke *KMSError
		var se *kmip.ServerError
		if !errors.As(err, &ke) || !errors.As(err, &se) {
			t.Fatalf("a key owned by another client wrapped the master key: %v", err)
		}
	})
	t.Run("server down", func(t *testing.T) {
		e.ks.Stop()
		_, err := e.unlock(t)
		ke := kmsFailure(t, err)
		if !ke.Unreachable() || ke.Error() != "kms slot 2: "+e.settings.URL+": connection refused" {
			t.Fatalf("server down: %v", err)
		}
		// The passphrase slot still opens the volume.
		v, _ := Load(e.dir)
		k, err := v.Unlock(pass("correct horse", "pepper"))
		if err != nil {
			t.Fatal(err)
		}
		k.Wipe()
	})
}
