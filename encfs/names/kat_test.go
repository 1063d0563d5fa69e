package names

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// TestKnownAnswerNames: names encrypted by an independent EME-AES-256
// implementation (scripts/kat.py, written from the EME paper with AES-ECB
// from Python 'cryptography') encrypt and decrypt the same here.
func TestKnownAnswerNames(t *testing.T) {
	b, err := os.ReadFile("../../testdata/kat/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Subkeys []struct{ Purpose, Category, Key string }
		Names   []struct{ Category, Diriv, Name, Encrypted string }
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var key []byte
	for _, s := range v.Subkeys {
		if s.Purpose == "names" && s.Category == "mysql" {
			key, _ = hex.DecodeString(s.Key)
		}
	}
	c, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Names) < 8 {
		t.Fatalf("only %d name vectors", len(v.Names))
	}
	for _, n := range v.Names {
		iv, _ := hex.DecodeString(n.Diriv)
		got, err := c.Encrypt(iv, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got != n.Encrypted {
			t.Errorf("%q: %s, want %s", n.Name, got, n.Encrypted)
		}
		back, err := c.Decrypt(iv, n.Encrypted)
		if err != nil || back != n.Name {
			t.Errorf("decrypt %s: %q %v", n.Encrypted, back, err)
		}
	}
}
