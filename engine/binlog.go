package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Binary log events that tell an encrypted binary log: MariaDB writes a
// Start_encryption event right after the format description when
// encrypt_binlog is on, and encrypts every event after it.
const (
	binlogFormatDescription = 15
	binlogStartEncryption   = 164
	binlogHeaderLen         = 19
)

var binlogMagic = []byte{0xfe, 'b', 'i', 'n'}

// ErrNotBinlog: the file does not start like a MariaDB binary log.
var ErrNotBinlog = errors.New("not a binary log")

// BinlogEncrypted reads the start of a binary (or relay) log and reports
// whether it is encrypted.
func BinlogEncrypted(r io.Reader) (bool, error) {
	head := make([]byte, 4+binlogHeaderLen)
	if _, err := io.ReadFull(r, head); err != nil {
		return false, fmt.Errorf("%w: %v", ErrNotBinlog, err)
	}
	if !bytes.Equal(head[:4], binlogMagic) || head[4+4] != binlogFormatDescription {
		return false, ErrNotBinlog
	}
	size := binary.LittleEndian.Uint32(head[4+9:])
	if size < binlogHeaderLen || size > 1<<16 {
		return false, fmt.Errorf("%w: format description of %d bytes", ErrNotBinlog, size)
	}
	if _, err := io.CopyN(io.Discard, r, int64(size-binlogHeaderLen)); err != nil {
		return false, fmt.Errorf("%w: %v", ErrNotBinlog, err)
	}
	next := make([]byte, binlogHeaderLen)
	n, err := io.ReadFull(r, next)
	if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
		return false, nil // only the format description: nothing encrypted
	}
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrNotBinlog, err)
	}
	return next[4] == binlogStartEncryption, nil
}

// BinlogFileEncrypted opens a binary log (not following a symlink) and
// reports whether it is encrypted.
func BinlogFileEncrypted(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return BinlogEncrypted(f)
}
