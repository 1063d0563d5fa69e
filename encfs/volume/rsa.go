package volume

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"os"

	"golang.org/x/crypto/pbkdf2"
)

// MinRSABits is the smallest RSA modulus accepted for a key slot.
const MinRSABits = 2048

// RSAFingerprint returns "SHA256:" and the unpadded base64 of the SHA-256
// of the key's PKIX DER encoding (the form `openssl pkey -pubout` prints).
func RSAFingerprint(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]), nil
}

// ParseRSAPublicKeyPEM reads a PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY"
// (PKCS#1) block.
func ParseRSAPublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("failed to parse public key: %w", err)
		}
		pub, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, not RSA", k)
		}
		return pub, nil
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want PUBLIC KEY", block.Type)
	}
}

// ErrKeyPasswordNeeded is returned by ParseRSAPrivateKeyPEM when the key is
// encrypted and no password was given.
var ErrKeyPasswordNeeded = errors.New("the RSA private key is encrypted and needs its password")

// IsEncryptedPEM reports whether data holds an encrypted private key.
func IsEncryptedPEM(data []byte) bool {
	block, _ := pem.Decode(data)
	if block == nil {
		return false
	}
	//lint:ignore SA1019 legacy PEM encryption is what older openssl writes; we only read it.
	return block.Type == "ENCRYPTED PRIVATE KEY" || x509.IsEncryptedPEMBlock(block) //nolint:staticcheck
}

// ParseRSAPrivateKeyPEM reads an RSA private key: "RSA PRIVATE KEY"
// (PKCS#1, optionally with legacy PEM encryption), "PRIVATE KEY" (PKCS#8)
// or "ENCRYPTED PRIVATE KEY" (PKCS#8 with PBES2/PBKDF2 and AES-CBC, what
// OpenSSL 3 writes). A wrong password is ErrIncorrectCredentials.
func ParseRSAPrivateKeyPEM(data, password []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	der := block.Bytes
	var err error
	switch {
	case block.Type == "ENCRYPTED PRIVATE KEY":
		if password == nil {
			return nil, ErrKeyPasswordNeeded
		}
		der, err = decryptPKCS8(block.Bytes, password)
		if err != nil {
			return nil, err
		}
		defer clear(der)
	//lint:ignore SA1019 see IsEncryptedPEM.
	case x509.IsEncryptedPEMBlock(block): //nolint:staticcheck
		if password == nil {
			return nil, ErrKeyPasswordNeeded
		}
		//lint:ignore SA1019 see IsEncryptedPEM.
		der, err = x509.DecryptPEMBlock(block, password) //nolint:staticcheck
		if err != nil {
			return nil, fmt.Errorf("%w: cannot decrypt the RSA private key", ErrIncorrectCredentials)
		}
		defer clear(der)
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(der)
	default:
		return nil, fmt.Errorf("PEM block is %q, want an RSA PRIVATE KEY", block.Type)
	}
	if err != nil {
		if block.Type != "PRIVATE KEY" && block.Type != "RSA PRIVATE KEY" {
			return nil, fmt.Errorf("%w: cannot decrypt the RSA private key", ErrIncorrectCredentials)
		}
		return nil, fmt.Errorf("failed to parse private key: %w", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, not RSA", key)
	}
	return rk, nil
}

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

type encryptedPrivateKeyInfo struct {
	Algo pkix.AlgorithmIdentifier
	Data []byte
}

type pbes2Params struct {
	KDF pkix.AlgorithmIdentifier
	Enc pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt      []byte
	Iter      int
	KeyLength int                      `asn1:"optional"`
	PRF       pkix.AlgorithmIdentifier `asn1:"optional"`
}

// decryptPKCS8 decrypts a PKCS#8 EncryptedPrivateKeyInfo protected with
// PBES2 (RFC 8018): PBKDF2 with HMAC-SHA1 or HMAC-SHA256, AES-CBC.
func decryptPKCS8(der, password []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, fmt.Errorf("failed to parse encrypted private key: %w", err)
	}
	if !info.Algo.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("encrypted private key uses %v, only PBES2 is supported", info.Algo.Algorithm)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("failed to parse PBES2 parameters: %w", err)
	}
	if !params.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("encrypted private key uses KDF %v, only PBKDF2 is supported", params.KDF.Algorithm)
	}
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("failed to parse PBKDF2 parameters: %w", err)
	}
	if kdf.Iter < 1 || kdf.Iter > 10_000_000 {
		return nil, fmt.Errorf("PBKDF2 iteration count %d out of range", kdf.Iter)
	}
	var h func() hash.Hash
	switch {
	case len(kdf.PRF.Algorithm) == 0 || kdf.PRF.Algorithm.Equal(oidHMACSHA1):
		h = sha1.New
	case kdf.PRF.Algorithm.Equal(oidHMACSHA256):
		h = sha256.New
	default:
		return nil, fmt.Errorf("PBKDF2 PRF %v is not supported", kdf.PRF.Algorithm)
	}
	var keyLen int
	switch {
	case params.Enc.Algorithm.Equal(oidAES128CBC):
		keyLen = 16
	case params.Enc.Algorithm.Equal(oidAES192CBC):
		keyLen = 24
	case params.Enc.Algorithm.Equal(oidAES256CBC):
		keyLen = 32
	default:
		return nil, fmt.Errorf("cipher %v is not supported (want AES-CBC)", params.Enc.Algorithm)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.Enc.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, errors.New("bad AES-CBC IV in encrypted private key")
	}
	key := pbkdf2.Key(password, kdf.Salt, kdf.Iter, keyLen, h)
	defer clear(key)
	if len(info.Data) == 0 || len(info.Data)%aes.BlockSize != 0 {
		return nil, errors.New("encrypted private key has a bad length")
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(info.Data))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, info.Data)
	pad := int(out[len(out)-1])
	if pad < 1 || pad > aes.BlockSize || pad > len(out) {
		clear(out)
		return nil, fmt.Errorf("%w: cannot decrypt the RSA private key", ErrIncorrectCredentials)
	}
	for _, p := range out[len(out)-pad:] {
		if int(p) != pad {
			clear(out)
			return nil, fmt.Errorf("%w: cannot decrypt the RSA private key", ErrIncorrectCredentials)
		}
	}
	return out[:len(out)-pad], nil
}

// RSAKeyFileError is a private key file that is not an RSA private key.
type RSAKeyFileError struct {
	Path string
	Err  error
}

func (e *RSAKeyFileError) Error() string {
	return fmt.Sprintf("cannot read RSA private key %s: %v", e.Path, e.Err)
}

func (e *RSAKeyFileError) Unwrap() error { return e.Err }

// ReadRSAPrivateKey reads the PEM RSA private key in path. When the key
// is encrypted it asks password for the password (and wipes it); an
// unencrypted key never calls password. A wrong password is
// ErrIncorrectCredentials; a file that does not parse otherwise is an
// *RSAKeyFileError.
func ReadRSAPrivateKey(path string, password func() ([]byte, error)) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read RSA private key: %w", err)
	}
	defer clear(data)
	var pw []byte
	if IsEncryptedPEM(data) {
		if pw, err = password(); err != nil {
			return nil, err
		}
		defer clear(pw)
	}
	k, err := ParseRSAPrivateKeyPEM(data, pw)
	if errors.Is(err, ErrIncorrectCredentials) {
		return nil, err
	}
	if err != nil {
		return nil, &RSAKeyFileError{Path: path, Err: err}
	}
	return k, nil
}
