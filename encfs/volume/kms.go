package volume

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/internal/kmip"
)

// A kms slot keeps the master key wrapped by a KMIP key server: the server
// encrypts it with a key it never lets out (AES-256-GCM, additional data
// AD(slot)), and decrypts it again for the client certificate that owns
// that key. The server sees the master key only inside the Encrypt and
// Decrypt requests, never data.
//
// Like a key file, a kms slot exists for unattended mounts and is not a
// master credential: whoever is root on the host can use the client
// certificate. It mounts, verifies and decrypts; it never changes slots,
// rules or modes.
//
// The slot's settings (server, key ID, file paths) and wrapped key are
// signed with the client certificate's private key. Without that, whoever
// can write the store could point the slot at a server of their own that
// "decrypts" to a master key of their choosing, and the MAC of a forged
// config would then check out. With it, forging a kms slot needs the
// client key, which is also what unlocking needs: a kms unlock proves the
// config genuine, as a key-file unlock does.

// KMSPort is KMIP's registered port, used when a kmip:// URL has none.
const KMSPort = "5696"

// KMSSettings say how a kms slot reaches its key server.
type KMSSettings struct {
	// URL is kmip://host[:port].
	URL string `json:"url"`
	// KeyID is the server's unique identifier of the AES-256 key.
	KeyID string `json:"key_id"`
	// Cert, Key and CA are absolute paths of PEM files: the client
	// certificate, its private key (root-only, as a key file) and the
	// CA certificates that sign the server's certificate.
	Cert string `json:"cert"`
	Key  string `json:"key"`
	CA   string `json:"ca"`
}

// KMSRef is what a kms slot stores besides the wrapped key.
type KMSRef struct {
	KMSSettings
	// ClientKey is "SHA256:" and the unpadded base64 of the SHA-256 of
	// the client key's public half (PKIX DER) when the slot was made.
	ClientKey string `json:"client_key"`
	// Signature, base64, by the client key over kmsSigned.
	Signature string `json:"signature"`
}

// maxKeyID bounds a key ID read from a config.
const maxKeyID = 256

// KMSAddr returns host:port of a kmip://host[:port] URL.
func KMSAddr(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "kmip" || p.Host == "" || p.User != nil ||
		(p.Path != "" && p.Path != "/") || p.RawQuery != "" || p.Fragment != "" || p.Opaque != "" {
		return "", fmt.Errorf("bad key server URL %q: want kmip://HOST[:PORT]", u)
	}
	host, port := p.Hostname(), p.Port()
	if port == "" {
		port = KMSPort
	}
	return net.JoinHostPort(host, port), nil
}

// Validate checks the settings without touching files or the network.
func (s KMSSettings) Validate() error {
	if _, err := KMSAddr(s.URL); err != nil {
		return err
	}
	if s.KeyID == "" || len(s.KeyID) > maxKeyID || strings.IndexFunc(s.KeyID, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return fmt.Errorf("bad key ID %q: want 1 to %d printable ASCII characters", s.KeyID, maxKeyID)
	}
	for _, p := range []struct{ what, path string }{{"client certificate", s.Cert}, {"client key", s.Key}, {"CA", s.CA}} {
		if !filepath.IsAbs(p.path) || filepath.Clean(p.path) != p.path {
			return fmt.Errorf("%s path %q must be absolute and clean (the daemon starts in /)", p.what, p.path)
		}
	}
	return nil
}

// client reads the certificate files and returns a KMIP client for the
// settings and the client's private key.
func (s KMSSettings) client(timeout time.Duration) (*kmip.Client, crypto.Signer, error) {
	addr, err := KMSAddr(s.URL)
	if err != nil {
		return nil, nil, err
	}
	if err := checkKMSFile(s.Key, true); err != nil {
		return nil, nil, err
	}
	for _, p := range []string{s.Cert, s.CA} {
		if err := checkKMSFile(p, false); err != nil {
			return nil, nil, err
		}
	}
	pair, err := tls.LoadX509KeyPair(s.Cert, s.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to load the client certificate: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("client key %s cannot sign", s.Key)
	}
	caPEM, err := os.ReadFile(s.CA)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("CA file %s holds no PEM certificate", s.CA)
	}
	host, _, _ := net.SplitHostPort(addr)
	c := &kmip.Client{Addr: addr, Timeout: timeout, TLS: &tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12,
	}}
	return c, signer, nil
}

// checkKMSFile refuses a client key that group or others can read or that
// another user owns (as ReadKeyFile does), and a certificate or CA file
// that group or others can write or that a user other than root or the
// caller owns.
func checkKMSFile(path string, secret bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if secret {
		if fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("%w: %s has mode %04o, want 0400 or 0600", ErrInsecureKeyFile, path, fi.Mode().Perm())
		}
		if uid, ok := fileUID(fi); ok && uid != os.Geteuid() {
			return fmt.Errorf("%w: %s is owned by uid %d, not by the caller", ErrInsecureKeyFile, path, uid)
		}
		return nil
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %04o: group or others can write it", ErrInsecureKeyFile, path, fi.Mode().Perm())
	}
	// Its owner could write it too: a CA of their own lets them answer in
	// the key server's place (and be sent the master key at key add).
	if uid, ok := fileUID(fi); ok && uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("%w: %s is owned by uid %d, who could change it: want root or the caller", ErrInsecureKeyFile, path, uid)
	}
	return nil
}

// publicKeyFingerprint is "SHA256:" and the unpadded base64 of the SHA-256
// of the PKIX DER of pub.
func publicKeyFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]), nil
}

// kmsSigned is the digest a kms slot's signature covers: AD(slot), every
// setting, the client key fingerprint and the wrapped key, each with its
// length.
func kmsSigned(volumeID []byte, s *Slot, wrapped []byte) []byte {
	h := sha256.New()
	h.Write([]byte("mysecure kms slot v1\x00"))
	for _, b := range [][]byte{slotAD(volumeID, s), []byte(s.KMS.URL), []byte(s.KMS.KeyID),
		[]byte(s.KMS.Cert), []byte(s.KMS.Key), []byte(s.KMS.CA), []byte(s.KMS.ClientKey), wrapped} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	return h.Sum(nil)
}

func kmsSign(k crypto.Signer, digest []byte) ([]byte, error) {
	switch key := k.(type) {
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand.Reader, key, digest)
	case *rsa.PrivateKey:
		return rsa.SignPSS(rand.Reader, key, crypto.SHA256, digest, nil)
	case ed25519.PrivateKey:
		return ed25519.Sign(key, digest), nil
	}
	return nil, fmt.Errorf("client key is %T: want ECDSA, RSA or Ed25519", k)
}

func kmsVerify(pub crypto.PublicKey, digest, sig []byte) bool {
	switch key := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(key, digest, sig)
	case *rsa.PublicKey:
		return rsa.VerifyPSS(key, crypto.SHA256, digest, sig, nil) == nil
	case ed25519.PublicKey:
		return ed25519.Verify(key, digest, sig)
	}
	return false
}

// KMSError is a kms slot that did not open (or, at key add, could not be
// made): the key server was unreachable, refused the client or the
// request, or the slot does not match the client key.
type KMSError struct {
	Slot int // 0 at key add
	URL  string
	Err  error
}

func (e *KMSError) Error() string {
	if e.Slot == 0 {
		return fmt.Sprintf("kms: %s: %s", e.URL, kmsReason(e.Err))
	}
	return fmt.Sprintf("kms slot %d: %s: %s", e.Slot, e.URL, kmsReason(e.Err))
}

func (e *KMSError) Unwrap() error { return e.Err }

// Unreachable reports whether the key server could not be reached or
// did not complete the TLS handshake (rather than refusing a request).
func (e *KMSError) Unreachable() bool { return errors.Is(e.Err, kmip.ErrUnreachable) }

// kmsReason is the short cause shown after "kms slot N: URL: ".
func kmsReason(err error) string {
	var se *kmip.ServerError
	var alert *net.OpError
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &alert) && alert.Op == "remote error":
		// A TLS alert from the server (crypto/tls reports it so).
		return "the key server refused the TLS handshake (" + alert.Err.Error() + "): does it trust the CA of the client certificate?"
	case errors.As(err, &cv):
		return "the key server's certificate does not verify with the CA file: " + cv.Err.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "no answer in time"
	case errors.As(err, &se):
		msg := fmt.Sprintf("the key server refused %s (KMIP reason %d)", se.Op, se.Reason)
		if se.Message != "" {
			msg += ": " + se.Message
		}
		return msg
	}
	return strings.TrimPrefix(err.Error(), "kmip: ")
}

// KMSUnlockError is Unlock with KMS when no kms slot opened: one error per
// slot tried. It wraps ErrIncorrectCredentials.
type KMSUnlockError struct {
	Slots []*KMSError
}

func (e *KMSUnlockError) Error() string {
	s := make([]string, len(e.Slots))
	for i, x := range e.Slots {
		s[i] = x.Error()
	}
	return strings.Join(s, "; ")
}

func (e *KMSUnlockError) Unwrap() error { return ErrIncorrectCredentials }

// KMS opens kms slots by asking each slot's key server, with the client
// certificate the slot names.
type KMS struct {
	// Ctx bounds the requests (context.Background when nil).
	Ctx context.Context
	// Timeout bounds each request to a key server (default 10s).
	Timeout time.Duration
}

// NewKMS makes a kms slot: the key server wraps the master key with
// Settings.KeyID. The key must exist on the server, be active and be
// usable by the client certificate for Encrypt and Decrypt.
type NewKMS struct {
	Settings KMSSettings
	Ctx      context.Context
	Timeout  time.Duration
}

func (KMS) SlotType() SlotType    { return SlotKMS }
func (NewKMS) SlotType() SlotType { return SlotKMS }

func ctxOr(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// sealedLen is nonce (12) + master key (32) + GCM tag (16).
const sealedLen = 12 + masterKeySize + 16

func (n NewKMS) wrap(volumeID, master []byte, s *Slot) error {
	if err := n.Settings.Validate(); err != nil {
		return err
	}
	c, signer, err := n.Settings.client(n.Timeout)
	if err != nil {
		return err
	}
	fp, err := publicKeyFingerprint(signer.Public())
	if err != nil {
		return err
	}
	s.KMS = &KMSRef{KMSSettings: n.Settings, ClientKey: fp}
	ctx := ctxOr(n.Ctx)
	ad := slotAD(volumeID, s)
	sealed, err := c.Encrypt(ctx, n.Settings.KeyID, master, ad)
	if err != nil {
		return &KMSError{URL: n.Settings.URL, Err: err}
	}
	// Check now that the key also decrypts (usage mask, owner), not at
	// the next boot.
	back, err := c.Decrypt(ctx, n.Settings.KeyID, sealed, ad)
	if err != nil {
		return &KMSError{URL: n.Settings.URL, Err: err}
	}
	ok := subtle.ConstantTimeCompare(back, master) == 1
	clear(back)
	if !ok {
		return &KMSError{URL: n.Settings.URL, Err: errors.New("the key server decrypted the master key to other bytes")}
	}
	w := append(append(append([]byte{}, sealed.Nonce...), sealed.Ciphertext...), sealed.Tag...)
	if len(w) != sealedLen {
		return fmt.Errorf("the key server answered %d bytes of wrapped key, want %d", len(w), sealedLen)
	}
	sig, err := kmsSign(signer, kmsSigned(volumeID, s, w))
	if err != nil {
		return err
	}
	s.KMS.Signature = base64.StdEncoding.EncodeToString(sig)
	s.Wrapped = base64.StdEncoding.EncodeToString(w)
	return nil
}

func (k KMS) unwrap(volumeID []byte, s *Slot) ([]byte, error) {
	master, err := k.open(volumeID, s)
	if err != nil {
		return nil, &KMSError{Slot: s.ID, URL: s.KMS.URL, Err: err}
	}
	return master, nil
}

// errKMSSlotChanged: the slot's signature does not verify.
var errKMSSlotChanged = errors.New("the slot does not verify with the client key: it was changed outside mysecure")

func (k KMS) open(volumeID []byte, s *Slot) ([]byte, error) {
	c, signer, err := s.KMS.client(k.Timeout)
	if err != nil {
		return nil, err
	}
	fp, err := publicKeyFingerprint(signer.Public())
	if err != nil {
		return nil, err
	}
	if fp != s.KMS.ClientKey {
		return nil, fmt.Errorf("the client key %s is %s, the slot was made with %s (a renewed certificate with a new key needs a new slot: 'mysecure key add --type kms')", s.KMS.Key, fp, s.KMS.ClientKey)
	}
	w, err := base64.StdEncoding.DecodeString(s.Wrapped)
	if err != nil || len(w) != sealedLen {
		return nil, errKMSSlotChanged
	}
	sig, err := base64.StdEncoding.DecodeString(s.KMS.Signature)
	if err != nil || !kmsVerify(signer.Public(), kmsSigned(volumeID, s, w), sig) {
		return nil, errKMSSlotChanged
	}
	sealed := kmip.Sealed{Nonce: w[:12], Ciphertext: w[12 : 12+masterKeySize], Tag: w[12+masterKeySize:]}
	master, err := c.Decrypt(ctxOr(k.Ctx), s.KMS.KeyID, sealed, slotAD(volumeID, s))
	if err != nil {
		return nil, err
	}
	if len(master) != masterKeySize {
		clear(master)
		return nil, fmt.Errorf("the key server answered a %d-byte key", len(master))
	}
	return master, nil
}

// KMSSlots returns the IDs of the volume's kms slots.
func (v *Volume) KMSSlots() []int {
	var ids []int
	for _, s := range v.Config.Slots {
		if s.Type == SlotKMS {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// CheckKMSSlot asks slot id's key server to unwrap it and compares the
// result with the unlocked master key: nil when the slot still opens the
// volume, a *KMSError saying why not otherwise.
func (v *Volume) CheckKMSSlot(k *Keys, id int, c KMS) error {
	i := v.slotIndex(id)
	if i < 0 {
		return fmt.Errorf("%w: %d", ErrNoSuchSlot, id)
	}
	s := &v.Config.Slots[i]
	if s.Type != SlotKMS {
		return fmt.Errorf("slot %d is a %s slot, not kms", id, s.Type)
	}
	master, err := c.unwrap(k.volumeID, s)
	if err != nil {
		return err
	}
	defer clear(master)
	if subtle.ConstantTimeCompare(master, k.master) != 1 {
		return &KMSError{Slot: id, URL: s.KMS.URL, Err: errors.New("the key server unwrapped another master key")}
	}
	return nil
}

func (r *KMSRef) validate() error {
	if err := r.KMSSettings.Validate(); err != nil {
		return err
	}
	if !strings.HasPrefix(r.ClientKey, "SHA256:") {
		return errors.New("bad client key fingerprint")
	}
	if _, err := base64.StdEncoding.DecodeString(r.Signature); err != nil || r.Signature == "" {
		return errors.New("bad signature")
	}
	return nil
}

// SlotCheck is one key slot's result of VerifySlots.
type SlotCheck struct {
	ID   int
	Type SlotType
	// State is what the check found; Err says why for SlotFails.
	State SlotState
	Err   error
}

// SlotState is what VerifySlots found out about a slot.
type SlotState int

const (
	// SlotUnchecked: checking it needs its secret (passphrase, RSA key,
	// key file), which the caller did not give.
	SlotUnchecked SlotState = iota
	// SlotUnlocked: the slot the keys were unlocked with.
	SlotUnlocked
	// SlotUnwrapped: a kms slot its key server unwrapped to the master key.
	SlotUnwrapped
	// SlotFails: a kms slot that does not open the volume (Err).
	SlotFails
)

// VerifySlots checks, slot by slot, whether each still opens the volume
// as far as the unlocked keys k allow: the slot k came from, and every
// kms slot through its key server (c). The error, when kms slots fail,
// counts them and wraps the first failure.
func (v *Volume) VerifySlots(k *Keys, c KMS) ([]SlotCheck, error) {
	var out []SlotCheck
	var failed []error
	kmsSlots := 0
	for _, s := range v.Config.Slots {
		sc := SlotCheck{ID: s.ID, Type: s.Type}
		if s.Type == SlotKMS {
			kmsSlots++
		}
		switch {
		case s.ID == k.SlotID():
			sc.State = SlotUnlocked
		case s.Type == SlotKMS:
			if err := v.CheckKMSSlot(k, s.ID, c); err != nil {
				failed = append(failed, err)
				sc.State, sc.Err = SlotFails, err
			} else {
				sc.State = SlotUnwrapped
			}
		}
		out = append(out, sc)
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("%d of %d kms slots do not open the volume: %w", len(failed), kmsSlots, failed[0])
	}
	return out, nil
}
