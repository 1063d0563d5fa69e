package volume

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/names"
	"github.com/mysecure/mysecure/internal/secmem"
)

const masterKeySize = 32

// Purposes of HKDF subkeys. Each subkey is
//
//	HKDF-SHA256(secret = master key, salt = volume ID,
//	            info = "mysecure/v1/" + purpose + "/" + category)
//
// so keys of different purposes or categories are independent.
const (
	PurposeContent   = "content"
	PurposeNames     = "names"
	PurposeKeyID     = "key-id"
	PurposeConfigMAC = "config-mac"
	PurposeRules     = "rules"
	PurposeCatalog   = "catalog"
)

// Keys holds an unlocked master key and derives subkeys. Call Wipe when
// done with it. The master key sits on pages of its own, locked into RAM
// and left out of core dumps (internal/secmem); the subkeys derived from
// it are the caller's, and the ciphers made from them (AES key schedules,
// HMAC states) are ordinary heap memory (docs/threat-model.md).
type Keys struct {
	master   []byte
	mem      *secmem.Buffer // holds master; nil if it could not be mapped
	volumeID []byte
	// cats are the categories of the config the keys were opened with,
	// replaced (never changed in place) when a category is added or
	// removed: a running daemon derives keys while that happens.
	cats     atomic.Pointer[[]string]
	slotID   int
	slotType SlotType
	// masterCred: the keys were opened by a master credential (passphrase
	// and salt, RSA private key) or made by Create. Only then may they
	// change key slots.
	masterCred bool
}

// newKeys moves master (which it clears) to locked memory.
func newKeys(master []byte, c *Config, slotID int) *Keys {
	k := &Keys{master: master, volumeID: c.volumeID(), slotID: slotID}
	if mem, err := secmem.New(len(master)); err == nil {
		copy(mem.Bytes(), master)
		clear(master)
		k.master, k.mem = mem.Bytes(), mem
	}
	k.setCategories(c.Categories)
	return k
}

// MemoryLockError says why the master key's pages could not be locked
// into RAM in this process (the first such failure), or nil.
func MemoryLockError() error { return secmem.LockError() }

func (k *Keys) setCategories(cats []string) {
	c := slices.Clone(cats)
	k.cats.Store(&c)
}

// hasCategory reports whether the keys' config has category name.
func (k *Keys) hasCategory(name string) bool {
	c := k.cats.Load()
	return c != nil && slices.Contains(*c, name)
}

// SlotID is the key slot that unlocked the volume (0 for a new volume
// before its first slot was written).
func (k *Keys) SlotID() int { return k.slotID }

// ConfigAuthenticated reports whether the unlock also proved the config
// genuine. A passphrase or key file proves it: only the holder of the
// secret could have wrapped the master key. So does a kms slot: it is
// signed with the client certificate's key (kms.go), which unlocking also
// needs. An RSA slot does not: anyone
// with the public key can wrap a master key of their choosing into a
// config of their own, so after an RSA unlock a forged store is possible
// (docs/threat-model.md).
func (k *Keys) ConfigAuthenticated() bool { return k.slotType != SlotRSA }

// IsMaster reports whether the keys were opened with a master credential
// (passphrase and salt, or an RSA private key) or made by Create. Keys
// opened with a key file or a kms slot are not: both exist to mount
// unattended (the secret is on the host: a file, or a client certificate
// that reaches the key server), and must not mint, change or remove the
// credentials that outrank them.
func (k *Keys) IsMaster() bool { return k.masterCred }

// RequireMaster returns nil for master keys and an error wrapping
// ErrNotMasterCredential (naming the slot that opened them) otherwise.
func (k *Keys) RequireMaster() error {
	if k.masterCred {
		return nil
	}
	return fmt.Errorf("%w: key slot %d (%s) may mount and decrypt, not manage key slots, rules or modes", ErrNotMasterCredential, k.slotID, k.slotType)
}

// isMasterSlot reports whether a slot of type t is a master credential:
// passphrase and rsa; never keyfile or kms.
func isMasterSlot(t SlotType) bool { return t == SlotPassphrase || t == SlotRSA }

var knownPurposes = []string{PurposeContent, PurposeNames, PurposeKeyID, PurposeConfigMAC, PurposeRules, PurposeCatalog}

// Subkey derives the 32-byte key for purpose and category ("" where the
// purpose is not per category).
func (k *Keys) Subkey(purpose, category string) ([]byte, error) {
	if k.master == nil {
		return nil, fmt.Errorf("keys were wiped")
	}
	// Only known purposes and valid category names: the info string must
	// be unambiguous ("content"+"/mysql/x" must not equal
	// "content/mysql"+"/x").
	if !slices.Contains(knownPurposes, purpose) {
		return nil, fmt.Errorf("unknown subkey purpose %q", purpose)
	}
	if category != "" && !ValidCategory(category) {
		return nil, fmt.Errorf("bad category name %q", category)
	}
	return hkdf.Key(sha256.New, k.master, k.volumeID, "mysecure/v1/"+purpose+"/"+category, 32)
}

func (k *Keys) configMAC(body []byte) []byte {
	key, err := k.Subkey(PurposeConfigMAC, "")
	if err != nil {
		return nil
	}
	defer clear(key)
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

// KeyID is the 8-byte ID that files of category carry in their header, so
// that a file copied out of the store can be matched to its category key.
func (k *Keys) KeyID(category string) ([content.KeyIDSize]byte, error) {
	var id [content.KeyIDSize]byte
	b, err := k.Subkey(PurposeKeyID, category)
	if err != nil {
		return id, err
	}
	copy(id[:], b)
	return id, nil
}

// ContentKey returns the content key of category.
func (k *Keys) ContentKey(category string) (*content.Key, error) {
	if !k.hasCategory(category) {
		return nil, fmt.Errorf("%w @%s", ErrUnknownCategory, category)
	}
	raw, err := k.Subkey(PurposeContent, category)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	id, err := k.KeyID(category)
	if err != nil {
		return nil, err
	}
	return content.NewKey(raw, id)
}

// NamesCipher returns the file-name cipher of category.
func (k *Keys) NamesCipher(category string) (*names.Cipher, error) {
	if !k.hasCategory(category) {
		return nil, fmt.Errorf("%w @%s", ErrUnknownCategory, category)
	}
	raw, err := k.Subkey(PurposeNames, category)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	return names.New(raw)
}

// Keyring returns the content keys of every category, for decrypting a
// file whose category is known only from its header.
func (k *Keys) Keyring() (Keyring, error) {
	r := Keyring{}
	for _, c := range *k.cats.Load() {
		key, err := k.ContentKey(c)
		if err != nil {
			return nil, err
		}
		r[key.ID()] = CategoryKey{Category: c, Key: key}
	}
	return r, nil
}

// CategoryKey is a content key and the category it belongs to.
type CategoryKey struct {
	Category string
	Key      *content.Key
}

// Keyring maps key IDs to the content keys of a volume's categories.
type Keyring map[[content.KeyIDSize]byte]CategoryKey

// KeyByID implements content.Keyring.
func (r Keyring) KeyByID(id [content.KeyIDSize]byte) (*content.Key, bool) {
	ck, ok := r[id]
	return ck.Key, ok
}

// Wipe zeroes the master key. Subkeys handed out are the caller's to wipe.
func (k *Keys) Wipe() {
	clear(k.master)
	k.mem.Free()
	k.master, k.mem = nil, nil
}
