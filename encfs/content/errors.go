package content

import (
	"errors"
	"fmt"
)

// ErrCorrupt is matched (errors.Is) by every error that reports corrupt or
// tampered ciphertext.
var ErrCorrupt = errors.New("corrupt or tampered data")

// ErrWrongKey is matched by errors reporting a file whose header names a key
// that is not the one given: a file of another category or volume.
var ErrWrongKey = errors.New("file was sealed with another key")

// HeaderBlock is the Block value of a CorruptError about the header or the
// file size rather than one data block.
const HeaderBlock = -1

// CorruptError reports corrupt or tampered ciphertext: which file, which
// block (HeaderBlock for the header or size) and what was wrong.
type CorruptError struct {
	File  string
	Block int64
	Err   error
}

func (e *CorruptError) Error() string {
	name := e.File
	if name == "" {
		name = "(unnamed)"
	}
	if e.Block == HeaderBlock {
		return fmt.Sprintf("%s: header: %v", name, e.Err)
	}
	return fmt.Sprintf("%s: block %d: %v", name, e.Block, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Is makes every CorruptError match ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(name string, block int64, format string, args ...any) error {
	return &CorruptError{File: name, Block: block, Err: fmt.Errorf(format, args...)}
}

// errAuth is what a block that fails GCM authentication reports.
var errAuth = errors.New("authentication failed (block modified, moved or from another file)")
