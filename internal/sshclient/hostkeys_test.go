package sshclient

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newHostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestHostKeyChecker(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	key := newHostKey(t)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}

	// No file at all: unknown, with the fingerprint and the line to add.
	hc := newHostKeyChecker([]string{kh}, false)
	err := hc.Check("127.0.0.1:2222", addr, key)
	var he *HostKeyError
	if !errors.As(err, &he) || he.Changed || !errors.Is(err, ErrHostKey) {
		t.Fatalf("unknown host: %v", err)
	}
	fp := ssh.FingerprintSHA256(key)
	if he.Fingerprint != fp || !strings.Contains(err.Error(), fp) || !strings.HasPrefix(fp, "SHA256:") {
		t.Fatalf("error does not show the fingerprint %s: %v", fp, err)
	}
	if !strings.HasPrefix(he.Line, "[127.0.0.1]:2222 ssh-ed25519 ") || !strings.Contains(err.Error(), he.Line) {
		t.Fatalf("line %q / %v", he.Line, err)
	}

	// The line it gave, added by hand, is trusted.
	if err := os.WriteFile(kh, []byte("# comment\n"+he.Line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := hc.Check("127.0.0.1:2222", addr, key); err != nil {
		t.Fatalf("known key refused: %v", err)
	}
	// Another port of the same address is another host.
	if err := hc.Check("127.0.0.1:2223", addr, key); !errors.As(err, &he) || he.Changed {
		t.Fatalf("other port: %v", err)
	}

	// A changed key is refused, naming the line on record, even with
	// accept-new.
	other := newHostKey(t)
	for _, acceptNew := range []bool{false, true} {
		err := newHostKeyChecker([]string{kh}, acceptNew).Check("127.0.0.1:2222", addr, other)
		if !errors.As(err, &he) || !he.Changed || !strings.Contains(err.Error(), "CHANGED") || !strings.Contains(err.Error(), kh+":2") {
			t.Fatalf("changed key (accept-new %v): %v", acceptNew, err)
		}
	}

	// accept-new adds an unknown host once, then trusts it.
	kh2 := filepath.Join(dir, "sub", "known_hosts")
	an := newHostKeyChecker([]string{kh2}, true)
	if err := an.Check("db1.example.com:22", addr, other); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(kh2)
	if err != nil || !strings.HasPrefix(string(b), "db1.example.com ssh-ed25519 ") {
		t.Fatalf("accept-new wrote %q, %v", b, err)
	}
	if err := newHostKeyChecker([]string{kh2}, false).Check("db1.example.com:22", addr, other); err != nil {
		t.Fatalf("accepted key refused later: %v", err)
	}

	// A malformed known_hosts is an error, not an open door.
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("this is not a known_hosts line\n"), 0o600)
	if err := newHostKeyChecker([]string{bad}, true).Check("h:22", addr, key); err == nil || errors.As(err, &he) {
		t.Fatalf("malformed known_hosts: %v", err)
	}
}
