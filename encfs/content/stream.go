package content

import (
	"errors"
	"fmt"
	"io"
)

// streamBatch is how many blocks the stream Writer and Reader handle per
// backing write or read (1 MiB of plaintext).
const streamBatch = 256

// Writer encrypts a plaintext stream into the file format, for sequential
// output such as `file encrypt` or a backup stream. Memory stays at two
// batch buffers whatever the stream size. Close must be called to seal the
// last block; it does not close the underlying writer.
type Writer struct {
	w      io.Writer
	key    *Key
	hdr    []byte
	nonces *nonceSource
	ad     []byte
	buf    []byte // pending plaintext, less than one batch
	out    []byte
	nbuf   []byte
	block  int64
	err    error
	closed bool
}

// NewWriter writes a new header to w and returns a Writer sealing with key.
func NewWriter(w io.Writer, key *Key) (*Writer, error) {
	h, err := newHeader(VersionNoHoles, key.id)
	if err != nil {
		return nil, err
	}
	nonces, err := newNonceSource()
	if err != nil {
		return nil, err
	}
	sw := &Writer{
		w: w, key: key, hdr: h.Marshal(), nonces: nonces,
		ad:   make([]byte, 0, 8+HeaderSize),
		buf:  make([]byte, 0, streamBatch*BlockSize),
		out:  make([]byte, streamBatch*CipherBlockSize),
		nbuf: make([]byte, streamBatch*NonceSize),
	}
	if _, err := w.Write(sw.hdr); err != nil {
		return nil, fmt.Errorf("failed to write header: %w", err)
	}
	return sw, nil
}

// Write buffers and seals p. Full blocks are written as batches fill up.
func (sw *Writer) Write(p []byte) (int, error) {
	if sw.err != nil {
		return 0, sw.err
	}
	if sw.closed {
		return 0, errors.New("write to closed content.Writer")
	}
	n := len(p)
	// Fill the pending buffer to a whole batch first.
	if len(sw.buf) > 0 {
		k := copy(sw.buf[len(sw.buf):cap(sw.buf)], p)
		sw.buf = sw.buf[:len(sw.buf)+k]
		p = p[k:]
		if len(sw.buf) == cap(sw.buf) {
			if err := sw.seal(sw.buf); err != nil {
				return 0, err
			}
			sw.buf = sw.buf[:0]
		}
	}
	// Seal whole batches straight from p, keeping the rest.
	for len(p) >= cap(sw.buf) {
		if err := sw.seal(p[:cap(sw.buf)]); err != nil {
			return 0, err
		}
		p = p[cap(sw.buf):]
	}
	sw.buf = append(sw.buf, p...)
	return n, nil
}

// seal encrypts plain (at most one batch; only its last block may be
// short) and writes it.
func (sw *Writer) seal(plain []byte) error {
	nblocks := (len(plain) + BlockSize - 1) / BlockSize
	if err := sw.nonces.fill(sw.nbuf[:nblocks*NonceSize]); err != nil {
		sw.err = err
		return err
	}
	out := sw.out[:0]
	for i := 0; i < nblocks; i++ {
		s := i * BlockSize
		e := min(s+BlockSize, len(plain))
		dst := out[len(out) : len(out)+(e-s)+BlockOverhead]
		sealed := sw.key.sealBlock(dst, sw.nbuf[i*NonceSize:(i+1)*NonceSize], plain[s:e], sw.block, sw.hdr, sw.ad)
		out = out[:len(out)+len(sealed)]
		sw.block++
	}
	if _, err := sw.w.Write(out); err != nil {
		sw.err = fmt.Errorf("failed to write encrypted data: %w", err)
		return sw.err
	}
	return nil
}

// Close seals and writes what is still buffered.
func (sw *Writer) Close() error {
	if sw.err != nil {
		return sw.err
	}
	if sw.closed {
		return nil
	}
	sw.closed = true
	if len(sw.buf) > 0 {
		if err := sw.seal(sw.buf); err != nil {
			return err
		}
		sw.buf = sw.buf[:0]
	}
	return nil
}

// Keyring finds the key a file's header names.
type Keyring interface {
	// KeyByID returns the key with the given ID, or false.
	KeyByID(id [KeyIDSize]byte) (*Key, bool)
}

// KeyByID lets a single Key serve as a Keyring.
func (k *Key) KeyByID(id [KeyIDSize]byte) (*Key, bool) {
	if id == k.id {
		return k, true
	}
	return nil, false
}

// Reader decrypts a stream in the file format. Each block is authenticated
// before any of its bytes are returned. The format does not record the
// plaintext length, so a stream cut exactly at a block boundary reads as
// a shorter stream (see docs/format.md); a cut inside a block is an error.
type Reader struct {
	r     io.Reader
	key   *Key
	hdr   []byte
	name  string
	ad    []byte
	in    []byte
	plain []byte
	pos   int
	block int64
	eof   bool
	err   error
}

// NewReader reads the header from r, picks the key it names from keys and
// returns a Reader for the plaintext. name is used in errors. A stream of
// just a header is an empty file; a stream with no header at all is not
// something Writer produces and is refused.
func NewReader(r io.Reader, keys Keyring, name string) (*Reader, error) {
	hdr := make([]byte, HeaderSize)
	n, err := io.ReadFull(r, hdr)
	sr := &Reader{r: r, name: name, ad: make([]byte, 0, 8+HeaderSize)}
	switch {
	case err == io.EOF:
		return nil, corrupt(name, HeaderBlock, "empty input: not a mysecure encrypted file")
	case err == io.ErrUnexpectedEOF:
		return nil, corrupt(name, HeaderBlock, "file is %d bytes, shorter than the %d-byte header", n, HeaderSize)
	case err != nil:
		return nil, fmt.Errorf("failed to read header of %s: %w", name, err)
	}
	h, err := ParseHeader(hdr)
	if err != nil {
		return nil, corrupt(name, HeaderBlock, "%v", err)
	}
	key, ok := keys.KeyByID(h.KeyID)
	if !ok {
		return nil, &CorruptError{File: name, Block: HeaderBlock, Err: ErrWrongKey}
	}
	sr.key = key
	sr.hdr = hdr
	sr.in = make([]byte, streamBatch*CipherBlockSize)
	sr.plain = make([]byte, 0, streamBatch*BlockSize)
	return sr, nil
}

// Header returns the parsed header, or false for an empty stream.
func (sr *Reader) Header() (Header, bool) {
	if sr.hdr == nil {
		return Header{}, false
	}
	h, _ := ParseHeader(sr.hdr)
	return h, true
}

// Read returns decrypted, authenticated plaintext. A p of at least one
// batch (1 MiB) with nothing buffered is filled directly, without an
// intermediate copy.
func (sr *Reader) Read(p []byte) (int, error) {
	if sr.pos >= len(sr.plain) && len(p) >= streamBatch*BlockSize {
		if sr.err != nil {
			return 0, sr.err
		}
		if sr.eof {
			return 0, io.EOF
		}
		if n := sr.fillInto(p); n > 0 {
			return n, nil
		}
		if sr.err != nil {
			return 0, sr.err
		}
		return 0, io.EOF
	}
	for sr.pos >= len(sr.plain) {
		if sr.err != nil {
			return 0, sr.err
		}
		if sr.eof {
			return 0, io.EOF
		}
		sr.plain = sr.plain[:sr.fillInto(sr.plain[:cap(sr.plain)])]
		sr.pos = 0
	}
	n := copy(p, sr.plain[sr.pos:])
	sr.pos += n
	return n, nil
}

// fillInto reads the next batch of blocks and opens them into dst, which
// has room for a whole batch. It returns the plaintext bytes written; on
// a damaged block it stops there and sets sr.err, so only authenticated
// bytes are ever returned.
func (sr *Reader) fillInto(dst []byte) int {
	n, err := io.ReadFull(sr.r, sr.in)
	switch {
	case err == io.EOF:
		sr.eof = true
		return 0
	case err == io.ErrUnexpectedEOF:
		sr.eof = true
	case err != nil:
		sr.err = fmt.Errorf("failed to read %s: %w", sr.name, err)
		return 0
	}
	out, blocks, err := sr.key.openBlocks(dst, sr.in[:n], sr.block, sr.hdr, sr.ad)
	sr.block += blocks
	if err != nil {
		sr.err = corrupt(sr.name, sr.block, "%v", err)
	}
	return out
}

// OpenBlocks opens consecutive stored blocks from src, the first being
// block first of the file whose 32 header bytes are hdr, into dst (room
// for a BlockSize per block). Only the last block of src may be short. It
// returns the plaintext bytes written and, on failure, an error for the
// block after the last good one. It is the in-memory core of Reader,
// exported for callers that hold ciphertext in memory (and for the
// benchmarks).
func (k *Key) OpenBlocks(dst, src []byte, first int64, hdr []byte) (int, error) {
	n, blocks, err := k.openBlocks(dst, src, first, hdr, make([]byte, 0, 8+HeaderSize))
	if err != nil {
		return n, corrupt("", first+blocks, "%v", err)
	}
	return n, nil
}

func (k *Key) openBlocks(dst, src []byte, first int64, hdr, ad []byte) (n int, blocks int64, err error) {
	for len(src) > 0 {
		c := min(CipherBlockSize, len(src))
		if c <= BlockOverhead {
			return n, blocks, fmt.Errorf("last block is %d bytes, too short to hold data (truncated inside a block)", c)
		}
		pt, err := k.openBlock(dst[n:n+BlockSize], src[:c], first+blocks, hdr, ad)
		if err != nil {
			return n, blocks, errAuth
		}
		n += len(pt)
		blocks++
		src = src[c:]
	}
	return n, blocks, nil
}

// Header returns the header the Writer wrote (its file ID binds the
// stream to whatever records it, such as a backup manifest).
func (sw *Writer) Header() Header {
	h, _ := ParseHeader(sw.hdr)
	return h
}
