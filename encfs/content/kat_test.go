package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"testing"
)

// TestKnownAnswerContent decrypts files sealed by an independent
// implementation of the content format (scripts/kat.py, Python
// 'cryptography'): header, 4 KiB blocks, 16-byte nonces, additional data
// = block number and header.
func TestKnownAnswerContent(t *testing.T) {
	b, err := os.ReadFile("../../testdata/kat/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Master, VolumeID string
		Subkeys          []struct{ Purpose, Category, Key string }
		Content          []struct {
			Category    string
			PlainSHA256 string `json:"plain_sha256"`
			Size        int
			File        string
		}
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var raw, keyID []byte
	for _, s := range v.Subkeys {
		switch {
		case s.Purpose == "content" && s.Category == "mysql":
			raw, _ = hex.DecodeString(s.Key)
		case s.Purpose == "key-id" && s.Category == "mysql":
			keyID, _ = hex.DecodeString(s.Key)
		}
	}
	var id [KeyIDSize]byte
	copy(id[:], keyID)
	key, err := NewKey(raw, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Content) < 5 {
		t.Fatalf("only %d content vectors", len(v.Content))
	}
	for _, c := range v.Content {
		file, _ := base64.StdEncoding.DecodeString(c.File)
		if got := CipherSize(int64(c.Size)); got != int64(len(file)) {
			t.Errorf("size %d: CipherSize %d, the vector has %d", c.Size, got, len(file))
		}
		r, err := NewReader(bytes.NewReader(file), key, "kat")
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("size %d: %v", c.Size, err)
		}
		if sum := sha256.Sum256(plain); len(plain) != c.Size || hex.EncodeToString(sum[:]) != c.PlainSHA256 {
			t.Errorf("size %d: got %d bytes with another SHA-256", c.Size, len(plain))
		}
		// A flipped bit in the last block's tag is refused.
		file[len(file)-1] ^= 1
		r, _ = NewReader(bytes.NewReader(file), key, "kat")
		if _, err := io.ReadAll(r); err == nil {
			t.Errorf("size %d: a changed tag was accepted", c.Size)
		}
		// The header as specified: magic, version 1 big endian, key ID at 24.
		if !bytes.Equal(file[:6], []byte("MYSEC\x00")) || binary.BigEndian.Uint16(file[6:8]) != 1 || !bytes.Equal(file[24:32], keyID[:8]) {
			t.Errorf("size %d: header layout %x", c.Size, file[:32])
		}
	}
}
