package audit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeTLS writes a self-signed CA and a server certificate and key
// (ECDSA P-256, for localhost and 127.0.0.1) signed by it into dir: ca.pem, server-cert.pem,
// server-key.pem.
func writeTLS(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mysecure test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caTmpl, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server-cert.pem"), filepath.Join(dir, "server-key.pem")
	for p, b := range map[string]*pem.Block{ca: {Type: "CERTIFICATE", Bytes: caDER}, cert: {Type: "CERTIFICATE", Bytes: srvDER}, key: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(p, pem.EncodeToMemory(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}

// TestLiveTLSAndFiles runs the TLS checks against a real server with a
// certificate made here, and the slow and general log, key file and
// secure_auth checks with those features on: each fails misconfigured,
// then passes once fixed.
func TestLiveTLSAndFiles(t *testing.T) {
	e := newLiveEnv(t)
	e.write("my.cnf", "[mysqld]\nlocal_infile = 0\n", 0o644)
	dir := filepath.Join(filepath.Dir(e.dir), "tls")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, cert, key := writeTLS(t, dir)
	e.chmod(ca, 0o666)
	keys := filepath.Join(dir, "keys.txt")
	if err := os.WriteFile(keys, []byte("1;a7addd9adea9978fda19f21e6be987880e68ac92632ca052e5bb42b1a506939a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	slow, general := filepath.Join(e.dir, "slow.log"), filepath.Join(e.dir, "general.log")
	common := []string{"--ssl-cert=" + cert, "--ssl-key=" + key, "--ssl-ca=" + ca,
		"--slow-query-log=1", "--slow-query-log-file=" + slow, "--general-log=1", "--general-log-file=" + general,
		"--plugin-load-add=file_key_management", "--file-key-management-filename=" + keys}
	srv := e.start(append(common, "--tls-version=TLSv1.1,TLSv1.2", "--ssl-cipher=ALL", "--secure-auth=0")...)
	e.sql(srv, "CREATE USER 'app'@'10.0.0.5' IDENTIFIED BY 'App!pw-1'; SELECT 1;")
	e.chmod(slow, 0o644)
	e.chmod(general, 0o666)

	fs := e.audit(clientQuery(srv))
	expect(t, fs, "network.tls-versions", Fail, []string{"tls_version = TLSv1.1,TLSv1.2 allows TLSv1.1"}, "have_ssl")
	expect(t, fs, "files.ssl-key", Fail, []string{"server-key.pem is owned by root:root, not mysql:mysql", "server-key.pem has mode 0644, more than 0600", "ssl_ca " + ca + " has mode 0666"}, "server-cert.pem has mode")
	expect(t, fs, "network.ciphers", Fail, []string{"ssl_cipher allows ALL"})
	expect(t, fs, "config.require-secure-transport", Fail, []string{"require_secure_transport = 0", "have_ssl = YES"})
	expect(t, fs, "network.ssl-type-remote", Fail, []string{"'app'@'10.0.0.5' may connect from other hosts with ssl_type none"})
	expect(t, fs, "network.x509-remote", Fail, []string{"'app'@'10.0.0.5'"})
	expect(t, fs, "files.slow-log", Fail, []string{"slow.log has mode 0644, more than 0660"})
	expect(t, fs, "files.general-log", Fail, []string{"general.log has mode 0666, more than 0660"})
	expect(t, fs, "files.key-file", Fail, []string{"keys.txt is owned by root:root", "keys.txt has mode 0644, more than 0600"})
	expect(t, fs, "auth.secure-auth", Fail, []string{"secure_auth = 0"})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	// Fix.
	for _, p := range []string{key, keys} {
		if err := chownUser(p); err != nil {
			t.Fatal(err)
		}
	}
	e.chmod(key, 0o600)
	e.chmod(keys, 0o400)
	e.chmod(ca, 0o644)
	srv = e.start(append(common, "--tls-version=TLSv1.2,TLSv1.3", "--ssl-cipher=ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
		"--secure-auth=1", "--require-secure-transport=ON")...)
	e.sql(srv, "ALTER USER 'app'@'10.0.0.5' REQUIRE X509;")
	e.chmod(slow, 0o640)
	e.chmod(general, 0o600)
	fs = e.audit(clientQuery(srv))
	expect(t, fs, "network.tls-versions", Pass, []string{"tls_version = TLSv1.2,TLSv1.3"})
	expect(t, fs, "files.ssl-key", Pass, []string{"server-key.pem (mode 0600, owner mysql)"})
	expect(t, fs, "network.ciphers", Pass, []string{"ECDHE-ECDSA-AES256-GCM-SHA384"})
	expect(t, fs, "config.require-secure-transport", Pass, []string{"require_secure_transport = 1"})
	expect(t, fs, "network.ssl-type-remote", Pass, []string{"1 remote logins inspected"})
	expect(t, fs, "network.x509-remote", Pass, []string{"1 remote logins inspected"})
	expect(t, fs, "files.slow-log", Pass, []string{"slow.log (mode 0640, owner mysql)"})
	expect(t, fs, "files.general-log", Pass, []string{"general.log (mode 0600, owner mysql)"})
	expect(t, fs, "files.key-file", Pass, []string{"keys.txt (mode 0400, owner mysql)"})
	expect(t, fs, "auth.secure-auth", Pass, []string{"secure_auth = 1"})
}
