package volume

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// SlotType names how a key slot wraps the master key.
type SlotType string

const (
	// SlotPassphrase: Argon2id of the passphrase and the salt secret.
	SlotPassphrase SlotType = "passphrase"
	// SlotRSA: RSA-OAEP-SHA256 to a public key.
	SlotRSA SlotType = "rsa"
	// SlotKeyFile: HKDF of a 32-byte secret kept in a root-only file.
	SlotKeyFile SlotType = "keyfile"
	// SlotKMS: AES-256-GCM by a KMIP key server (kms.go).
	SlotKMS SlotType = "kms"
)

// Slot is one wrapping of the master key. The wrapped bytes authenticate
// the slot's ID and type, so a slot cannot be moved or relabelled.
type Slot struct {
	ID      int      `json:"id"`
	Type    SlotType `json:"type"`
	Created string   `json:"created"`
	Label   string   `json:"label,omitempty"`
	// KDF parameters (passphrase slots).
	KDF *KDFParams `json:"kdf,omitempty"`
	// Salt is the random KDF salt (passphrase and keyfile slots); it is not
	// the user's "salt" secret, which is never stored.
	Salt string `json:"salt,omitempty"`
	// RSAFingerprint is "SHA256:" + base64 of the SHA-256 of the public
	// key's PKIX DER (rsa slots).
	RSAFingerprint string `json:"rsa_fingerprint,omitempty"`
	// KeyFileHint is where the key file was when the slot was made.
	KeyFileHint string `json:"keyfile_hint,omitempty"`
	// KMS is the key server, key and client certificate (kms slots).
	KMS *KMSRef `json:"kms,omitempty"`
	// Wrapped is the wrapped master key: nonce||AES-256-GCM for passphrase,
	// keyfile and kms slots, the OAEP ciphertext for rsa slots.
	Wrapped string `json:"wrapped"`
}

// KDFParams are Argon2id parameters.
type KDFParams struct {
	Alg       string `json:"alg"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDF is what new passphrase slots use: about a second and 256 MiB
// on a small server (measured in docs/performance.md).
var DefaultKDF = KDFParams{Alg: "argon2id", Time: 3, MemoryKiB: 256 * 1024, Threads: 4}

// Limits on KDF parameters read from a config: a modified config must not
// make Unlock eat all memory or time.
const (
	maxKDFMemoryKiB = 4 * 1024 * 1024
	maxKDFTime      = 64
)

func (p *KDFParams) validate() error {
	switch {
	case p.Alg != "argon2id":
		return fmt.Errorf("unknown kdf %q", p.Alg)
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("kdf time %d out of range 1..%d", p.Time, maxKDFTime)
	case p.Threads < 1:
		return errors.New("kdf threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("kdf memory %d KiB out of range %d..%d", p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

// MaxSlots bounds the key slots of a volume (unlock may try each).
const MaxSlots = 32

// Detail names the slot's credential for a listing: the KDF parameters
// of a passphrase slot, the fingerprint of an rsa slot, where the key
// file of a keyfile slot was made, the key server and key of a kms slot.
// It is read from the config, which an rsa or kms unlock does not
// authenticate: escape it before it reaches a terminal.
func (s *Slot) Detail() string {
	switch s.Type {
	case SlotPassphrase:
		if s.KDF != nil {
			return fmt.Sprintf("argon2id t=%d m=%dMiB p=%d", s.KDF.Time, s.KDF.MemoryKiB/1024, s.KDF.Threads)
		}
	case SlotRSA:
		return s.RSAFingerprint
	case SlotKeyFile:
		return s.KeyFileHint
	case SlotKMS:
		if s.KMS != nil {
			return s.KMS.URL + " key " + s.KMS.KeyID
		}
	}
	return ""
}

func (s *Slot) validate(c *Config) error {
	if s.ID < 1 || s.ID > 1<<20 {
		return errors.New("bad id")
	}
	if _, err := base64.StdEncoding.DecodeString(s.Wrapped); err != nil {
		return errors.New("bad wrapped key")
	}
	switch s.Type {
	case SlotPassphrase:
		if s.KDF == nil {
			return errors.New("no kdf parameters")
		}
		if err := s.KDF.validate(); err != nil {
			return err
		}
		if salt, err := base64.StdEncoding.DecodeString(s.Salt); err != nil || len(salt) < 16 {
			return errors.New("bad salt")
		}
	case SlotKeyFile:
		if salt, err := base64.StdEncoding.DecodeString(s.Salt); err != nil || len(salt) < 16 {
			return errors.New("bad salt")
		}
	case SlotRSA:
		if s.RSAFingerprint == "" {
			return errors.New("no rsa fingerprint")
		}
	case SlotKMS:
		if !slices.Contains(c.Features, FeatureSlotKMS) {
			return fmt.Errorf("kms slot without feature %q", FeatureSlotKMS)
		}
		if s.KMS == nil {
			return errors.New("no kms settings")
		}
		if err := s.KMS.validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown slot type %q", s.Type)
	}
	return nil
}

// slotAD is the additional data binding a wrapped key to its volume, slot
// ID and type.
func slotAD(volumeID []byte, s *Slot) []byte {
	ad := []byte("mysecure slot v1\x00")
	ad = append(ad, volumeID...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(s.ID))
	return append(ad, s.Type...)
}

// A Credential opens key slots of one type.
type Credential interface {
	// SlotType is the type of slot the credential can open.
	SlotType() SlotType
	// unwrap returns the master key from s, or an error if it does not fit.
	unwrap(volumeID []byte, s *Slot) ([]byte, error)
}

// A NewCredential wraps the master key into a new slot.
type NewCredential interface {
	SlotType() SlotType
	wrap(volumeID, master []byte, s *Slot) error
}

// Passphrase is the two-part secret of passphrase slots: the passphrase and
// a second secret the seed product calls the salt. Both are needed.
type Passphrase struct {
	Passphrase []byte
	Salt       []byte
}

// NewPassphrase makes a passphrase slot with KDF parameters KDF
// (DefaultKDF when zero).
type NewPassphrase struct {
	Passphrase
	KDF KDFParams
}

// KeyFile is the secret read from a key file.
type KeyFile struct {
	Secret []byte
}

// NewKeyFile makes a keyfile slot for Secret; Path is recorded as a hint.
type NewKeyFile struct {
	KeyFile
	Path string
}

// RSAPrivateKey opens rsa slots.
type RSAPrivateKey struct {
	Key *rsa.PrivateKey
}

// NewRSA makes an rsa slot wrapped to Public.
type NewRSA struct {
	Public *rsa.PublicKey
}

func (Passphrase) SlotType() SlotType    { return SlotPassphrase }
func (NewPassphrase) SlotType() SlotType { return SlotPassphrase }
func (KeyFile) SlotType() SlotType       { return SlotKeyFile }
func (NewKeyFile) SlotType() SlotType    { return SlotKeyFile }
func (RSAPrivateKey) SlotType() SlotType { return SlotRSA }
func (NewRSA) SlotType() SlotType        { return SlotRSA }

// Wipe zeroes the secrets.
func (p *Passphrase) Wipe() { clear(p.Passphrase); clear(p.Salt) }

// Wipe zeroes the secret.
func (k *KeyFile) Wipe() { clear(k.Secret) }

// argonParts is the Argon2id password, in parts: the two secrets encoded
// unambiguously, each after its length (uint32, big endian). The parts
// share the secrets' memory (no copy of them).
func (p Passphrase) argonParts() [][]byte {
	return [][]byte{binary.BigEndian.AppendUint32(nil, uint32(len(p.Passphrase))), p.Passphrase,
		binary.BigEndian.AppendUint32(nil, uint32(len(p.Salt))), p.Salt}
}

// IDKeyFunc computes Argon2id as argon2.IDKey does, of the password given
// in parts (concatenated), or fails. It must not keep or change the parts
// and salt. Parts spare a long-lived process a copy of the secret
// (internal/kdfchild writes each straight to a pipe).
type IDKeyFunc func(password [][]byte, salt []byte, time, memoryKiB uint32, threads uint8, keyLen uint32) ([]byte, error)

var idKey atomic.Pointer[IDKeyFunc]

// SetArgon2 makes f compute every Argon2id of passphrase slots in this
// process; nil restores golang.org/x/crypto/argon2 in this process.
// cmd/mysecure sets internal/kdfchild's, which runs it in a short-lived
// child process: argon2 leaves its input (the passphrase and salt) in a
// hash state it never clears, which must not stay in the mount daemon's
// memory (docs/threat-model.md).
func SetArgon2(f IDKeyFunc) {
	if f == nil {
		idKey.Store(nil)
		return
	}
	idKey.Store(&f)
}

func (p Passphrase) kek(s *Slot) ([]byte, error) {
	salt, err := base64.StdEncoding.DecodeString(s.Salt)
	if err != nil {
		return nil, err
	}
	k := s.KDF
	var kek []byte
	if f := idKey.Load(); f != nil {
		kek, err = (*f)(p.argonParts(), salt, k.Time, k.MemoryKiB, k.Threads, 32)
	} else {
		in := slices.Concat(p.argonParts()...)
		defer clear(in)
		kek = argon2.IDKey(in, salt, k.Time, k.MemoryKiB, k.Threads, 32)
	}
	if err != nil {
		return nil, fmt.Errorf("%w of slot %d: %w", errKDF, s.ID, err)
	}
	return kek, nil
}

// errKDF: Argon2id could not be computed (its child process failed).
// Unlock reports it rather than trying the next slot: it says nothing
// about the passphrase.
var errKDF = errors.New("failed to derive the key")

// SlotKey opens one passphrase slot with its key-encryption key: the
// Argon2id output that the passphrase and salt give for that slot. With it
// a process that derived the key (the CLI) proves the master credential to
// another (the mount daemon) without handing over the passphrase and salt;
// Volume.PassphraseSlotKey derives it.
type SlotKey struct {
	Slot int
	Key  []byte
}

func (SlotKey) SlotType() SlotType { return SlotPassphrase }

// Wipe zeroes the key.
func (k *SlotKey) Wipe() { clear(k.Key) }

func (k SlotKey) unwrap(volumeID []byte, s *Slot) ([]byte, error) {
	if s.ID != k.Slot || len(k.Key) != 32 {
		return nil, ErrIncorrectCredentials
	}
	return gcmUnwrap(k.Key, volumeID, s)
}

// PassphraseSlotKey returns the key of the first passphrase slot that p
// opens, or ErrIncorrectCredentials (as Unlock words it) when p opens none.
// It does not check the config MAC: the receiver of the key unlocks with
// it, which does.
func (v *Volume) PassphraseSlotKey(p Passphrase) (*SlotKey, error) {
	id := v.Config.volumeID()
	tried := false
	for i := range v.Config.Slots {
		s := &v.Config.Slots[i]
		if s.Type != SlotPassphrase {
			continue
		}
		tried = true
		kek, err := p.kek(s)
		if errors.Is(err, errKDF) {
			return nil, err
		}
		if err != nil {
			continue
		}
		master, err := gcmUnwrap(kek, id, s)
		if err != nil {
			clear(kek)
			continue
		}
		clear(master)
		return &SlotKey{Slot: s.ID, Key: kek}, nil
	}
	if !tried {
		return nil, noSlotError(SlotPassphrase)
	}
	return nil, ErrIncorrectCredentials
}

func noSlotError(t SlotType) error {
	return fmt.Errorf("%w: the volume has no %s key slot", ErrIncorrectCredentials, t)
}

func (p Passphrase) unwrap(volumeID []byte, s *Slot) ([]byte, error) {
	kek, err := p.kek(s)
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	return gcmUnwrap(kek, volumeID, s)
}

func (n NewPassphrase) wrap(volumeID, master []byte, s *Slot) error {
	if len(n.Passphrase.Passphrase) == 0 {
		return errors.New("empty passphrase")
	}
	if len(n.Salt) == 0 {
		return errors.New("empty salt")
	}
	kdf := n.KDF
	if kdf == (KDFParams{}) {
		kdf = DefaultKDF
	}
	if err := kdf.validate(); err != nil {
		return err
	}
	s.KDF = &kdf
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	s.Salt = base64.StdEncoding.EncodeToString(salt)
	kek, err := n.Passphrase.kek(s)
	if err != nil {
		return err
	}
	defer clear(kek)
	return gcmWrap(kek, volumeID, master, s)
}

func (k KeyFile) kek(s *Slot) ([]byte, error) {
	salt, err := base64.StdEncoding.DecodeString(s.Salt)
	if err != nil {
		return nil, err
	}
	return hkdf.Key(sha256.New, k.Secret, salt, "mysecure keyfile slot v1", 32)
}

func (k KeyFile) unwrap(volumeID []byte, s *Slot) ([]byte, error) {
	kek, err := k.kek(s)
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	return gcmUnwrap(kek, volumeID, s)
}

func (n NewKeyFile) wrap(volumeID, master []byte, s *Slot) error {
	if len(n.Secret) < KeyFileSecretSize {
		return fmt.Errorf("key file secret is %d bytes, want at least %d", len(n.Secret), KeyFileSecretSize)
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	s.Salt = base64.StdEncoding.EncodeToString(salt)
	s.KeyFileHint = n.Path
	kek, err := n.KeyFile.kek(s)
	if err != nil {
		return err
	}
	defer clear(kek)
	return gcmWrap(kek, volumeID, master, s)
}

func (r RSAPrivateKey) unwrap(volumeID []byte, s *Slot) ([]byte, error) {
	fp, err := RSAFingerprint(&r.Key.PublicKey)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(fp), []byte(s.RSAFingerprint)) != 1 {
		return nil, ErrIncorrectCredentials
	}
	ct, err := base64.StdEncoding.DecodeString(s.Wrapped)
	if err != nil {
		return nil, err
	}
	master, err := rsa.DecryptOAEP(sha256.New(), nil, r.Key, ct, slotAD(volumeID, s))
	if err != nil || len(master) != masterKeySize {
		return nil, ErrIncorrectCredentials
	}
	return master, nil
}

func (n NewRSA) wrap(volumeID, master []byte, s *Slot) error {
	if n.Public.N.BitLen() < MinRSABits {
		return fmt.Errorf("RSA key is %d bits, want at least %d", n.Public.N.BitLen(), MinRSABits)
	}
	fp, err := RSAFingerprint(n.Public)
	if err != nil {
		return err
	}
	s.RSAFingerprint = fp
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, n.Public, master, slotAD(volumeID, s))
	if err != nil {
		return fmt.Errorf("failed to wrap to RSA key: %w", err)
	}
	s.Wrapped = base64.StdEncoding.EncodeToString(ct)
	return nil
}

func gcmWrap(kek, volumeID, master []byte, s *Slot) error {
	aead, err := newGCM(kek)
	if err != nil {
		return err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	out := aead.Seal(nonce, nonce, master, slotAD(volumeID, s))
	s.Wrapped = base64.StdEncoding.EncodeToString(out)
	return nil
}

func gcmUnwrap(kek, volumeID []byte, s *Slot) ([]byte, error) {
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	w, err := base64.StdEncoding.DecodeString(s.Wrapped)
	if err != nil || len(w) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrIncorrectCredentials
	}
	ns := aead.NonceSize()
	master, err := aead.Open(nil, w[:ns], w[ns:], slotAD(volumeID, s))
	if err != nil || len(master) != masterKeySize {
		return nil, ErrIncorrectCredentials
	}
	return master, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Unlock opens the master key with c, trying every slot of c's type, then
// checks the config MAC. A credential that opens no slot gives
// ErrIncorrectCredentials (for KMS, a *KMSUnlockError that wraps it and
// says why each kms slot failed); a config whose MAC fails gives
// ErrTampered.
func (v *Volume) Unlock(c Credential) (*Keys, error) {
	id := v.Config.volumeID()
	tried := false
	var kmsErrs []*KMSError
	for i := range v.Config.Slots {
		s := &v.Config.Slots[i]
		if s.Type != c.SlotType() {
			continue
		}
		tried = true
		master, err := c.unwrap(id, s)
		if errors.Is(err, errKDF) {
			return nil, err
		}
		if err != nil {
			var ke *KMSError
			if errors.As(err, &ke) {
				kmsErrs = append(kmsErrs, ke)
			}
			continue
		}
		k := newKeys(master, &v.Config, s.ID)
		k.slotType = s.Type
		k.masterCred = isMasterSlot(s.Type)
		if err := v.verifyMAC(k); err != nil {
			k.Wipe()
			return nil, err
		}
		return k, nil
	}
	if !tried {
		return nil, noSlotError(c.SlotType())
	}
	if len(kmsErrs) > 0 {
		return nil, &KMSUnlockError{Slots: kmsErrs}
	}
	return nil, ErrIncorrectCredentials
}

// AddSlot wraps the unlocked master key with c into a new slot and saves
// the config. It returns the new slot's ID. k must come from a master
// credential (ErrNotMasterCredential otherwise). When it fails, the key
// file of a NewKeyFile is removed (it would open nothing).
func (v *Volume) AddSlot(k *Keys, c NewCredential, label string) (int, error) {
	id, err := v.addSlotSaved(k, c, label)
	if err != nil {
		discardKeyFiles(c)
	}
	return id, err
}

// discardKeyFiles removes the key files of the NewKeyFile credentials
// among creds, made for slots that were not created.
func discardKeyFiles(creds ...NewCredential) {
	for _, c := range creds {
		switch kf := c.(type) {
		case NewKeyFile:
			if kf.Path != "" {
				os.Remove(kf.Path)
			}
		case *NewKeyFile:
			if kf != nil && kf.Path != "" {
				os.Remove(kf.Path)
			}
		}
	}
}

func (v *Volume) addSlotSaved(k *Keys, c NewCredential, label string) (int, error) {
	if err := k.RequireMaster(); err != nil {
		return 0, err
	}
	features := slices.Clone(v.Config.Features)
	id, err := v.addSlot(k, c, time.Now())
	if err != nil {
		return 0, err
	}
	v.Config.Slots[len(v.Config.Slots)-1].Label = label
	if err := v.save(k); err != nil {
		v.Config.Slots = v.Config.Slots[:len(v.Config.Slots)-1]
		v.Config.Features = features
		return 0, err
	}
	return id, nil
}

func (v *Volume) addSlot(k *Keys, c NewCredential, now time.Time) (int, error) {
	if len(v.Config.Slots) >= MaxSlots {
		return 0, fmt.Errorf("the volume has %d key slots, the most allowed", MaxSlots)
	}
	next := 1
	for _, s := range v.Config.Slots {
		if s.ID >= next {
			next = s.ID + 1
		}
	}
	s := Slot{ID: next, Type: c.SlotType(), Created: now.UTC().Format(time.RFC3339)}
	if err := c.wrap(k.volumeID, k.master, &s); err != nil {
		return 0, fmt.Errorf("failed to create %s key slot: %w", s.Type, err)
	}
	if c.SlotType() == SlotRSA {
		for _, o := range v.Config.Slots {
			if o.Type == SlotRSA && o.RSAFingerprint == s.RSAFingerprint {
				return 0, fmt.Errorf("slot %d already holds RSA key %s", o.ID, s.RSAFingerprint)
			}
		}
	}
	if s.Type == SlotKMS && !slices.Contains(v.Config.Features, FeatureSlotKMS) {
		v.Config.Features = append(v.Config.Features, FeatureSlotKMS)
	}
	v.Config.Slots = append(v.Config.Slots, s)
	return s.ID, nil
}

// RemoveSlot deletes slot id and saves the config. The last slot cannot be
// removed. k must come from a master credential (ErrNotMasterCredential
// otherwise).
func (v *Volume) RemoveSlot(k *Keys, id int) error {
	if err := k.RequireMaster(); err != nil {
		return err
	}
	i := v.slotIndex(id)
	if i < 0 {
		return fmt.Errorf("%w: %d", ErrNoSuchSlot, id)
	}
	if len(v.Config.Slots) == 1 {
		return ErrLastSlot
	}
	if isMasterSlot(v.Config.Slots[i].Type) {
		masters := 0
		for _, s := range v.Config.Slots {
			if isMasterSlot(s.Type) {
				masters++
			}
		}
		if masters == 1 {
			return fmt.Errorf("%w with a master credential (slot %d): what remains could mount but never manage the volume", ErrLastSlot, id)
		}
	}
	old := v.Config.Slots
	v.Config.Slots = append(append([]Slot(nil), old[:i]...), old[i+1:]...)
	if err := v.save(k); err != nil {
		v.Config.Slots = old
		return err
	}
	return nil
}

// ReplaceSlot re-wraps slot id with c (of the same type), keeping its ID
// and label: how a passphrase is changed. Data is never re-encrypted. k
// must come from a master credential (ErrNotMasterCredential otherwise).
func (v *Volume) ReplaceSlot(k *Keys, id int, c NewCredential) error {
	if err := k.RequireMaster(); err != nil {
		return err
	}
	i := v.slotIndex(id)
	if i < 0 {
		return fmt.Errorf("%w: %d", ErrNoSuchSlot, id)
	}
	old := v.Config.Slots[i]
	if old.Type != c.SlotType() {
		return fmt.Errorf("slot %d is a %s slot, not %s", id, old.Type, c.SlotType())
	}
	s := Slot{ID: old.ID, Type: old.Type, Created: time.Now().UTC().Format(time.RFC3339), Label: old.Label}
	if err := c.wrap(k.volumeID, k.master, &s); err != nil {
		return fmt.Errorf("failed to re-wrap slot %d: %w", id, err)
	}
	v.Config.Slots[i] = s
	if err := v.save(k); err != nil {
		v.Config.Slots[i] = old
		return err
	}
	return nil
}

func (v *Volume) slotIndex(id int) int {
	for i, s := range v.Config.Slots {
		if s.ID == id {
			return i
		}
	}
	return -1
}
