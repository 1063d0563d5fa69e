package xbstream

import (
	"errors"
	"fmt"
)

// Kinds of format error. A *FormatError wraps exactly one of them, so
// errors.Is(err, ErrChecksum) and the like tell what went wrong.
var (
	// ErrBadMagic: a chunk does not start with "XBSTCK01" (garbage, or a
	// stream that lost its framing).
	ErrBadMagic = errors.New("bad chunk magic")
	// ErrUnknownType: a chunk type other than 'P', 'S' or 'E' without the
	// ignorable flag.
	ErrUnknownType = errors.New("unknown chunk type")
	// ErrPathLength: a path length of 0 or above MaxPathLen.
	ErrPathLength = errors.New("bad path length")
	// ErrBadPath: a path that is absolute, climbs out with "..", or holds
	// a NUL byte (mbstream refuses to extract such a path).
	ErrBadPath = errors.New("bad path")
	// ErrBadLength: a payload length or offset that cannot be a file's,
	// or a sparse map that does not add up to the payload.
	ErrBadLength = errors.New("bad chunk length")
	// ErrChecksum: a chunk whose payload does not match its CRC-32.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrOutOfOrder: a chunk whose file offset is not where the file's
	// previous chunks ended.
	ErrOutOfOrder = errors.New("out-of-order chunk")
	// ErrDuplicateFile: a chunk for a path whose EOF chunk was already seen.
	ErrDuplicateFile = errors.New("file appears again after its EOF chunk")
	// ErrTooManyOpenFiles: more than MaxOpenFiles files without their EOF
	// chunk at the same time (the bound that keeps memory small).
	ErrTooManyOpenFiles = errors.New("too many files open at once")
	// ErrTruncated: the stream ends inside a chunk.
	ErrTruncated = errors.New("stream ends inside a chunk")
	// ErrMissingEOF: the stream ends while files still wait for their EOF
	// chunk.
	ErrMissingEOF = errors.New("files without EOF chunk")
	// ErrMissingFile: the stream is complete but lacks a file named in
	// Options.Require.
	ErrMissingFile = errors.New("required file missing")
	// ErrEmpty: the stream holds no file at all (no chunk, or only
	// ignorable ones).
	ErrEmpty = errors.New("empty stream")
	// ErrWriteAfterClose: Write was called after Close.
	ErrWriteAfterClose = errors.New("write after close")
)

// FormatError describes the first problem found in a stream.
type FormatError struct {
	// Kind is one of the Err* values of this package.
	Kind error
	// Chunk is the 1-based number of the chunk concerned (for errors at
	// the end of the stream, the number the next chunk would have had).
	Chunk int64
	// Offset is the stream byte offset where that chunk starts (for
	// ErrTruncated, ErrMissingEOF, ErrMissingFile and ErrEmpty: the
	// stream's length).
	Offset int64
	// Path is the file path concerned, when known.
	Path string
	// Detail says more, e.g. the stored and computed checksums.
	Detail string
}

// Error formats the error with its context.
func (e *FormatError) Error() string {
	s := "xbstream: " + e.Kind.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	s += fmt.Sprintf(" (chunk %d at byte offset %d", e.Chunk, e.Offset)
	if e.Path != "" {
		s += fmt.Sprintf(", path %q", e.Path)
	}
	return s + ")"
}

// Unwrap returns Kind.
func (e *FormatError) Unwrap() error { return e.Kind }
