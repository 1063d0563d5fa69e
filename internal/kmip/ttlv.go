// Package kmip is the small subset of the OASIS KMIP protocol (TTLV
// encoding over mutual TLS) that mysecure's kms key slot needs: create and
// activate an AES-256 key on the server, and have the server encrypt and
// decrypt a short secret with it (AES-256-GCM with additional data).
//
// It holds no keys of its own and never prints. Decoding is bounded and
// fuzzed: a hostile server cannot make it allocate more than a response's
// length nor recurse without limit.
package kmip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Tag is a KMIP tag (3 bytes on the wire).
type Tag uint32

// Tags used here (KMIP 1.4 spec, section 9.1.3.1).
const (
	TagAttribute                 Tag = 0x420008
	TagAttributeName             Tag = 0x42000A
	TagAttributeValue            Tag = 0x42000B
	TagBatchCount                Tag = 0x42000D
	TagBatchItem                 Tag = 0x42000F
	TagBlockCipherMode           Tag = 0x420011
	TagCryptographicAlgorithm    Tag = 0x420028
	TagCryptographicLength       Tag = 0x42002A
	TagCryptographicParameters   Tag = 0x42002B
	TagCryptographicUsageMask    Tag = 0x42002C
	TagIVCounterNonce            Tag = 0x42003D
	TagObjectType                Tag = 0x420057
	TagOperation                 Tag = 0x42005C
	TagProtocolVersion           Tag = 0x420069
	TagProtocolVersionMajor      Tag = 0x42006A
	TagProtocolVersionMinor      Tag = 0x42006B
	TagRequestHeader             Tag = 0x420077
	TagRequestMessage            Tag = 0x420078
	TagRequestPayload            Tag = 0x420079
	TagResponseHeader            Tag = 0x42007A
	TagResponseMessage           Tag = 0x42007B
	TagResponsePayload           Tag = 0x42007C
	TagResultMessage             Tag = 0x42007D
	TagResultReason              Tag = 0x42007E
	TagResultStatus              Tag = 0x42007F
	TagTemplateAttribute         Tag = 0x420091
	TagUniqueIdentifier          Tag = 0x420094
	TagData                      Tag = 0x4200C2
	TagTagLength                 Tag = 0x4200CE
	TagAuthenticatedEncryptionAD Tag = 0x4200FE
	TagAuthenticatedEncryptionTg Tag = 0x4200FF
)

// Type is a TTLV item type.
type Type byte

// Item types.
const (
	TypeStructure   Type = 0x01
	TypeInteger     Type = 0x02
	TypeLongInteger Type = 0x03
	TypeBigInteger  Type = 0x04
	TypeEnumeration Type = 0x05
	TypeBoolean     Type = 0x06
	TypeTextString  Type = 0x07
	TypeByteString  Type = 0x08
	TypeDateTime    Type = 0x09
	TypeInterval    Type = 0x0A
)

// Item is one TTLV item. A structure has Children; other types keep their
// value in Int (Integer, Enumeration, Interval, Boolean, LongInteger,
// DateTime) or Bytes (strings and big integers).
type Item struct {
	Tag      Tag
	Type     Type
	Int      int64
	Bytes    []byte
	Children []Item
}

// Struct builds a structure.
func Struct(t Tag, children ...Item) Item {
	return Item{Tag: t, Type: TypeStructure, Children: children}
}

// Int32 builds an Integer.
func Int32(t Tag, v int32) Item { return Item{Tag: t, Type: TypeInteger, Int: int64(v)} }

// Enum builds an Enumeration.
func Enum(t Tag, v uint32) Item { return Item{Tag: t, Type: TypeEnumeration, Int: int64(v)} }

// Text builds a Text String.
func Text(t Tag, s string) Item { return Item{Tag: t, Type: TypeTextString, Bytes: []byte(s)} }

// ByteString builds a Byte String.
func ByteString(t Tag, b []byte) Item { return Item{Tag: t, Type: TypeByteString, Bytes: b} }

// Find returns the first child with tag t.
func (it Item) Find(t Tag) (Item, bool) {
	for _, c := range it.Children {
		if c.Tag == t {
			return c, true
		}
	}
	return Item{}, false
}

// Marshal encodes the item.
func (it Item) Marshal() []byte { return it.appendTo(nil) }

func pad8(n int) int { return (n + 7) &^ 7 }

func (it Item) appendTo(b []byte) []byte {
	var hdr [8]byte
	hdr[0], hdr[1], hdr[2] = byte(it.Tag>>16), byte(it.Tag>>8), byte(it.Tag)
	hdr[3] = byte(it.Type)
	switch it.Type {
	case TypeStructure:
		b = append(b, hdr[:]...)
		start := len(b)
		for _, c := range it.Children {
			b = c.appendTo(b)
		}
		binary.BigEndian.PutUint32(b[start-4:start], uint32(len(b)-start))
		return b
	case TypeInteger, TypeEnumeration, TypeInterval:
		binary.BigEndian.PutUint32(hdr[4:], 4)
		b = append(b, hdr[:]...)
		var v [8]byte
		binary.BigEndian.PutUint32(v[:4], uint32(it.Int))
		return append(b, v[:]...)
	case TypeLongInteger, TypeDateTime, TypeBoolean:
		binary.BigEndian.PutUint32(hdr[4:], 8)
		b = append(b, hdr[:]...)
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(it.Int))
		return append(b, v[:]...)
	default: // strings, big integers
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(it.Bytes)))
		b = append(b, hdr[:]...)
		b = append(b, it.Bytes...)
		return append(b, make([]byte, pad8(len(it.Bytes))-len(it.Bytes))...)
	}
}

// ErrMalformed is a TTLV encoding this package does not accept.
var ErrMalformed = errors.New("kmip: malformed TTLV")

// maxDepth bounds structure nesting in decoded messages.
const maxDepth = 16

// Unmarshal decodes exactly one item filling b.
func Unmarshal(b []byte) (Item, error) {
	it, n, err := decode(b, 0)
	if err != nil {
		return Item{}, err
	}
	if n != len(b) {
		return Item{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-n)
	}
	return it, nil
}

// MessageLength returns the total length of the item whose 8-byte header
// is hdr.
func MessageLength(hdr []byte) (int, error) {
	if len(hdr) < 8 {
		return 0, fmt.Errorf("%w: short header", ErrMalformed)
	}
	n := binary.BigEndian.Uint32(hdr[4:8])
	if Type(hdr[3]) != TypeStructure || n > 1<<24 {
		return 0, fmt.Errorf("%w: message of type %#x and length %d", ErrMalformed, hdr[3], n)
	}
	return 8 + int(n), nil
}

func decode(b []byte, depth int) (Item, int, error) {
	if len(b) < 8 {
		return Item{}, 0, fmt.Errorf("%w: %d bytes left, want a header", ErrMalformed, len(b))
	}
	it := Item{Tag: Tag(b[0])<<16 | Tag(b[1])<<8 | Tag(b[2]), Type: Type(b[3])}
	n := int(binary.BigEndian.Uint32(b[4:8]))
	if it.Tag>>16 != 0x42 && it.Tag>>16 != 0x54 {
		return Item{}, 0, fmt.Errorf("%w: tag %#06x", ErrMalformed, uint32(it.Tag))
	}
	body := b[8:]
	switch it.Type {
	case TypeStructure:
		if depth >= maxDepth {
			return Item{}, 0, fmt.Errorf("%w: nested too deep", ErrMalformed)
		}
		if n > len(body) || n%8 != 0 {
			return Item{}, 0, fmt.Errorf("%w: structure of %d bytes in %d", ErrMalformed, n, len(body))
		}
		inner := body[:n]
		for len(inner) > 0 {
			c, m, err := decode(inner, depth+1)
			if err != nil {
				return Item{}, 0, err
			}
			it.Children = append(it.Children, c)
			inner = inner[m:]
		}
		return it, 8 + n, nil
	case TypeInteger, TypeEnumeration, TypeInterval:
		if n != 4 || len(body) < 8 {
			return Item{}, 0, fmt.Errorf("%w: 4-byte value of length %d", ErrMalformed, n)
		}
		if it.Type == TypeInteger {
			it.Int = int64(int32(binary.BigEndian.Uint32(body[:4])))
		} else {
			it.Int = int64(binary.BigEndian.Uint32(body[:4]))
		}
		return it, 16, nil
	case TypeLongInteger, TypeDateTime, TypeBoolean:
		if n != 8 || len(body) < 8 {
			return Item{}, 0, fmt.Errorf("%w: 8-byte value of length %d", ErrMalformed, n)
		}
		it.Int = int64(binary.BigEndian.Uint64(body[:8]))
		if it.Type == TypeBoolean && it.Int != 0 && it.Int != 1 {
			return Item{}, 0, fmt.Errorf("%w: boolean %d", ErrMalformed, it.Int)
		}
		return it, 16, nil
	case TypeTextString, TypeByteString, TypeBigInteger:
		p := pad8(n)
		if n < 0 || p > len(body) {
			return Item{}, 0, fmt.Errorf("%w: value of %d bytes in %d", ErrMalformed, n, len(body))
		}
		if it.Type == TypeBigInteger && n%8 != 0 {
			return Item{}, 0, fmt.Errorf("%w: big integer of %d bytes", ErrMalformed, n)
		}
		it.Bytes = append([]byte(nil), body[:n]...)
		return it, 8 + p, nil
	}
	return Item{}, 0, fmt.Errorf("%w: type %#x", ErrMalformed, byte(it.Type))
}
