package content

import (
	"fmt"
	"io"
	"io/fs"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Backing is the ciphertext file under a File: an *os.File satisfies it.
type Backing interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
}

// batchBlocks is how many blocks one backing read or write covers at most.
const batchBlocks = 64

// scratch is the per-call working memory of File reads and writes, pooled
// so that the FUSE hot path allocates nothing. Per call, not per File:
// concurrent ReadAt calls on one File share no mutable state.
type scratch struct {
	buf    []byte // batchBlocks stored blocks
	plain  [BlockSize]byte
	merge  [BlockSize]byte
	stored [CipherBlockSize]byte
	nonces [batchBlocks * NonceSize]byte
	ad     [8 + HeaderSize]byte
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{buf: make([]byte, batchBlocks*CipherBlockSize)}
}}

// File gives random-access plaintext reads and writes over an encrypted
// backing file. Reads beyond what was written return zeros only where the
// file was extended: in a version 2 file the blocks in between are holes
// in the store (all-zero stored blocks, read as zeros); in a version 1
// file they are sealed zero blocks. ReadAt and Size may run concurrently with
// each other; WriteAt and Truncate need exclusive use (a sync.RWMutex in
// the caller). Keep one File per backing file.
type File struct {
	b      Backing
	key    *Key
	name   string // for error messages
	hdr    []byte // nil until read from or written to the backing file
	nonces *nonceSource
	size   int64 // plaintext size; the File is the backing file's only writer
	// last is the plaintext of the last block the latest write sealed, so
	// that the next write into the same block (a log appended in pieces
	// smaller than a block: InnoDB's redo log, binary logs) merges without
	// reading and opening it again. Valid only while the backing file holds
	// exactly that block; guarded like WriteAt. A consequence: a block
	// tampered with in the store after this File wrote it is overwritten
	// from the authentic plaintext instead of failing the write, as a
	// write covering a whole block always did; reads still authenticate
	// every block they return.
	last *lastBlock
	// merges is where writes and truncates read the rest of a block they
	// change only part of; the backing file unless SetMergeReader.
	merges io.ReaderAt
}

// lastBlock is one block's plaintext as last written.
type lastBlock struct {
	valid bool
	blk   int64
	n     int // plaintext bytes in the block
	data  [BlockSize]byte
}

// forget drops the cached block.
func (f *File) forget() {
	if f.last != nil {
		f.last.valid = false
	}
}

// Open returns a File over b sealed with key. name is only used in errors.
// An empty backing file, or one holding just a header, is a valid empty
// file; a fresh header (new file ID) is written on its first write. A
// lone header is not authenticated by anything, so it is never reused:
// otherwise a header copied from another file would make new blocks
// valid in that file.
func Open(b Backing, key *Key, name string) (*File, error) {
	nonces, err := newNonceSource()
	if err != nil {
		return nil, err
	}
	f := &File{b: b, key: key, name: name, nonces: nonces}
	fi, err := b.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat %s: %w", name, err)
	}
	if fi.Size() <= HeaderSize {
		if fi.Size() != 0 && fi.Size() != HeaderSize {
			return nil, corrupt(name, HeaderBlock, "file is %d bytes, shorter than the %d-byte header", fi.Size(), HeaderSize)
		}
		return f, nil
	}
	size, err := PlainSize(fi.Size())
	if err != nil {
		return nil, corrupt(name, HeaderBlock, "%v", err)
	}
	f.size = size
	hdr := make([]byte, HeaderSize)
	if _, err := b.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("failed to read header of %s: %w", name, err)
	}
	h, err := ParseHeader(hdr)
	if err != nil {
		return nil, corrupt(name, HeaderBlock, "%v", err)
	}
	if h.KeyID != key.id {
		return nil, &CorruptError{File: name, Block: HeaderBlock, Err: ErrWrongKey}
	}
	f.hdr = hdr
	return f, nil
}

// Size returns the plaintext size: computed from the ciphertext size at
// Open and kept up to date by every write and truncate since (no stat per
// call). Nothing else may write the backing file while a File is open on
// it.
func (f *File) Size() (int64, error) { return f.size, nil }

// SetMergeReader makes the reads a write or truncate needs for itself (the
// rest of a block it changes only in part) go through r, a reader of the
// same backing file, instead of the backing file. The daemon passes one
// that leaves the store file's access time alone: a write is not a read,
// and every access-time change is an inode update that fdatasync may have
// to write as well. Set before the first write; r must see every write.
func (f *File) SetMergeReader(r io.ReaderAt) { f.merges = r }

// blockOffset is where stored block n starts in the backing file.
func blockOffset(n int64) int64 { return HeaderSize + n*CipherBlockSize }

// ReadAt reads len(p) plaintext bytes at off. Like io.ReaderAt it returns
// io.EOF when fewer bytes are available. Every block it touches is
// authenticated before any of its bytes reach p.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", f.name)
	}
	size, err := f.Size()
	if err != nil {
		return 0, err
	}
	if off >= size || len(p) == 0 {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := int64(len(p))
	if off+want > size {
		want = size - off
	}
	if err := f.readRange(p[:want], off, size); err != nil {
		return 0, err
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// readRange fills p with plaintext at off; the range lies inside size.
// Blocks p covers whole are opened straight into p; only the partial
// blocks at either end go through a scratch block.
func (f *File) readRange(p []byte, off, size int64) error {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	buf := sc.buf
	ad := sc.ad[:0]

	first := off / BlockSize
	last := (off + int64(len(p)) - 1) / BlockSize
	lastOfFile := (size - 1) / BlockSize
	for b := first; b <= last; {
		n := last - b + 1
		if n > batchBlocks {
			n = batchBlocks
		}
		// Stored length of this batch: the file's last block may be short.
		end := blockOffset(b + n)
		if b+n-1 == lastOfFile {
			end = CipherSize(size)
		}
		start := blockOffset(b)
		chunk := buf[:end-start]
		if _, err := f.b.ReadAt(chunk, start); err != nil {
			if err == io.EOF {
				return corrupt(f.name, b, "file shorter than its size says (changed while reading?)")
			}
			return fmt.Errorf("failed to read %s: %w", f.name, err)
		}
		for i := int64(0); i < n; i++ {
			blk := b + i
			s := i * CipherBlockSize
			e := min(s+CipherBlockSize, int64(len(chunk)))
			bStart := blk * BlockSize
			plainLen := min(int64(BlockSize), size-bStart)
			pend := off + int64(len(p))
			if bStart >= off && bStart+plainLen <= pend {
				// Whole block wanted: open it in place.
				if _, err := f.key.openBlock(p[bStart-off:bStart-off], chunk[s:e], blk, f.hdr, ad); err != nil {
					return corrupt(f.name, blk, "%v", errAuth)
				}
				continue
			}
			pt, err := f.key.openBlock(sc.plain[:], chunk[s:e], blk, f.hdr, ad)
			if err != nil {
				return corrupt(f.name, blk, "%v", errAuth)
			}
			from := max(off-bStart, 0)
			to := min(int64(len(pt)), pend-bStart)
			copy(p[bStart+from-off:], pt[from:to])
		}
		b += n
	}
	return nil
}

// WriteAt writes p at plaintext offset off. Writing past the end first
// extends the file with zeros.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", f.name)
	}
	if len(p) == 0 {
		return 0, nil
	}
	size, err := f.Size()
	if err != nil {
		return 0, err
	}
	if off > MaxSize-int64(len(p)) {
		return 0, f.tooLarge(off + int64(len(p)))
	}
	if err := f.ensureHeader(); err != nil {
		return 0, err
	}
	// A failed write (EIO, ENOSPC) must not leave the file longer than
	// before with a torn last block, unreadable for good: put the end back
	// where it was (restoreEnd). Blocks inside the old end were each
	// written whole or not at all, except one a failed store write tore;
	// that one reads as an error, never as wrong bytes.
	oldEnd := size
	fail := func(err error) (int, error) {
		if off+int64(len(p)) > oldEnd {
			f.restoreEnd(oldEnd)
		}
		return 0, err
	}
	if off > size {
		// Zeros up to off: sealed in a file without holes; in one with
		// holes only the rest of the current last block, the blocks
		// between stay unwritten (holes) in the store.
		end := off
		if f.holes() {
			end = min(off, roundUp(size))
		}
		if err := f.fillZeros(size, end); err != nil {
			return fail(err)
		}
		size = end
	}
	if err := f.writeRange(p, off, size); err != nil {
		return fail(err)
	}
	if end := off + int64(len(p)); end > f.size {
		f.size = end
	}
	return len(p), nil
}

// ensureHeader writes a fresh header into an empty backing file.
func (f *File) ensureHeader() error {
	if f.hdr != nil {
		return nil
	}
	// Any stale header-only content is replaced, never reused.
	h, err := NewHeader(f.key.id)
	if err != nil {
		return err
	}
	hdr := h.Marshal()
	if _, err := f.b.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("failed to write header of %s: %w", f.name, err)
	}
	f.hdr = hdr
	return nil
}

// zeroChunk is the largest piece of zeros fillZeros writes at once.
var zeroChunk = make([]byte, batchBlocks*BlockSize)

// fillZeros extends the file from size to end with zeros.
func (f *File) fillZeros(size, end int64) error {
	for size < end {
		n := end - size
		if n > int64(len(zeroChunk)) {
			n = int64(len(zeroChunk))
		}
		if err := f.writeRange(zeroChunk[:n], size, size); err != nil {
			return err
		}
		size += n
		f.size = size
	}
	return nil
}

// writeRange writes p at off into a file of plaintext size size, where
// off <= size. Blocks only partly covered by p are read, checked and
// merged first.
func (f *File) writeRange(p []byte, off, size int64) error {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	buf := sc.buf
	merge := sc.merge[:]
	nonces := sc.nonces[:]
	ad := sc.ad[:0]

	first := off / BlockSize
	last := (off + int64(len(p)) - 1) / BlockSize
	var lastPT []byte // plaintext of the batch's last block
	for b := first; b <= last; {
		n := last - b + 1
		if n > batchBlocks {
			n = batchBlocks
		}
		if err := f.nonces.fill(nonces[:n*NonceSize]); err != nil {
			return err
		}
		out := buf[:0]
		for i := int64(0); i < n; i++ {
			blk := b + i
			bStart := blk * BlockSize
			// Old plaintext in this block, and the part p covers.
			oldLen := size - bStart
			if oldLen < 0 {
				oldLen = 0
			}
			if oldLen > BlockSize {
				oldLen = BlockSize
			}
			ws := int64(0)
			if off > bStart {
				ws = off - bStart
			}
			we := off + int64(len(p)) - bStart
			if we > BlockSize {
				we = BlockSize
			}
			src := p[bStart+ws-off : bStart+we-off]
			var pt []byte
			if ws == 0 && we >= oldLen {
				pt = src
			} else {
				if c := f.last; c != nil && c.valid && c.blk == blk && int64(c.n) == oldLen {
					copy(merge, c.data[:oldLen])
				} else if _, err := f.readBlock(merge, sc.stored[:], blk, oldLen, ad); err != nil {
					return err
				}
				newLen := oldLen
				if we > newLen {
					newLen = we
				}
				pt = merge[:newLen]
				clear(pt[oldLen:])
				copy(pt[ws:we], src)
			}
			dst := out[len(out) : len(out)+len(pt)+BlockOverhead]
			sealed := f.key.sealBlock(dst, nonces[i*NonceSize:(i+1)*NonceSize], pt, blk, f.hdr, ad)
			out = out[:len(out)+len(sealed)]
			lastPT = pt
		}
		// The blocks in the cache's range are about to change: forget it
		// before the write, so that a failed or short write cannot leave
		// it claiming what the store does not hold.
		if c := f.last; c != nil && c.valid && c.blk >= b && c.blk < b+n {
			c.valid = false
		}
		if _, err := f.b.WriteAt(out, blockOffset(b)); err != nil {
			return fmt.Errorf("failed to write %s: %w", f.name, err)
		}
		if b+n-1 == last {
			f.remember(last, lastPT)
		}
		b += n
	}
	return nil
}

// remember caches pt as the plaintext of block blk, now in the store.
func (f *File) remember(blk int64, pt []byte) {
	if f.last == nil {
		f.last = new(lastBlock)
	}
	c := f.last
	c.blk, c.n, c.valid = blk, copy(c.data[:], pt), true
}

// readBlock reads and opens block blk, which holds plainLen bytes, into
// dst[:BlockSize] and returns the plaintext; storedBuf holds at least a
// stored block.
func (f *File) readBlock(dst, storedBuf []byte, blk, plainLen int64, ad []byte) ([]byte, error) {
	if plainLen == 0 {
		return dst[:0], nil
	}
	stored := storedBuf[:plainLen+BlockOverhead]
	r := f.merges
	if r == nil {
		r = f.b
	}
	if _, err := r.ReadAt(stored, blockOffset(blk)); err != nil {
		if err == io.EOF {
			return nil, corrupt(f.name, blk, "file shorter than its size says")
		}
		return nil, fmt.Errorf("failed to read %s: %w", f.name, err)
	}
	pt, err := f.key.openBlock(dst, stored, blk, f.hdr, ad)
	if err != nil {
		return nil, corrupt(f.name, blk, "%v", errAuth)
	}
	return pt, nil
}

// Truncate sets the plaintext size. Growing fills with zeros; shrinking to
// inside a block re-seals that block's remaining bytes.
func (f *File) Truncate(newSize int64) error {
	if newSize < 0 {
		return fmt.Errorf("%s: negative size", f.name)
	}
	size, err := f.Size()
	if err != nil {
		return err
	}
	if newSize != size {
		f.forget()
	}
	switch {
	case newSize == size:
		return nil
	case newSize > size:
		if newSize > MaxSize {
			return f.tooLarge(newSize)
		}
		if err := f.ensureHeader(); err != nil {
			return err
		}
		if newSize <= roundUp(size) {
			// Growing inside the last block: re-seal it longer.
			return f.fillZeros(size, newSize)
		}
		// Seal the zeros that complete the old last block first, then set
		// the stored size: a process killed in between leaves a file
		// that ends in whole blocks (and a kill inside the sealing write
		// a torn last block, which RepairTail cuts); the other order left
		// the old last block short inside a longer file, a torn block in
		// the middle. Where the store's filesystem cannot hold the new
		// size (EFBIG) the old end is put back. Everything after the old
		// last block is a hole (or, in a version 1 file, zeros sealed
		// block by block).
		if f.holes() {
			if err := f.fillZeros(size, roundUp(size)); err != nil {
				f.restoreEnd(size)
				return err
			}
			if err := f.truncBacking(CipherSize(newSize)); err != nil {
				f.restoreEnd(size)
				return err
			}
		} else {
			// Version 1: check the size first, then seal block by block.
			if err := f.truncBacking(CipherSize(newSize)); err != nil {
				f.truncBacking(CipherSize(size))
				return err
			}
			if err := f.fillZeros(size, newSize); err != nil {
				return err
			}
		}
		f.size = newSize
		return nil
	}
	if newSize == 0 {
		// Drop the header too: the next write starts a new file ID, so
		// blocks written before the truncate can never be replayed into
		// the file after it.
		if err := f.truncBacking(0); err != nil {
			return err
		}
		f.hdr = nil
		f.size = 0
		return nil
	}
	rem := newSize % BlockSize
	if rem == 0 {
		if err := f.truncBacking(blockOffset(newSize / BlockSize)); err != nil {
			return err
		}
		f.size = newSize
		return nil
	}
	// Cut after the block that becomes the last, re-seal it shorter, then
	// cut after it. A process killed after the first cut leaves a file
	// ending in whole blocks; after the re-sealing, a last block whose
	// sealed prefix authenticates and which RepairTail cuts back to that
	// prefix. Never a torn block in the middle of the file.
	blk := newSize / BlockSize
	if end := blockOffset(blk + 1); end < CipherSize(size) {
		if err := f.truncBacking(end); err != nil {
			return err
		}
		f.size = (blk + 1) * BlockSize
		size = f.size
	}
	oldLen := size - blk*BlockSize
	if oldLen > BlockSize {
		oldLen = BlockSize
	}
	merge := make([]byte, BlockSize)
	ad := make([]byte, 0, 8+HeaderSize)
	pt, err := f.readBlock(merge, make([]byte, CipherBlockSize), blk, oldLen, ad)
	if err != nil {
		return err
	}
	nonce := make([]byte, NonceSize)
	if err := f.nonces.fill(nonce); err != nil {
		return err
	}
	dst := make([]byte, rem+BlockOverhead)
	sealed := f.key.sealBlock(dst, nonce, pt[:rem], blk, f.hdr, ad)
	if _, err := f.b.WriteAt(sealed, blockOffset(blk)); err != nil {
		return fmt.Errorf("failed to write %s: %w", f.name, err)
	}
	if err := f.truncBacking(blockOffset(blk) + int64(len(sealed))); err != nil {
		return err
	}
	f.size = newSize
	return nil
}

// restoreEnd puts the end of the file back at end after a failed write
// that extended it. The old last block, if partial, may have been
// rewritten longer before the failure: its first bytes are sealed again
// from what is stored now (as Truncate does), so the bytes the file held
// stay readable. If that very block is the one the failure tore, its old
// bytes are gone and it reads as an error.
func (f *File) restoreEnd(end int64) {
	f.forget()
	if rem := end % BlockSize; rem != 0 {
		blk := end / BlockSize
		if st, err := f.b.Stat(); err == nil {
			stored := min(st.Size()-blockOffset(blk), CipherBlockSize)
			if n := stored - BlockOverhead; n >= rem {
				f.size = blk*BlockSize + n
				if f.Truncate(end) == nil {
					return
				}
			}
		}
	}
	f.truncBacking(CipherSize(end))
	f.size = end
}

func (f *File) truncBacking(n int64) error {
	if err := f.b.Truncate(n); err != nil {
		return fmt.Errorf("failed to truncate %s: %w", f.name, err)
	}
	return nil
}

// holes reports whether the file may hold holes: its header is version 2
// or later (a file without a header yet gets one).
func (f *File) holes() bool { return f.hdr == nil || holesAllowed(f.hdr) }

// roundUp is size rounded up to a whole block.
func roundUp(size int64) int64 { return (size + BlockSize - 1) / BlockSize * BlockSize }

func (f *File) tooLarge(size int64) error {
	return fmt.Errorf("%s: size %d is beyond the format's maximum of %d bytes: %w", f.name, size, int64(MaxSize), syscall.EFBIG)
}

// fder is a backing file with a descriptor (an *os.File), for hole
// punching and SEEK_DATA/SEEK_HOLE.
type fder interface{ Fd() uintptr }

// PunchHole makes the plaintext range [off, off+n) read as zeros without
// changing the size, as fallocate(PUNCH_HOLE|KEEP_SIZE). Blocks the range
// covers whole become holes in the store (the store's own hole punching,
// or zero bytes where the store's filesystem has none); the parts of
// blocks at either end are sealed zeros. In a version 1 file (no holes)
// the whole range is sealed zeros.
func (f *File) PunchHole(off, n int64) error {
	if off < 0 || n <= 0 {
		return fmt.Errorf("%s: invalid range: %w", f.name, syscall.EINVAL)
	}
	end := min(off+n, f.size)
	if off >= end || f.hdr == nil {
		return nil
	}
	if !f.holes() {
		return f.zeroRange(off, end)
	}
	first := roundUp(off) / BlockSize // first block covered whole
	last := end / BlockSize           // blocks before it are covered whole...
	if end == f.size {
		last = roundUp(end) / BlockSize // ...and the file's short last block too
	}
	if first >= last {
		return f.zeroRange(off, end)
	}
	if err := f.zeroRange(off, first*BlockSize); err != nil {
		return err
	}
	if err := f.zeroRange(min(last*BlockSize, end), end); err != nil {
		return err
	}
	if c := f.last; c != nil && c.valid && c.blk >= first && c.blk < last {
		c.valid = false
	}
	from, to := blockOffset(first), min(blockOffset(last), CipherSize(f.size))
	if b, ok := f.b.(fder); ok {
		err := unix.Fallocate(int(b.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, from, to-from)
		if err == nil {
			return nil
		}
		if err != unix.EOPNOTSUPP {
			return fmt.Errorf("failed to punch a hole in %s: %w", f.name, err)
		}
	}
	// No hole punching in the store: zero bytes read as a hole as well.
	for from < to {
		k := min(to-from, int64(len(zeroBytes)))
		if _, err := f.b.WriteAt(zeroBytes[:k], from); err != nil {
			return fmt.Errorf("failed to write %s: %w", f.name, err)
		}
		from += k
	}
	return nil
}

var zeroBytes = make([]byte, batchBlocks*CipherBlockSize)

// zeroRange seals zeros over [off, end), inside the file.
func (f *File) zeroRange(off, end int64) error {
	for off < end {
		k := min(end-off, int64(len(zeroChunk)))
		if err := f.writeRange(zeroChunk[:k], off, f.size); err != nil {
			return err
		}
		off += k
	}
	return nil
}

// SeekData returns the first offset at or after off that holds data, as
// lseek(SEEK_DATA); io.EOF (ENXIO) when there is none. SeekHole returns
// the first offset at or after off where a hole starts, the size if no
// hole follows. Holes are found in the store (its SEEK_HOLE), at block
// granularity; a block counts as a hole only if all its stored bytes
// are zero, so a hole is never reported over data (data may be reported
// over zeros, as POSIX allows).
func (f *File) SeekData(off int64) (int64, error) { return f.seek(off, unix.SEEK_DATA) }

// SeekHole: see SeekData.
func (f *File) SeekHole(off int64) (int64, error) { return f.seek(off, unix.SEEK_HOLE) }

func (f *File) seek(off int64, whence int) (int64, error) {
	size := f.size
	if off < 0 || off >= size {
		return 0, syscall.ENXIO
	}
	b, ok := f.b.(fder)
	if !ok || !f.holes() {
		if whence == unix.SEEK_DATA {
			return off, nil
		}
		return size, nil
	}
	fd := int(b.Fd())
	nblocks := roundUp(size) / BlockSize
	blk := off / BlockSize
	at := func(c int64) int64 { return max(off, c*BlockSize) }
	for blk < nblocks {
		if whence == unix.SEEK_DATA {
			d, err := unix.Seek(fd, blockOffset(blk), unix.SEEK_DATA)
			if err == unix.ENXIO {
				return 0, syscall.ENXIO
			}
			if err != nil {
				return 0, err
			}
			c := max(blk, blockOf(d))
			if c >= nblocks {
				return 0, syscall.ENXIO
			}
			if z, err := f.storedZero(c); err != nil || !z {
				return at(c), err
			}
			blk = c + 1
			continue
		}
		h, err := unix.Seek(fd, blockOffset(blk), unix.SEEK_HOLE)
		if err != nil {
			return 0, err
		}
		if h >= CipherSize(size) {
			return size, nil
		}
		// The block where the store's hole starts (it may start in
		// allocated bytes, or end in data): a hole only if all its
		// stored bytes are zero.
		c := max(blk, blockOf(h))
		if z, err := f.storedZero(c); err != nil {
			return 0, err
		} else if !z {
			blk = c + 1
			continue
		}
		// The store's hole may begin inside an earlier block of zeros.
		for c > blk {
			z, err := f.storedZero(c - 1)
			if err != nil || !z {
				break
			}
			c--
		}
		return at(c), nil
	}
	if whence == unix.SEEK_DATA {
		return 0, syscall.ENXIO
	}
	return size, nil
}

// blockOf is the block whose stored bytes include offset c.
func blockOf(c int64) int64 {
	if c < HeaderSize {
		return 0
	}
	return (c - HeaderSize) / CipherBlockSize
}

// storedZero reports whether block c is a hole: all its stored bytes zero.
func (f *File) storedZero(c int64) (bool, error) {
	n := min(int64(BlockSize), f.size-c*BlockSize) + BlockOverhead
	if n <= BlockOverhead {
		return false, nil
	}
	buf := make([]byte, n)
	r := f.merges
	if r == nil {
		r = f.b
	}
	if _, err := r.ReadAt(buf, blockOffset(c)); err != nil {
		return false, fmt.Errorf("failed to read %s: %w", f.name, err)
	}
	return allZero(buf), nil
}
