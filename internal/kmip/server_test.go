package kmip

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

func clientFor(ks *testenv.KMIPServer, cert *testenv.PKI) *Client {
	return &Client{Addr: ks.Addr, TLS: ks.TLSConfig(cert)}
}

func TestPyKMIP(t *testing.T) {
	ks := testenv.StartKMIPServer(t)
	ctx := context.Background()
	c := clientFor(ks, ks.Client)
	id, err := c.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	ad := []byte("volume-id|slot-3")
	s, err := c.Encrypt(ctx, id, secret, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.Ciphertext, secret[:8]) {
		t.Fatal("ciphertext holds the secret")
	}
	got, err := c.Decrypt(ctx, id, s, ad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("decrypt: %x, %v", got, err)
	}
	t.Run("tampered", func(t *testing.T) {
		bad := s
		bad.Ciphertext = append([]byte(nil), s.Ciphertext...)
		bad.Ciphertext[0] ^= 1
		if _, err := c.Decrypt(ctx, id, bad, ad); err == nil {
			t.Fatal("a tampered ciphertext was decrypted")
		}
		if _, err := c.Decrypt(ctx, id, s, []byte("volume-id|slot-4")); err == nil {
			t.Fatal("decrypted with other additional data")
		}
	})
	t.Run("wrong client certificate", func(t *testing.T) {
		rogueCA := testenv.NewCert(t, "rogue CA", nil, true, 0)
		rogue := testenv.NewCert(t, "mysecure", rogueCA, false, x509.ExtKeyUsageClientAuth)
		_, err := clientFor(ks, rogue).Decrypt(ctx, id, s, ad)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("a client certificate from another CA: %v", err)
		}
		// Another client of the same CA does not own the key.
		other := testenv.NewCert(t, "other-host", ks.CA, false, x509.ExtKeyUsageClientAuth)
		if _, err := clientFor(ks, other).Decrypt(ctx, id, s, ad); err == nil {
			t.Fatal("another client's certificate decrypted the key")
		}
	})
	t.Run("server down", func(t *testing.T) {
		dead := &Client{Addr: "127.0.0.1:1", TLS: c.TLS, Timeout: 2 * time.Second}
		if _, err := dead.Decrypt(ctx, id, s, ad); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("unreachable server: %v", err)
		}
	})
}
