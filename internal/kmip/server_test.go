package kmip

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/testenv"
)

type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCert(t *testing.T, cn string, parent *pki, ca bool, usage x509.ExtKeyUsage) *pki {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	signer, signKey := tmpl, k
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &k.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &pki{cert: c, key: k}
}

func (p *pki) write(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.cert.Raw}), 0o600)
	der, err := x509.MarshalECPrivateKey(p.key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	return
}

func (p *pki) tlsCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.cert.Raw}, PrivateKey: p.key, Leaf: p.cert}
}

// ECDSA keys: pykmip's TLS 1.2 suites that Go also offers by default are
// ECDHE-ECDSA with AES-GCM.

// keyServer is pykmip-server on 127.0.0.1 with certificates made here.
type keyServer struct {
	addr   string
	ca     *pki
	client *pki
}

func startKeyServer(t *testing.T) *keyServer {
	t.Helper()
	testenv.RequireCommands(t, "pykmip-server")
	dir := t.TempDir()
	ca := newCert(t, "mysecure test CA", nil, true, 0)
	srv := newCert(t, "127.0.0.1", ca, false, x509.ExtKeyUsageServerAuth)
	cli := newCert(t, "mysecure", ca, false, x509.ExtKeyUsageClientAuth)
	caPath, _ := ca.write(t, dir, "ca")
	srvCert, srvKey := srv.write(t, dir, "server")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	os.MkdirAll(filepath.Join(dir, "policies"), 0o700)
	conf := fmt.Sprintf(`[server]
hostname=127.0.0.1
port=%d
certificate_path=%s
key_path=%s
ca_path=%s
auth_suite=TLS1.2
policy_path=%s
enable_tls_client_auth=True
logging_level=INFO
database_path=%s
`, port, srvCert, srvKey, caPath, filepath.Join(dir, "policies"), filepath.Join(dir, "pykmip.db"))
	confPath := filepath.Join(dir, "server.conf")
	os.WriteFile(confPath, []byte(conf), 0o600)
	cmd := exec.Command("pykmip-server", "--config_path", confPath, "--log_path", filepath.Join(dir, "server.log"))
	out, err := os.Create(filepath.Join(dir, "server.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// pykmip-server forks a process per connection: stop the group.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			o, _ := os.ReadFile(out.Name())
			t.Fatalf("pykmip-server did not listen: %s %s", o, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return &keyServer{addr: addr, ca: ca, client: cli}
}

func (k *keyServer) clientFor(cert *pki) *Client {
	pool := x509.NewCertPool()
	pool.AddCert(k.ca.cert)
	return &Client{Addr: k.addr, TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert.tlsCert()}, MinVersion: tls.VersionTLS12}}
}

func TestPyKMIP(t *testing.T) {
	ks := startKeyServer(t)
	ctx := context.Background()
	c := ks.clientFor(ks.client)
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
		rogueCA := newCert(t, "rogue CA", nil, true, 0)
		rogue := newCert(t, "mysecure", rogueCA, false, x509.ExtKeyUsageClientAuth)
		_, err := ks.clientFor(rogue).Decrypt(ctx, id, s, ad)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("a client certificate from another CA: %v", err)
		}
		// Another client of the same CA does not own the key.
		other := newCert(t, "other-host", ks.ca, false, x509.ExtKeyUsageClientAuth)
		if _, err := ks.clientFor(other).Decrypt(ctx, id, s, ad); err == nil {
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
