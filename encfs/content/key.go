package content

import (
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
)

// Key seals and opens blocks of one category. It is safe for concurrent
// use. The raw key bytes are not kept: only the AES key schedule inside the
// GCM instance, which Go does not let us wipe (see docs/threat-model.md).
type Key struct {
	aead cipher.AEAD
	id   [KeyIDSize]byte
}

// NewKey builds a Key from 32 bytes of key material and the key ID that
// files sealed with it carry in their header.
func NewKey(raw []byte, id [KeyIDSize]byte) (*Key, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("content key is %d bytes, want 32", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("failed to create AES cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, NonceSize)
	if err != nil {
		return nil, fmt.Errorf("failed to create GCM: %w", err)
	}
	return &Key{aead: aead, id: id}, nil
}

// ID returns the key ID written into headers of files sealed with k.
func (k *Key) ID() [KeyIDSize]byte { return k.id }

// nonceSource hands out 128-bit random nonces read from the kernel's
// CSPRNG (getrandom), one call per batch of blocks rather than per block.
// No userspace generator state is kept, so a cloned VM or a forked process
// cannot repeat nonces (the kernel reseeds on VM fork).
type nonceSource struct{}

func newNonceSource() (*nonceSource, error) { return &nonceSource{}, nil }

// fill writes len(dst)/NonceSize fresh nonces into dst.
func (s *nonceSource) fill(dst []byte) error {
	if _, err := crand.Read(dst); err != nil {
		return fmt.Errorf("failed to read random nonces: %w", err)
	}
	return nil
}

// blockAD returns the additional data for block n of a file with header
// hdr: the block number (8 bytes, big endian) followed by the 32 header
// bytes. Binding the whole header means a changed version, file ID or key
// ID fails every block, and a block moved from another file or position
// fails too.
func blockAD(buf []byte, n int64, hdr []byte) []byte {
	buf = buf[:0]
	buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	return append(buf, hdr...)
}

// sealBlock seals plain as block n into dst (which must have room for
// len(plain)+BlockOverhead bytes) using nonce. It returns the stored block.
func (k *Key) sealBlock(dst, nonce, plain []byte, n int64, hdr []byte, adBuf []byte) []byte {
	copy(dst[:NonceSize], nonce)
	out := k.aead.Seal(dst[NonceSize:NonceSize], nonce, plain, blockAD(adBuf, n, hdr))
	return dst[:NonceSize+len(out)]
}

// openBlock opens stored block n into dst and returns the plaintext.
func (k *Key) openBlock(dst, stored []byte, n int64, hdr []byte, adBuf []byte) ([]byte, error) {
	if len(stored) <= BlockOverhead {
		return nil, fmt.Errorf("block is %d bytes, too short", len(stored))
	}
	nonce := stored[:NonceSize]
	pt, err := k.aead.Open(dst[:0], nonce, stored[NonceSize:], blockAD(adBuf, n, hdr))
	if err != nil && holesAllowed(hdr) && allZero(stored) {
		// A hole (docs/format.md: an all-zero stored block, which no
		// sealing produces but for a 2^-128 chance, reads as zeros).
		pt = dst[:len(stored)-BlockOverhead]
		clear(pt)
		return pt, nil
	}
	return pt, err
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
