// Package content implements the mysecure file content format: a fixed
// header followed by 4 KiB plaintext blocks, each sealed with AES-256-GCM
// under a fresh random 128-bit nonce and bound to its block number and to
// the file header.
//
// The package knows nothing about volumes, categories or the mount: it
// receives a Key and a backing file. It never prints and never panics on
// bad input; corrupt or tampered data is reported as a *CorruptError.
//
// The byte layout is documented in docs/format.md; change it only with a
// new format version.
package content

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
)

const (
	// Version is the newest content format version, the one File writes:
	// version 2 files may hold holes (an all-zero stored block reads as a
	// block of zeros, docs/format.md). Version 1 files never do; the
	// stream Writer, which never leaves holes, still writes version 1 so
	// that older builds read its output.
	Version = 2

	// VersionNoHoles is the first content format version: no holes.
	VersionNoHoles = 1

	// HeaderSize is the size of the file header in bytes.
	HeaderSize = 32

	// BlockSize is the plaintext size of one full block.
	BlockSize = 4096

	// NonceSize is the size of the random per-block GCM nonce.
	NonceSize = 16

	// TagSize is the size of the GCM authentication tag.
	TagSize = 16

	// BlockOverhead is what each stored block adds to its plaintext.
	BlockOverhead = NonceSize + TagSize

	// CipherBlockSize is the stored size of one full block.
	CipherBlockSize = BlockSize + BlockOverhead

	// FileIDSize is the size of the random file ID in the header.
	FileIDSize = 16

	// KeyIDSize is the size of the key ID in the header.
	KeyIDSize = 8
)

// magic starts every encrypted file: "MYSEC" and a NUL.
var magic = [6]byte{'M', 'Y', 'S', 'E', 'C', 0}

// Header is the fixed 32-byte start of every non-empty encrypted file.
//
//	offset size field
//	0      6    magic "MYSEC\x00"
//	6      2    format version, big endian (1)
//	8      16   file ID, random
//	24     8    key ID: identifies the category key that sealed the blocks
type Header struct {
	Version uint16
	FileID  [FileIDSize]byte
	KeyID   [KeyIDSize]byte
}

// NewHeader returns a header for a new file sealed with key ID keyID.
func NewHeader(keyID [KeyIDSize]byte) (Header, error) {
	return newHeader(Version, keyID)
}

func newHeader(version uint16, keyID [KeyIDSize]byte) (Header, error) {
	h := Header{Version: version, KeyID: keyID}
	if _, err := rand.Read(h.FileID[:]); err != nil {
		return Header{}, fmt.Errorf("failed to generate file ID: %w", err)
	}
	return h, nil
}

// Marshal returns the 32 header bytes.
func (h Header) Marshal() []byte {
	b := make([]byte, HeaderSize)
	copy(b[0:6], magic[:])
	binary.BigEndian.PutUint16(b[6:8], h.Version)
	copy(b[8:24], h.FileID[:])
	copy(b[24:32], h.KeyID[:])
	return b
}

// ParseHeader parses and checks the 32 header bytes. It reports a bad magic
// or an unknown version; it cannot tell whether the header was altered
// (block authentication does that, since every block binds the header).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("header is %d bytes, want %d", len(b), HeaderSize)
	}
	if !bytes.Equal(b[0:6], magic[:]) {
		return Header{}, fmt.Errorf("not a mysecure encrypted file (bad magic)")
	}
	var h Header
	h.Version = binary.BigEndian.Uint16(b[6:8])
	if h.Version < VersionNoHoles || h.Version > Version {
		return Header{}, fmt.Errorf("unsupported content format version %d (this build reads %d to %d)", h.Version, VersionNoHoles, Version)
	}
	copy(h.FileID[:], b[8:24])
	copy(h.KeyID[:], b[24:32])
	return h, nil
}

// MaxSize is the largest plaintext size the format can describe: its
// stored size still fits a signed 64-bit offset. Larger sizes are EFBIG;
// the store's filesystem usually allows less (16 TiB on ext4 with 4 KiB
// blocks) and answers EFBIG itself.
const MaxSize = (math.MaxInt64 - HeaderSize) / CipherBlockSize * BlockSize

// holesAllowed reports whether the file with header bytes hdr may hold
// holes (version 2 and later).
func holesAllowed(hdr []byte) bool {
	return len(hdr) >= 8 && binary.BigEndian.Uint16(hdr[6:8]) >= 2
}

// PlainSize returns the plaintext size of an encrypted file of cipherSize
// bytes. A file of 0 bytes or of just a header holds no plaintext. A size
// that cannot result from the format (a header cut short, a last block
// with no room for a byte) is an error.
func PlainSize(cipherSize int64) (int64, error) {
	if cipherSize == 0 {
		return 0, nil
	}
	if cipherSize < HeaderSize {
		return 0, fmt.Errorf("file is %d bytes, shorter than the %d-byte header", cipherSize, HeaderSize)
	}
	body := cipherSize - HeaderSize
	full := body / CipherBlockSize
	rest := body % CipherBlockSize
	if rest == 0 {
		return full * BlockSize, nil
	}
	if rest <= BlockOverhead {
		return 0, fmt.Errorf("last block is %d bytes, too short to hold data (truncated inside a block)", rest)
	}
	return full*BlockSize + rest - BlockOverhead, nil
}

// CipherSize returns the encrypted size of a file of plainSize bytes,
// header included (a header is always written).
func CipherSize(plainSize int64) int64 {
	full := plainSize / BlockSize
	rest := plainSize % BlockSize
	n := int64(HeaderSize) + full*CipherBlockSize
	if rest > 0 {
		n += rest + BlockOverhead
	}
	return n
}
