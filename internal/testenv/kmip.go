package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PKI is a certificate and its ECDSA key, made by a test. ECDSA because
// pykmip's TLS 1.2 suites that Go also offers are ECDHE-ECDSA with AES-GCM.
type PKI struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCert makes a certificate for cn, signed by parent (self-signed when
// nil): a CA when ca, else a leaf for usage valid for 127.0.0.1.
func NewCert(t testing.TB, cn string, parent *PKI, ca bool, usage x509.ExtKeyUsage) *PKI {
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
		signer, signKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &k.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{Cert: c, Key: k}
}

// Write writes dir/name.crt and dir/name.key (PEM, mode 0600).
func (p *PKI) Write(t testing.TB, dir, name string) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(p.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TLSCert is p as a tls.Certificate.
func (p *PKI) TLSCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key, Leaf: p.Cert}
}

// KMIPServer is Debian's pykmip-server on 127.0.0.1, with a CA, a server
// certificate and one client certificate ("mysecure") made by the test.
type KMIPServer struct {
	Addr   string // 127.0.0.1:PORT
	Dir    string // config, database, logs and the PEM files below
	CA     *PKI
	Client *PKI
	// CAPath, ClientCert and ClientKey are the PEM files of CA and Client.
	CAPath, ClientCert, ClientKey string

	stopOnce sync.Once
	stop     func()
}

// StartKMIPServer starts pykmip-server (package python3-pykmip) on a free
// loopback port and waits until it listens; it is stopped at the end of
// the test. A missing pykmip-server skips the test (fails it in strict
// mode).
func StartKMIPServer(t testing.TB) *KMIPServer {
	t.Helper()
	RequireCommands(t, "pykmip-server")
	dir := t.TempDir()
	ca := NewCert(t, "mysecure test CA", nil, true, 0)
	srv := NewCert(t, "127.0.0.1", ca, false, x509.ExtKeyUsageServerAuth)
	cli := NewCert(t, "mysecure", ca, false, x509.ExtKeyUsageClientAuth)
	caPath, _ := ca.Write(t, dir, "ca")
	srvCert, srvKey := srv.Write(t, dir, "server")
	cliCert, cliKey := cli.Write(t, dir, "client")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o700); err != nil {
		t.Fatal(err)
	}
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
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
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
	s := &KMIPServer{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, CA: ca, Client: cli,
		CAPath: caPath, ClientCert: cliCert, ClientKey: cliKey}
	s.stop = func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
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
	return s
}

// Stop kills the server (and the processes it forked); its port then
// refuses connections.
func (s *KMIPServer) Stop() { s.stopOnce.Do(s.stop) }

// URL is the server's kmip:// URL.
func (s *KMIPServer) URL() string { return "kmip://" + s.Addr }

// TLSConfig is a client configuration with cert that trusts the server's CA.
func (s *KMIPServer) TLSConfig(cert *PKI) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.CA.Cert)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert.TLSCert()}, MinVersion: tls.VersionTLS12}
}
