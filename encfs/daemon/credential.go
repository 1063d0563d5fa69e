package daemon

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/mysecure/mysecure/encfs/volume"
)

// Errors of ReadCredential.
var (
	// ErrCredentialSize: the input is larger than the limit.
	ErrCredentialSize = errors.New("the credential is too large")
	// ErrNoCredential: the input is not a Credential as JSON of type
	// passphrase or rsa.
	ErrNoCredential = errors.New("no credential (JSON with type passphrase or rsa)")
)

// ReadCredential reads a master credential as JSON (what a rolling `ndb
// enable` sends each host's mysecure on its stdin) from r, at most limit
// bytes. What it read is wiped before it returns.
func ReadCredential(r io.Reader, limit int) (*Credential, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	defer clear(b)
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, ErrCredentialSize
	}
	var c Credential
	if err := json.Unmarshal(b, &c); err != nil || (c.Type != CredentialPassphrase && c.Type != CredentialRSA) {
		c.Wipe()
		return nil, ErrNoCredential
	}
	return &c, nil
}

// RSACredential is the master credential of an RSA private key (PEM).
// password is called only for an encrypted key.
func RSACredential(pemData []byte, password func() ([]byte, error)) (*Credential, error) {
	c := &Credential{Type: CredentialRSA, RSAPEM: pemData}
	if volume.IsEncryptedPEM(pemData) {
		pw, err := password()
		if err != nil {
			return nil, err
		}
		c.RSAPassword = pw
	}
	return c, nil
}
