// Package xbstream checks, while it passes, the xbstream archive that
// `mariabackup --backup --stream=xbstream` (and Percona XtraBackup) writes,
// and captures a few small files from inside it (xtrabackup_binlog_info,
// xtrabackup_checkpoints, xtrabackup_info) without extracting anything.
//
// An Observer is an io.Writer placed beside a backup pipeline (for example
// with io.MultiWriter or io.TeeReader): it verifies every chunk's CRC-32,
// that every file's chunks follow on from each other, that the stream ends
// on a chunk boundary and that every file got its EOF chunk. It never
// breaks the pipeline: Write always succeeds and the first problem is
// kept for Err and Close.
//
// The package is passive: it never prints, never writes files, never
// starts processes, and its memory stays bounded whatever the size of the
// stream (see Observer).
//
// # Format
//
// A stream is a sequence of chunks; all integers are little-endian:
//
//	magic    8 bytes  "XBSTCK01"
//	flags    1 byte   bit 0: chunk may be ignored if its type is unknown
//	type     1 byte   'P' payload, 'S' sparse payload, 'E' end of file
//	pathlen  4 bytes  1..511 (mbstream rejects 512 and more)
//	path     pathlen bytes, relative, '/'-separated
//
// An 'E' chunk ends there: it says the file is complete (a file with no
// data has an 'E' chunk only). 'P' and 'S' chunks go on with
//
//	[mapsize 4 bytes]   'S' only: number of sparse map entries
//	length   8 bytes    payload length
//	offset   8 bytes    where the payload goes in the file
//	checksum 4 bytes    CRC-32 (IEEE 802.3 / zlib crc32) of [map and] payload
//	[map     mapsize x (skip 4 bytes, len 4 bytes)]   'S' only
//	payload  length bytes
//
// A file's chunks come in order (each offset is where the file's previous
// chunks ended, holes of 'S' chunks included) but chunks of different
// files may interleave (mariabackup --parallel). mariabackup 10.11 writes
// only 'P' and 'E' chunks, with flags 0; it gathers a file's data into
// chunks of 10 MiB (a single larger write makes one larger chunk). 'S'
// chunks come from newer Percona XtraBackup (punched-hole tablespaces):
// the file offset then advances by the map's skips plus the payload. Chunks
// of an unknown type with the ignorable flag are checked (same layout as
// 'P') and skipped, as mbstream's reader allows.
package xbstream

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"math"
	"path"
	"sort"
	"strings"
	"sync"
)

const (
	// MaxPathLen is the longest path a chunk may carry: mbstream rejects
	// path lengths of FN_REFLEN (512) and more.
	MaxPathLen = 511
	// MaxOpenFiles bounds the files that may have data but no EOF chunk
	// at the same time; mariabackup has about one per copy thread.
	MaxOpenFiles = 1 << 14
	// MaxTrackedFiles bounds how many completed files are remembered (8
	// bytes each) to detect a path that comes back after its EOF chunk;
	// past it, that check stops for the files that follow.
	MaxTrackedFiles = 1 << 20

	magic            = "XBSTCK01"
	fixedHeaderLen   = 14 // magic, flags, type, path length
	payloadHeaderLen = 20 // length, offset, checksum
	sparseEntryLen   = 8  // skip, len

	flagIgnorable = 0x01
	typePayload   = 'P'
	typeSparse    = 'S'
	typeEOF       = 'E'
)

// parser states: what the bytes being read belong to.
type state uint8

const (
	stHeader        state = iota // fixed header
	stPath                       // path
	stSparseCount                // sparse map size ('S')
	stPayloadHeader              // length, offset, checksum
	stSparseMap                  // sparse map entries ('S')
	stPayload                    // payload
)

var stateNames = [...]string{
	stHeader:        "chunk header",
	stPath:          "path",
	stSparseCount:   "sparse map size",
	stPayloadHeader: "payload header",
	stSparseMap:     "sparse map",
	stPayload:       "payload",
}

// Options configure an Observer made with New.
type Options struct {
	// MaxCapture is the most bytes kept of each captured file; a larger
	// file is recorded as truncated (not an error).
	MaxCapture int
	// Capture names the files (paths as they appear in the stream, e.g.
	// "xtrabackup_binlog_info") whose content is kept.
	Capture []string
	// Require names files that must be in the stream, complete, for Close
	// to succeed. A stream cut exactly at a file boundary is otherwise
	// well-formed; mariabackup writes "xtrabackup_info" last, so requiring
	// it catches that cut.
	Require []string
	// OnFile, if not nil, is called from Write when a file's EOF chunk
	// arrives. It must not call the Observer's methods.
	OnFile func(File)
}

// File describes a file completed by its EOF chunk.
type File struct {
	// Path is the path as it appears in the stream.
	Path string
	// Size is the size the extracted file has (payload plus sparse holes).
	Size int64
	// Chunks is the number of data chunks ('P' and 'S') of the file.
	Chunks int64
}

// Stats count what an Observer has seen so far.
type Stats struct {
	// Bytes is the number of bytes written to the Observer.
	Bytes int64
	// Parsed is the number of bytes parsed; it stops at the first error.
	Parsed int64
	// Chunks is the number of complete chunks of any type.
	Chunks int64
	// Files is the number of files completed by their EOF chunk.
	Files int64
	// OpenFiles is the number of files with data but no EOF chunk yet.
	OpenFiles int
	// PayloadBytes is the payload of 'P' and 'S' chunks (ignored chunks
	// excluded).
	PayloadBytes int64
	// IgnoredChunks counts chunks of unknown type skipped because they
	// carry the ignorable flag.
	IgnoredChunks int64
}

type capture struct {
	data      []byte
	truncated bool // more data than MaxCapture, or sparse chunks
	complete  bool // EOF chunk seen
}

type fileState struct {
	next   uint64 // offset the next chunk must have
	chunks int64
	cap    *capture
}

// Observer parses an xbstream written to it. Memory stays bounded whatever
// the stream size: a chunk's header (at most 550 bytes), one small record
// per file open at once (at most MaxOpenFiles), 8 bytes per completed file
// (at most MaxTrackedFiles) and the captured files (MaxCapture each).
// Payload is checksummed as it passes and never buffered.
//
// Its methods may be called from several goroutines.
type Observer struct {
	mu   sync.Mutex
	opts Options

	captures map[string]*capture
	required map[string]bool // Require names, true once complete
	open     map[string]*fileState
	done     map[uint64]struct{}
	seed     maphash.Seed

	err    error
	closed bool
	stats  Stats

	// current chunk
	st         state
	hdr        []byte // header bytes read so far
	need       int    // header bytes needed to leave the current state
	chunkNo    int64  // 1-based number of the current chunk
	chunkStart int64
	typ        byte
	ignorable  bool // unknown type with the ignorable flag
	path       string
	file       *fileState
	length     uint64
	offset     uint64
	sum        uint32
	crc        uint32
	mapLeft    uint64 // sparse map bytes still to read
	entry      [sparseEntryLen]byte
	entryN     int
	holes      uint64 // sum of the sparse map's skips
	mapData    uint64 // sum of the sparse map's lens
	left       uint64 // payload bytes still to read
}

// NewObserver captures the full content of the named files (paths as they
// appear in the stream) up to maxCapture bytes each; larger ones are
// recorded as truncated, not an error.
func NewObserver(maxCapture int, capture ...string) *Observer {
	return New(Options{MaxCapture: maxCapture, Capture: capture})
}

// New makes an Observer with the given options.
func New(opts Options) *Observer {
	if opts.MaxCapture < 0 {
		opts.MaxCapture = 0
	}
	o := &Observer{
		opts:     opts,
		captures: make(map[string]*capture, len(opts.Capture)),
		required: make(map[string]bool, len(opts.Require)),
		open:     make(map[string]*fileState),
		done:     make(map[uint64]struct{}),
		seed:     maphash.MakeSeed(),
		hdr:      make([]byte, 0, fixedHeaderLen+MaxPathLen+4+payloadHeaderLen),
		need:     fixedHeaderLen,
		chunkNo:  1,
	}
	for _, name := range opts.Capture {
		o.captures[name] = &capture{}
	}
	for _, name := range opts.Require {
		o.required[name] = false
	}
	return o
}

// Write parses p. It never returns an error for malformed data: the first
// format error is kept (see Err) and the rest of the data is ignored, so
// that a pipeline is not broken by observing it. It returns len(p), nil.
func (o *Observer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(p)
	o.stats.Bytes += int64(n)
	if o.closed {
		if o.err == nil && n > 0 {
			o.err = &FormatError{Kind: ErrWriteAfterClose, Chunk: o.chunkNo, Offset: o.stats.Parsed}
		}
		return n, nil
	}
	for len(p) > 0 && o.err == nil {
		switch o.st {
		case stSparseMap:
			p = o.readSparseMap(p)
		case stPayload:
			p = o.readPayload(p)
		default:
			p = o.readHeader(p)
		}
	}
	return n, nil
}

// fail records the first error, about the current chunk.
func (o *Observer) fail(kind error, format string, args ...any) {
	if o.err != nil {
		return
	}
	o.err = &FormatError{Kind: kind, Chunk: o.chunkNo, Offset: o.chunkStart, Path: o.path, Detail: fmt.Sprintf(format, args...)}
}

// readHeader collects header bytes until the current state's need.
func (o *Observer) readHeader(p []byte) []byte {
	k := min(o.need-len(o.hdr), len(p))
	o.hdr = append(o.hdr, p[:k]...)
	o.stats.Parsed += int64(k)
	p = p[k:]
	if o.st == stHeader {
		// Check the magic as soon as its bytes arrive, so garbage is
		// reported at once.
		for i := len(o.hdr) - k; i < len(o.hdr) && i < len(magic); i++ {
			if o.hdr[i] != magic[i] {
				o.fail(ErrBadMagic, "byte %d is 0x%02x, want %q", i, o.hdr[i], magic[i])
				return p
			}
		}
	}
	if len(o.hdr) < o.need {
		return p
	}
	switch o.st {
	case stHeader:
		o.headerDone()
	case stPath:
		o.pathDone()
	case stSparseCount:
		n := uint64(binary.LittleEndian.Uint32(o.hdr[o.need-4:]))
		o.mapLeft = n * sparseEntryLen
		o.st, o.need = stPayloadHeader, o.need+payloadHeaderLen
	case stPayloadHeader:
		o.payloadHeaderDone()
	}
	return p
}

func (o *Observer) headerDone() {
	flags, typ := o.hdr[8], o.hdr[9]
	o.typ = typ
	switch typ {
	case typePayload, typeSparse, typeEOF:
	default:
		if flags&flagIgnorable == 0 {
			o.fail(ErrUnknownType, "type 0x%02x, flags 0x%02x", typ, flags)
			return
		}
		o.ignorable = true
	}
	n := binary.LittleEndian.Uint32(o.hdr[10:14])
	if n == 0 || n > MaxPathLen {
		o.fail(ErrPathLength, "path length %d, want 1..%d", n, MaxPathLen)
		return
	}
	o.st, o.need = stPath, fixedHeaderLen+int(n)
}

// validPath reports why mbstream would refuse to extract p, or "".
func validPath(p string) string {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		return "NUL byte in path"
	case strings.HasPrefix(p, "/"):
		return "absolute path"
	case strings.HasSuffix(p, "/"):
		return "path names a directory"
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "path climbs out with .."
		}
	}
	if path.Clean(p) == "." {
		return "path names no file"
	}
	return ""
}

func (o *Observer) pathDone() {
	o.path = string(o.hdr[fixedHeaderLen:o.need])
	if why := validPath(o.path); why != "" {
		o.fail(ErrBadPath, "%s", why)
		return
	}
	switch {
	case o.ignorable:
		o.st, o.need = stPayloadHeader, o.need+payloadHeaderLen
	case o.typ == typeEOF:
		o.eof()
	case o.typ == typeSparse:
		o.st, o.need = stSparseCount, o.need+4
	default:
		o.st, o.need = stPayloadHeader, o.need+payloadHeaderLen
	}
}

func (o *Observer) pathHash(p string) uint64 { return maphash.String(o.seed, p) }

// lookup returns the state of the current chunk's file, making it if new.
func (o *Observer) lookup() *fileState {
	if f := o.open[o.path]; f != nil {
		return f
	}
	if _, ok := o.done[o.pathHash(o.path)]; ok {
		o.fail(ErrDuplicateFile, "")
		return nil
	}
	if len(o.open) >= MaxOpenFiles {
		o.fail(ErrTooManyOpenFiles, "more than %d", MaxOpenFiles)
		return nil
	}
	f := &fileState{cap: o.captures[o.path]}
	if f.cap != nil && (f.cap.complete || len(f.cap.data) > 0) {
		// Cannot happen unless the duplicate set overflowed.
		f.cap.data, f.cap.truncated, f.cap.complete = nil, true, false
	}
	o.open[o.path] = f
	return f
}

func (o *Observer) eof() {
	f := o.open[o.path]
	if f == nil {
		if f = o.lookup(); f == nil {
			return
		}
	}
	delete(o.open, o.path)
	if len(o.done) < MaxTrackedFiles {
		o.done[o.pathHash(o.path)] = struct{}{}
	}
	if f.cap != nil {
		f.cap.complete = true
	}
	if _, ok := o.required[o.path]; ok {
		o.required[o.path] = true
	}
	o.stats.Files++
	if o.opts.OnFile != nil {
		o.opts.OnFile(File{Path: o.path, Size: int64(f.next), Chunks: f.chunks})
	}
	o.chunkDone()
}

func (o *Observer) payloadHeaderDone() {
	b := o.hdr[o.need-payloadHeaderLen:]
	o.length = binary.LittleEndian.Uint64(b[0:8])
	o.offset = binary.LittleEndian.Uint64(b[8:16])
	o.sum = binary.LittleEndian.Uint32(b[16:20])
	if o.length > math.MaxInt64 || o.offset > math.MaxInt64-o.length {
		o.fail(ErrBadLength, "length %d at offset %d", o.length, o.offset)
		return
	}
	if !o.ignorable {
		if o.file = o.lookup(); o.file == nil {
			return
		}
		if o.offset != o.file.next {
			o.fail(ErrOutOfOrder, "offset %d, want %d", o.offset, o.file.next)
			return
		}
		if o.typ == typeSparse && o.file.cap != nil {
			// Captured files are small text files; holes are not
			// rebuilt in memory.
			o.file.cap.truncated = true
		}
	}
	o.crc = 0
	o.left = o.length
	o.st = stSparseMap
	o.endOfMap()
}

// endOfMap moves past the sparse map once it is read.
func (o *Observer) endOfMap() {
	if o.mapLeft > 0 {
		return
	}
	if o.typ == typeSparse && o.mapData != o.length {
		o.fail(ErrBadLength, "sparse map covers %d bytes, payload has %d", o.mapData, o.length)
		return
	}
	o.st = stPayload
	if o.left == 0 {
		o.payloadDone()
	}
}

func (o *Observer) readSparseMap(p []byte) []byte {
	k := int(min(o.mapLeft, uint64(len(p))))
	b := p[:k]
	o.crc = crc32.Update(o.crc, crc32.IEEETable, b)
	o.mapLeft -= uint64(k)
	o.stats.Parsed += int64(k)
	for len(b) > 0 {
		c := copy(o.entry[o.entryN:], b)
		o.entryN += c
		b = b[c:]
		if o.entryN == sparseEntryLen {
			o.entryN = 0
			o.holes += uint64(binary.LittleEndian.Uint32(o.entry[0:4]))
			o.mapData += uint64(binary.LittleEndian.Uint32(o.entry[4:8]))
		}
	}
	o.endOfMap()
	return p[k:]
}

func (o *Observer) readPayload(p []byte) []byte {
	k := int(min(o.left, uint64(len(p))))
	b := p[:k]
	o.crc = crc32.Update(o.crc, crc32.IEEETable, b)
	o.left -= uint64(k)
	o.stats.Parsed += int64(k)
	if f := o.file; f != nil && f.cap != nil && !f.cap.truncated {
		room := o.opts.MaxCapture - len(f.cap.data)
		if len(b) > room {
			b, f.cap.truncated = b[:room], true
		}
		f.cap.data = append(f.cap.data, b...)
	}
	if o.left == 0 {
		o.payloadDone()
	}
	return p[k:]
}

func (o *Observer) payloadDone() {
	if o.crc != o.sum {
		o.fail(ErrChecksum, "stored 0x%08x, computed 0x%08x", o.sum, o.crc)
		return
	}
	if o.ignorable {
		o.stats.IgnoredChunks++
		o.chunkDone()
		return
	}
	next := o.file.next + o.holes + o.length
	if next < o.file.next || next > math.MaxInt64 {
		o.fail(ErrBadLength, "file size overflows")
		return
	}
	o.file.next = next
	o.file.chunks++
	o.stats.PayloadBytes += int64(o.length)
	o.chunkDone()
}

// chunkDone resets the parser for the next chunk.
func (o *Observer) chunkDone() {
	o.stats.Chunks++
	o.chunkNo++
	o.chunkStart = o.stats.Parsed
	o.st, o.hdr, o.need = stHeader, o.hdr[:0], fixedHeaderLen
	o.typ, o.ignorable, o.path, o.file = 0, false, "", nil
	o.length, o.offset, o.sum, o.crc = 0, 0, 0, 0
	o.mapLeft, o.entryN, o.holes, o.mapData, o.left = 0, 0, 0, 0, 0
}

// Close reports the first format error, a stream that ends inside a
// chunk, files without an EOF chunk, a stream without any file, or a
// required file that is missing. It may be called more than once.
func (o *Observer) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return o.err
	}
	o.closed = true
	if o.err != nil {
		return o.err
	}
	end := o.stats.Parsed
	switch {
	case o.st != stHeader || len(o.hdr) > 0:
		where := stateNames[o.st]
		if o.st == stPayload {
			where = fmt.Sprintf("payload, %d of %d bytes read", o.length-o.left, o.length)
		}
		o.err = &FormatError{Kind: ErrTruncated, Chunk: o.chunkNo, Offset: end, Path: o.path,
			Detail: fmt.Sprintf("%d bytes into the chunk starting at %d, in its %s", end-o.chunkStart, o.chunkStart, where)}
	case len(o.open) > 0:
		paths := make([]string, 0, len(o.open))
		for p := range o.open {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		o.err = &FormatError{Kind: ErrMissingEOF, Chunk: o.chunkNo, Offset: end, Path: paths[0],
			Detail: fmt.Sprintf("%d file(s): %s", len(paths), listPaths(paths))}
	case o.stats.Files == 0:
		o.err = &FormatError{Kind: ErrEmpty, Chunk: o.chunkNo, Offset: end,
			Detail: fmt.Sprintf("%d chunks, no file", o.stats.Chunks)}
	default:
		var missing []string
		for name, seen := range o.required {
			if !seen {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			o.err = &FormatError{Kind: ErrMissingFile, Chunk: o.chunkNo, Offset: end, Path: missing[0],
				Detail: listPaths(missing)}
		}
	}
	return o.err
}

func listPaths(paths []string) string {
	const show = 5
	if len(paths) <= show {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(paths[:show], ", "), len(paths)-show)
}

// Err returns the first format error found so far (after Close, what Close
// returned), or nil.
func (o *Observer) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// Captured returns the content kept of a file named in Capture. ok is true
// only when the whole file is in hand: its EOF chunk was seen and it was
// not truncated. A truncated file returns its first MaxCapture bytes with
// ok false (see Truncated); a file not (yet) seen returns nil, false.
func (o *Observer) Captured(name string) (content []byte, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.captures[name]
	if c == nil {
		return nil, false
	}
	out := make([]byte, len(c.data))
	copy(out, c.data)
	return out, c.complete && !c.truncated
}

// Truncated reports whether a captured file was larger than MaxCapture
// (or written with sparse chunks), so that Captured holds only its start.
func (o *Observer) Truncated(name string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.captures[name]
	return c != nil && c.truncated
}

// Stats returns the counters so far.
func (o *Observer) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.stats
	s.OpenFiles = len(o.open)
	return s
}
