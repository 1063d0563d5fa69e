package daemon

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadCredential(t *testing.T) {
	good, _ := json.Marshal(&Credential{Type: "passphrase", Passphrase: []byte("p"), Salt: []byte("s")})
	c, err := ReadCredential(strings.NewReader(string(good)), 100)
	if err != nil || c.Type != "passphrase" || string(c.Passphrase) != "p" || string(c.Salt) != "s" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, tc := range []struct {
		name, in string
		limit    int
		want     error
	}{
		{"too large", string(good), len(good) - 1, ErrCredentialSize},
		{"exactly the limit", string(good), len(good), nil},
		{"not JSON", "passphrase", 100, ErrNoCredential},
		{"no type", `{"passphrase":"cA=="}`, 100, ErrNoCredential},
		{"a key file", `{"type":"keyfile"}`, 100, ErrNoCredential},
		{"empty", "", 100, ErrNoCredential},
	} {
		if _, err := ReadCredential(strings.NewReader(tc.in), tc.limit); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	boom := errors.New("boom")
	if _, err := ReadCredential(iotest.ErrReader(boom), 100); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
}

func TestRSACredential(t *testing.T) {
	// Only the PEM type tells an encrypted key: the bytes are not parsed
	// here (the daemon does, with volume.ParseRSAPrivateKeyPEM).
	plain := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("key")})
	enc := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("key")})
	asked := 0
	password := func() ([]byte, error) { asked++; return []byte("pw"), nil }
	c, err := RSACredential(plain, password)
	if err != nil || c.Type != "rsa" || string(c.RSAPEM) != string(plain) || c.RSAPassword != nil || asked != 0 {
		t.Fatalf("plain key: %+v %v, password asked %d times", c, err, asked)
	}
	if c, err = RSACredential(enc, password); err != nil || string(c.RSAPassword) != "pw" || asked != 1 {
		t.Fatalf("encrypted key: %+v %v, password asked %d times", c, err, asked)
	}
	none := errors.New("no terminal")
	if _, err := RSACredential(enc, func() ([]byte, error) { return nil, none }); !errors.Is(err, none) {
		t.Fatalf("password error: %v", err)
	}
}
