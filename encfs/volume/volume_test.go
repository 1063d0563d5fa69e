package volume

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// cheapKDF keeps Argon2 fast in tests; slots record their parameters, so
// volumes made with it open anywhere.
var cheapKDF = KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}

func pass(p, s string) Passphrase { return Passphrase{Passphrase: []byte(p), Salt: []byte(s)} }

func newVolume(t *testing.T) (string, *Volume, *Keys) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	v, k, err := Create(dir, CreateOptions{}, NewPassphrase{Passphrase: pass("correct horse", "pepper"), KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	return dir, v, k
}

func TestCreateUnlock(t *testing.T) {
	dir, _, k := newVolume(t)
	want, _ := k.Subkey(PurposeContent, "mysql")
	v, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := v.Unlock(pass("correct horse", "pepper"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := k2.Subkey(PurposeContent, "mysql")
	if !bytes.Equal(got, want) {
		t.Fatal("unlocked key differs")
	}
	fi, err := os.Stat(ConfigPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %o, want 600", fi.Mode().Perm())
	}
	if _, _, err := Create(dir, CreateOptions{}, NewPassphrase{Passphrase: pass("a", "b"), KDF: cheapKDF}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v", err)
	}
}

func TestWrongCredentials(t *testing.T) {
	dir, _, _ := newVolume(t)
	v, _ := Load(dir)
	for _, c := range []Passphrase{pass("wrong", "pepper"), pass("correct horse", "salt"), pass("correct horsepepper", ""), pass("", "correct horsepepper")} {
		if _, err := v.Unlock(c); !errors.Is(err, ErrIncorrectCredentials) {
			t.Errorf("Unlock(%q,%q): got %v", c.Passphrase, c.Salt, err)
		}
		if _, err := v.Unlock(c); err.Error() != ErrIncorrectCredentials.Error() {
			t.Errorf("error text %q differs between wrong passphrase and wrong salt", err)
		}
	}
	if _, err := v.Unlock(KeyFile{Secret: make([]byte, 32)}); !errors.Is(err, ErrIncorrectCredentials) {
		t.Errorf("keyfile on a passphrase-only volume: %v", err)
	}
}

func TestSubkeysIndependent(t *testing.T) {
	_, _, k := newVolume(t)
	seen := map[string]bool{}
	for _, p := range []string{PurposeContent, PurposeNames, PurposeKeyID, PurposeRules, PurposeCatalog} {
		for _, c := range []string{"mysql", "mysqlbackup", ""} {
			b, _ := k.Subkey(p, c)
			if seen[string(b)] {
				t.Fatalf("subkey %s/%s repeats another", p, c)
			}
			seen[string(b)] = true
		}
	}
	if _, err := k.ContentKey("nosuch"); !errors.Is(err, ErrUnknownCategory) {
		t.Fatalf("ContentKey of unknown category: %v", err)
	}
	if _, err := k.Subkey("content/mysql", "x"); err == nil {
		t.Fatal("unknown purpose accepted")
	}
	if _, err := k.Subkey(PurposeContent, "mysql/x"); err == nil {
		t.Fatal("bad category accepted")
	}
	k.Wipe()
	if _, err := k.Subkey(PurposeContent, "mysql"); err == nil {
		t.Fatal("Subkey works after Wipe")
	}
}

func genRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSlots(t *testing.T) {
	dir, v, k := newVolume(t)
	rk := genRSA(t)
	rsaID, err := v.AddSlot(k, NewRSA{Public: &rk.PublicKey}, "dba team")
	if err != nil {
		t.Fatal(err)
	}
	kfPath := filepath.Join(t.TempDir(), "key")
	kf, err := GenerateKeyFile(kfPath)
	if err != nil {
		t.Fatal(err)
	}
	kfID, err := v.AddSlot(k, NewKeyFile{KeyFile: *kf, Path: kfPath}, "")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := k.Subkey(PurposeContent, "mysql")

	v2, _ := Load(dir)
	kf2, err := ReadKeyFile(kfPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Credential{"rsa": RSAPrivateKey{Key: rk}, "keyfile": *kf2, "pass": pass("correct horse", "pepper")} {
		k2, err := v2.Unlock(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, _ := k2.Subkey(PurposeContent, "mysql")
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: different master key", name)
		}
		if k2.ConfigAuthenticated() != (name != "rsa") {
			t.Fatalf("%s: ConfigAuthenticated = %v", name, k2.ConfigAuthenticated())
		}
	}
	if _, err := v2.Unlock(RSAPrivateKey{Key: genRSA(t)}); !errors.Is(err, ErrIncorrectCredentials) {
		t.Fatalf("other RSA key: %v", err)
	}
	if _, err := v2.AddSlot(k, NewRSA{Public: &rk.PublicKey}, ""); err == nil {
		t.Fatal("same RSA key added twice")
	}

	// Change the passphrase: the old one stops working, data keys stay.
	if err := v2.ReplaceSlot(k, 1, NewPassphrase{Passphrase: pass("new", "salt2"), KDF: cheapKDF}); err != nil {
		t.Fatal(err)
	}
	v3, _ := Load(dir)
	if _, err := v3.Unlock(pass("correct horse", "pepper")); !errors.Is(err, ErrIncorrectCredentials) {
		t.Fatalf("old passphrase after change: %v", err)
	}
	k3, err := v3.Unlock(pass("new", "salt2"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := k3.Subkey(PurposeContent, "mysql")
	if !bytes.Equal(got, want) {
		t.Fatal("passphrase change changed the master key")
	}

	for _, id := range []int{rsaID, kfID} {
		if err := v3.RemoveSlot(k3, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := v3.RemoveSlot(k3, 1); !errors.Is(err, ErrLastSlot) {
		t.Fatalf("removing the last slot: %v", err)
	}
	if err := v3.RemoveSlot(k3, 99); !errors.Is(err, ErrNoSuchSlot) {
		t.Fatalf("removing a missing slot: %v", err)
	}
	v4, _ := Load(dir)
	if _, err := v4.Unlock(*kf2); !errors.Is(err, ErrIncorrectCredentials) {
		t.Fatalf("removed keyfile slot still opens: %v", err)
	}
}

func TestKeyFilePermissions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if _, err := GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKeyFile(p); err == nil {
		t.Fatal("GenerateKeyFile overwrote a file")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(p); !errors.Is(err, ErrInsecureKeyFile) {
		t.Fatalf("world-readable key file: %v", err)
	}
}

// TestKeyFileNewDirectory: --create-keyfile /etc/mysecure/boot.key on a
// fresh host, where /etc/mysecure does not exist yet (it failed with
// ENOENT): the parents are made 0755 whatever the umask, the file 0400.
func TestKeyFileNewDirectory(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "etc", "mysecure")
	p := filepath.Join(dir, "boot.key")
	if _, err := GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o755, filepath.Dir(dir): 0o755, p: 0o400} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v, mode %v, want %04o", path, err, fi.Mode().Perm(), want)
		}
	}
	if _, err := ReadKeyFile(p); err != nil {
		t.Fatal(err)
	}
}

// TestRSAPEMFormats: the key files openssl writes (PKCS#8, PKCS#1,
// encrypted PKCS#8, legacy encrypted PEM; frozen in testdata/rsa-pem)
// parse, and the encrypted ones need their password.
func TestRSAPEMFormats(t *testing.T) {
	dir := filepath.Join("testdata", "rsa-pem")
	pubPEM, _ := os.ReadFile(filepath.Join(dir, "pub.pem"))
	pub, err := ParseRSAPublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"plain.pem", "pkcs1.pem", "enc8.pem", "legacy.pem"} {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		var password []byte
		if IsEncryptedPEM(data) {
			if _, err := ParseRSAPrivateKeyPEM(data, nil); !errors.Is(err, ErrKeyPasswordNeeded) {
				t.Fatalf("%s without password: %v", name, err)
			}
			if _, err := ParseRSAPrivateKeyPEM(data, []byte("wrong")); !errors.Is(err, ErrIncorrectCredentials) {
				t.Fatalf("%s with wrong password: %v", name, err)
			}
			password = []byte("s3cret")
		}
		k, err := ParseRSAPrivateKeyPEM(data, password)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !k.PublicKey.Equal(pub) {
			t.Fatalf("%s: key does not match the public key", name)
		}
	}
}

// rewrite applies f to the config file's JSON.
func rewrite(t *testing.T, dir string, f func(m map[string]any)) {
	t.Helper()
	data, _ := os.ReadFile(ConfigPath(dir))
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, _ := json.Marshal(m)
	if err := os.WriteFile(ConfigPath(dir), out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	vol := func(m map[string]any) map[string]any { return m["volume"].(map[string]any) }
	cases := []struct {
		name     string
		mutate   func(t *testing.T, dir string)
		loadErr  error // from Load
		openErr  error // from Unlock, when Load succeeds
		contains string
	}{
		{"garbage", func(t *testing.T, dir string) { os.WriteFile(ConfigPath(dir), []byte("{not json"), 0o600) }, ErrCorruptConfig, nil, "corrupt"},
		{"empty", func(t *testing.T, dir string) { os.WriteFile(ConfigPath(dir), nil, 0o600) }, ErrCorruptConfig, nil, "corrupt"},
		{"future version", func(t *testing.T, dir string) {
			rewrite(t, dir, func(m map[string]any) { vol(m)["version"] = 9 })
		}, ErrUnsupported, nil, "version 9"},
		{"unknown feature", func(t *testing.T, dir string) {
			rewrite(t, dir, func(m map[string]any) { vol(m)["features"] = append(vol(m)["features"].([]any), "quantum-names") })
		}, ErrUnsupported, nil, "quantum-names"},
		{"unknown field", func(t *testing.T, dir string) {
			rewrite(t, dir, func(m map[string]any) { vol(m)["surprise"] = 1 })
		}, ErrCorruptConfig, nil, "surprise"},
		{"category added", func(t *testing.T, dir string) {
			rewrite(t, dir, func(m map[string]any) { vol(m)["categories"] = append(vol(m)["categories"].([]any), "evil") })
		}, nil, ErrTampered, "MAC"},
		{"huge kdf", func(t *testing.T, dir string) {
			rewrite(t, dir, func(m map[string]any) {
				vol(m)["slots"].([]any)[0].(map[string]any)["kdf"].(map[string]any)["memory_kib"] = 1 << 30
			})
		}, ErrCorruptConfig, nil, "memory"},
		{"missing", func(t *testing.T, dir string) { os.Remove(ConfigPath(dir)) }, ErrNotInitialized, nil, "no mysecure volume"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, _ := newVolume(t)
			tc.mutate(t, dir)
			v, err := Load(dir)
			if tc.loadErr != nil {
				if !errors.Is(err, tc.loadErr) || !strings.Contains(err.Error(), tc.contains) {
					t.Fatalf("Load: got %v, want %v containing %q", err, tc.loadErr, tc.contains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Unlock(pass("correct horse", "pepper"))
			if !errors.Is(err, tc.openErr) || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("Unlock: got %v, want %v", err, tc.openErr)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "s")
	v, k, err := Create(dir, CreateOptions{}, NewPassphrase{Passphrase: pass("p", "s"), KDF: cheapKDF})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(ConfigPath(dir))
	f.Add(good)
	// A kms slot as a key server would have wrapped it (made by hand).
	v.Config.Features = append(v.Config.Features, FeatureSlotKMS)
	v.Config.Slots = append(v.Config.Slots, Slot{ID: 2, Type: SlotKMS, Created: "2026-12-05T00:00:00Z",
		KMS: &KMSRef{KMSSettings: KMSSettings{URL: "kmip://kms:5696", KeyID: "1", Cert: "/c", Key: "/k", CA: "/ca"},
			ClientKey: "SHA256:x", Signature: "c2ln"}, Wrapped: base64.StdEncoding.EncodeToString(make([]byte, 60))})
	if err := v.save(k); err != nil {
		f.Fatal(err)
	}
	withKMS, _ := os.ReadFile(ConfigPath(dir))
	f.Add(withKMS)
	f.Add([]byte(`{"volume":{"format":"mysecure-volume","version":1},"mac":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parse("x", data)
		if err != nil {
			return
		}
		// Anything accepted must be structurally sound.
		if len(v.Config.Slots) == 0 || len(v.Config.Categories) == 0 {
			t.Fatal("accepted a config without slots or categories")
		}
		for _, s := range v.Config.Slots {
			if s.Type == SlotPassphrase && (s.KDF == nil || s.KDF.MemoryKiB > maxKDFMemoryKiB) {
				t.Fatal("accepted unsafe KDF parameters")
			}
			if s.Type == SlotKMS && (s.KMS == nil || s.KMS.Validate() != nil || !slices.Contains(v.Config.Features, FeatureSlotKMS)) {
				t.Fatal("accepted a kms slot without valid settings or its feature flag")
			}
		}
	})
}

// TestReadRSAPrivateKey: the password is asked for only for an encrypted
// key; a wrong one is ErrIncorrectCredentials (as the slot's), a file
// that is not a key an *RSAKeyFileError, a missing file neither.
func TestReadRSAPrivateKey(t *testing.T) {
	dir := filepath.Join("testdata", "rsa-pem")
	pubPEM, _ := os.ReadFile(filepath.Join(dir, "pub.pem"))
	pub, err := ParseRSAPublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		asked bool
	}{{"plain.pem", false}, {"pkcs1.pem", false}, {"enc8.pem", true}, {"legacy.pem", true}} {
		asked := false
		k, err := ReadRSAPrivateKey(filepath.Join(dir, tc.name), func() ([]byte, error) {
			asked = true
			return []byte("s3cret"), nil
		})
		if err != nil || !k.PublicKey.Equal(pub) || asked != tc.asked {
			t.Errorf("%s: %v, password asked %v", tc.name, err, asked)
		}
	}
	enc := filepath.Join(dir, "enc8.pem")
	_, err = ReadRSAPrivateKey(enc, func() ([]byte, error) { return []byte("wrong"), nil })
	var fe *RSAKeyFileError
	if !errors.Is(err, ErrIncorrectCredentials) || errors.As(err, &fe) {
		t.Errorf("wrong password: %v", err)
	}
	noPass := errors.New("no terminal")
	if _, err := ReadRSAPrivateKey(enc, func() ([]byte, error) { return nil, noPass }); err != noPass {
		t.Errorf("the password's error: %v", err)
	}
	_, err = ReadRSAPrivateKey(filepath.Join(dir, "pub.pem"), nil)
	if !errors.As(err, &fe) || fe.Path != filepath.Join(dir, "pub.pem") || errors.Is(err, ErrIncorrectCredentials) {
		t.Errorf("a public key as private key: %v", err)
	}
	_, err = ReadRSAPrivateKey(filepath.Join(dir, "none.pem"), nil)
	if !errors.Is(err, os.ErrNotExist) || errors.As(err, &fe) {
		t.Errorf("missing file: %v", err)
	}
}
