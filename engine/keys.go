package engine

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Key IDs MariaDB uses by itself: 1 for system data (the redo log, the
// binary log, Aria, tables without ENCRYPTION_KEY_ID) and 2 for temporary
// files. A key file must have both.
const (
	KeySystem    = 1
	KeyTemporary = 2
)

// KeyFile is a file_key_management key file: one "ID;HEX" line per key
// (a 256-bit AES key as 64 hex digits). The plugin has no key versions:
// each ID has exactly one key.
type KeyFile struct {
	keys map[uint32][]byte
}

// NewKeyFile makes a key file with fresh random keys for IDs 1 and 2.
func NewKeyFile() (*KeyFile, error) {
	k := &KeyFile{keys: map[uint32][]byte{}}
	for _, id := range []uint32{KeySystem, KeyTemporary} {
		if _, err := k.AddKey(id); err != nil {
			k.Wipe()
			return nil, err
		}
	}
	return k, nil
}

// AddKey adds a random key under id (0: the next free ID) and returns the
// ID used.
func (k *KeyFile) AddKey(id uint32) (uint32, error) {
	if id == 0 {
		id = k.MaxID() + 1
	}
	if _, ok := k.keys[id]; ok {
		return 0, fmt.Errorf("key id %d exists already", id)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return 0, fmt.Errorf("failed to generate a key: %w", err)
	}
	k.keys[id] = b
	return id, nil
}

// IDs returns the key IDs in order.
func (k *KeyFile) IDs() []uint32 {
	ids := make([]uint32, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// MaxID is the largest key ID (0 when empty).
func (k *KeyFile) MaxID() uint32 {
	ids := k.IDs()
	if len(ids) == 0 {
		return 0
	}
	return ids[len(ids)-1]
}

// Marshal returns the file's content. The caller writes it only into the
// mount and clears the slice after use.
func (k *KeyFile) Marshal() []byte {
	var b bytes.Buffer
	for _, id := range k.IDs() {
		b.WriteString(strconv.FormatUint(uint64(id), 10))
		b.WriteByte(';')
		dst := make([]byte, hex.EncodedLen(len(k.keys[id])))
		hex.Encode(dst, k.keys[id])
		b.Write(dst)
		clear(dst)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Wipe clears the keys from memory.
func (k *KeyFile) Wipe() {
	if k == nil {
		return
	}
	for id, v := range k.keys {
		clear(v)
		delete(k.keys, id)
	}
}

// ErrKeyFile: a key file that the plugin would not read. The error never
// quotes key material.
var ErrKeyFile = errors.New("bad key file")

// ParseKeyFile reads a key file as file_key_management does: "ID;HEX"
// lines, '#' comments and blank lines ignored; IDs unique and > 0; keys of
// 128, 192 or 256 bits.
func ParseKeyFile(b []byte) (*KeyFile, error) {
	k := &KeyFile{keys: map[uint32][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		idText, hexKey, ok := strings.Cut(line, ";")
		if !ok {
			k.Wipe()
			return nil, fmt.Errorf("%w: line %d: not ID;KEY", ErrKeyFile, n)
		}
		id, err := strconv.ParseUint(idText, 10, 32)
		if err != nil || id == 0 {
			k.Wipe()
			return nil, fmt.Errorf("%w: line %d: key id is not a number > 0", ErrKeyFile, n)
		}
		key, err := hex.DecodeString(strings.TrimSpace(hexKey))
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			clear(key)
			k.Wipe()
			return nil, fmt.Errorf("%w: line %d: the key is not 32, 48 or 64 hex digits", ErrKeyFile, n)
		}
		if _, dup := k.keys[uint32(id)]; dup {
			clear(key)
			k.Wipe()
			return nil, fmt.Errorf("%w: line %d: key id %d twice", ErrKeyFile, n, id)
		}
		k.keys[uint32(id)] = key
	}
	for _, id := range []uint32{KeySystem, KeyTemporary} {
		if _, ok := k.keys[id]; !ok {
			k.Wipe()
			return nil, fmt.Errorf("%w: no key with id %d", ErrKeyFile, id)
		}
	}
	return k, nil
}
