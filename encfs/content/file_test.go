package content

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func testKey(t testing.TB, seed byte) *Key {
	t.Helper()
	raw := bytes.Repeat([]byte{seed}, 32)
	k, err := NewKey(raw, [KeyIDSize]byte{seed, 1, 2, 3, 4, 5, 6, 7})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tempBacking(t testing.TB) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "c"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func readAll(t testing.TB, f *File) []byte {
	t.Helper()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	if size == 0 {
		return got
	}
	n, err := f.ReadAt(got, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("ReadAt: %v", err)
	}
	if int64(n) != size {
		t.Fatalf("ReadAt read %d bytes, want %d", n, size)
	}
	return got
}

var roundTripSizes = []int{0, 1, 4095, 4096, 4097, 1<<20 + 1}

func TestFileRoundTrip(t *testing.T) {
	sizes := roundTripSizes
	if !testing.Short() {
		sizes = append(sizes, 50<<20)
	}
	for _, size := range sizes {
		t.Run(sizeName(size), func(t *testing.T) {
			key := testKey(t, 1)
			b := tempBacking(t)
			f, err := Open(b, key, "f")
			if err != nil {
				t.Fatal(err)
			}
			data := randBytes(t, size)
			if size > 0 {
				if _, err := f.WriteAt(data, 0); err != nil {
					t.Fatal(err)
				}
			}
			fi, _ := b.Stat()
			if size > 0 && fi.Size() != CipherSize(int64(size)) {
				t.Fatalf("ciphertext is %d bytes, want %d", fi.Size(), CipherSize(int64(size)))
			}
			// Reopen: the size comes from the ciphertext size alone.
			f2, err := Open(b, key, "f")
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, f2); !bytes.Equal(got, data) {
				t.Fatalf("round trip of %d bytes differs", size)
			}
			// The stream reader agrees with the random-access reader; it
			// refuses input without a header, which only a never-written
			// random-access file has.
			if size == 0 {
				if _, err := NewReader(b, key, "f"); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("stream reader accepted an empty input: %v", err)
				}
				return
			}
			if _, err := b.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			sr, err := NewReader(b, key, "f")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(sr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("stream read of %d bytes differs", size)
			}
		})
	}
}

func TestStreamRoundTrip(t *testing.T) {
	for _, size := range append(roundTripSizes, streamBatch*BlockSize, streamBatch*BlockSize+1, 3*streamBatch*BlockSize-7) {
		t.Run(sizeName(size), func(t *testing.T) {
			key := testKey(t, 2)
			data := randBytes(t, size)
			var enc bytes.Buffer
			w, err := NewWriter(&enc, key)
			if err != nil {
				t.Fatal(err)
			}
			// Uneven write sizes exercise the batching.
			rest := data
			for len(rest) > 0 {
				n := min(len(rest), 1+mrand.IntN(3*BlockSize+streamBatch*BlockSize/2))
				if _, err := w.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if int64(enc.Len()) != CipherSize(int64(size)) {
				t.Fatalf("stream is %d bytes, want %d", enc.Len(), CipherSize(int64(size)))
			}
			// A stream-written file opens for random access too.
			b := tempBacking(t)
			if _, err := b.Write(enc.Bytes()); err != nil {
				t.Fatal(err)
			}
			f, err := Open(b, key, "s")
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, f); !bytes.Equal(got, data) {
				t.Fatal("random-access read of stream-written file differs")
			}
			sr, err := NewReader(bytes.NewReader(enc.Bytes()), key, "s")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(sr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("stream round trip differs")
			}
		})
	}
}

func TestSparseAndTruncate(t *testing.T) {
	key := testKey(t, 3)
	b := tempBacking(t)
	f, err := Open(b, key, "sparse")
	if err != nil {
		t.Fatal(err)
	}
	model := []byte{}
	write := func(off int, data []byte) {
		t.Helper()
		if _, err := f.WriteAt(data, int64(off)); err != nil {
			t.Fatal(err)
		}
		if end := off + len(data); end > len(model) {
			model = append(model, make([]byte, end-len(model))...)
		}
		copy(model[off:], data)
	}
	trunc := func(n int) {
		t.Helper()
		if err := f.Truncate(int64(n)); err != nil {
			t.Fatal(err)
		}
		if n > len(model) {
			model = append(model, make([]byte, n-len(model))...)
		}
		model = model[:n]
	}
	check := func(what string) {
		t.Helper()
		if got := readAll(t, f); !bytes.Equal(got, model) {
			t.Fatalf("%s: content differs from model (len %d vs %d)", what, len(got), len(model))
		}
	}
	write(10<<20, []byte("far away")) // a hole of 10 MiB
	check("write after hole")
	hole := make([]byte, 5000)
	if _, err := f.ReadAt(hole, 3<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hole, make([]byte, 5000)) {
		t.Fatal("hole does not read as zeros")
	}
	trunc(4097)
	check("truncate into block")
	trunc(4096)
	check("truncate at block boundary")
	trunc(100000)
	check("truncate up")
	write(99990, randBytes(t, 20))
	check("write across old end")
	trunc(0)
	check("truncate to zero")
	write(1, []byte("x"))
	check("write after truncate to zero")
}

// TestRandomWrites compares random writes, truncates and reads with a
// plaintext model.
func TestRandomWrites(t *testing.T) {
	key := testKey(t, 4)
	b := tempBacking(t)
	f, err := Open(b, key, "r")
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	var model []byte
	for i := 0; i < 400; i++ {
		switch op := rng.IntN(10); {
		case op < 7:
			off := rng.IntN(5 * BlockSize)
			data := make([]byte, rng.IntN(3*BlockSize))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			if _, err := f.WriteAt(data, int64(off)); err != nil {
				t.Fatal(err)
			}
			if len(data) > 0 {
				if end := off + len(data); end > len(model) {
					model = append(model, make([]byte, end-len(model))...)
				}
				copy(model[off:], data)
			}
		case op < 8:
			n := rng.IntN(6 * BlockSize)
			if err := f.Truncate(int64(n)); err != nil {
				t.Fatal(err)
			}
			if n > len(model) {
				model = append(model, make([]byte, n-len(model))...)
			}
			model = model[:n]
		default:
			off := rng.IntN(len(model) + 10)
			p := make([]byte, rng.IntN(2*BlockSize)+1)
			n, err := f.ReadAt(p, int64(off))
			want := 0
			if off < len(model) {
				want = min(len(p), len(model)-off)
			}
			if n != want {
				t.Fatalf("step %d: read %d bytes at %d, want %d (err %v)", i, n, off, want, err)
			}
			if n < len(p) && err != io.EOF {
				t.Fatalf("step %d: short read without io.EOF: %v", i, err)
			}
			if !bytes.Equal(p[:n], model[off:off+n]) {
				t.Fatalf("step %d: read at %d differs from model", i, off)
			}
		}
	}
	if got := readAll(t, f); !bytes.Equal(got, model) {
		t.Fatal("final content differs from model")
	}
}

func TestOpenWrongKey(t *testing.T) {
	b := tempBacking(t)
	f, err := Open(b, testKey(t, 5), "w")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("secret"), 0); err != nil {
		t.Fatal(err)
	}
	_, err = Open(b, testKey(t, 6), "w")
	if !errors.Is(err, ErrWrongKey) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with another key: got %v, want ErrWrongKey", err)
	}
}

func sizeName(n int) string { return strconv.Itoa(n) }

// TestHeaderNeverReused: a lone header is unauthenticated, so a file that
// holds only a header (copied from another file, or left by a truncate to
// zero) gets a fresh file ID on its next write.
func TestHeaderNeverReused(t *testing.T) {
	key := testKey(t, 13)
	a := tempBacking(t)
	fa, _ := Open(a, key, "a")
	if _, err := fa.WriteAt(randBytes(t, 3*BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	hdrA := make([]byte, HeaderSize)
	a.ReadAt(hdrA, 0)

	// B starts as a copy of A's header only.
	b := tempBacking(t)
	b.Write(hdrA)
	fb, err := Open(b, key, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fb.WriteAt(randBytes(t, BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	hdrB := make([]byte, HeaderSize)
	b.ReadAt(hdrB, 0)
	if bytes.Equal(hdrA, hdrB) {
		t.Fatal("a header-only file kept the header it was given")
	}

	// Truncate to zero drops the header; the next write has a new file ID.
	if err := fa.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if fi, _ := a.Stat(); fi.Size() != 0 {
		t.Fatalf("truncate to 0 left %d bytes", fi.Size())
	}
	if _, err := fa.WriteAt([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	hdrA2 := make([]byte, HeaderSize)
	a.ReadAt(hdrA2, 0)
	if bytes.Equal(hdrA, hdrA2) {
		t.Fatal("file ID reused after truncate to zero")
	}
}

// countingBacking counts reads and can fail the next write.
type countingBacking struct {
	*os.File
	reads     int
	failWrite bool
}

func (c *countingBacking) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.File.ReadAt(p, off)
}

func (c *countingBacking) WriteAt(p []byte, off int64) (int, error) {
	if c.failWrite {
		c.failWrite = false
		return 0, errors.New("injected write failure")
	}
	return c.File.WriteAt(p, off)
}

// A log written in pieces smaller than a block (InnoDB's redo log rewrites
// the tail of its last block on every commit) merges from the block the
// previous write left behind: no read of the store, and the store holds
// exactly what a fresh File reads back.
func TestLogAppendsMergeWithoutReading(t *testing.T) {
	key := testKey(t, 5)
	cb := &countingBacking{File: tempBacking(t)}
	f, err := Open(cb, key, "log")
	if err != nil {
		t.Fatal(err)
	}
	const fileSize = 16 * BlockSize
	model := make([]byte, fileSize)
	if _, err := f.WriteAt(model, 0); err != nil { // preallocated, like ib_logfile0
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(7, 8))
	off := 0
	for i := 0; i < 300; i++ {
		n := 200 + rng.IntN(3000)
		if off+n > fileSize {
			off = 0 // wrap around, as a circular log does
		}
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		before := cb.reads
		if _, err := f.WriteAt(data, int64(off)); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], data)
		// The block the write starts in is the one the previous write
		// ended in: merged from the cache. Only a partly covered end block
		// in another block (old bytes of the log's previous lap) is read.
		end := off + n
		want := 0
		if end%BlockSize != 0 && end/BlockSize != off/BlockSize {
			want = 1
		}
		if i > 0 && off != 0 && cb.reads-before != want {
			t.Fatalf("write %d at %d+%d read the store %d times, want %d", i, off, n, cb.reads-before, want)
		}
		off += n
	}
	g, err := Open(cb.File, key, "log")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, g); !bytes.Equal(got, model) {
		t.Fatal("store differs from the model after cached merges")
	}
}

// countingReader counts the reads made through it.
type countingReader struct {
	r     io.ReaderAt
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

// The reads a write or truncate makes for itself go through the merge
// reader, never the backing file: the daemon's merge reader leaves the
// store file's access time alone.
func TestMergeReader(t *testing.T) {
	key := testKey(t, 7)
	raw := tempBacking(t)
	w, err := Open(raw, key, "f")
	if err != nil {
		t.Fatal(err)
	}
	model := randBytes(t, 3*BlockSize)
	if _, err := w.WriteAt(model, 0); err != nil {
		t.Fatal(err)
	}
	cb := &countingBacking{File: raw}
	f, err := Open(cb, key, "f") // no cached block
	if err != nil {
		t.Fatal(err)
	}
	mr := &countingReader{r: raw}
	f.SetMergeReader(mr)
	opened := cb.reads // the header
	if _, err := f.WriteAt([]byte("partial"), BlockSize+100); err != nil {
		t.Fatal(err)
	}
	copy(model[BlockSize+100:], "partial")
	if err := f.Truncate(2*BlockSize + 10); err != nil { // inside block 2
		t.Fatal(err)
	}
	model = model[:2*BlockSize+10]
	if cb.reads != opened || mr.reads != 2 {
		t.Fatalf("merges read the backing file %d times and the merge reader %d times, want 0 and 2",
			cb.reads-opened, mr.reads)
	}
	if got := readAll(t, f); !bytes.Equal(got, model) {
		t.Fatal("content differs after merges through the merge reader")
	}
}

// A failed write must not leave the cached block claiming what the store
// does not hold; a truncate inside the cached block must not resurrect
// the bytes it cut.
func TestLastBlockAfterFailureAndTruncate(t *testing.T) {
	key := testKey(t, 6)
	cb := &countingBacking{File: tempBacking(t)}
	f, err := Open(cb, key, "f")
	if err != nil {
		t.Fatal(err)
	}
	a := bytes.Repeat([]byte{'a'}, 100)
	if _, err := f.WriteAt(a, 0); err != nil {
		t.Fatal(err)
	}
	cb.failWrite = true
	if _, err := f.WriteAt(bytes.Repeat([]byte{'b'}, 50), 100); err == nil {
		t.Fatal("injected failure not reported")
	}
	if _, err := f.WriteAt([]byte("cc"), 10); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{}, a...)
	copy(want[10:], "cc")
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatalf("after a failed write: got %q, want %q", got, want)
	}

	// Cut inside the cached block, grow again, then merge into it: the cut
	// bytes must read as zeros.
	if err := f.Truncate(20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(200); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("dd"), 150); err != nil {
		t.Fatal(err)
	}
	want = append(want[:20:20], make([]byte, 180)...)
	copy(want[150:], "dd")
	g, err := Open(cb.File, key, "f")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, g); !bytes.Equal(got, want) {
		t.Fatalf("after truncate: got %q, want %q", got, want)
	}
}

// fullBacking fails a write that would grow the file past limit, after
// writing the part that fits (as a full file system does).
type fullBacking struct {
	*os.File
	limit int64
}

func (b *fullBacking) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= b.limit {
		return b.File.WriteAt(p, off)
	}
	n := 0
	if off < b.limit {
		n, _ = b.File.WriteAt(p[:b.limit-off], off)
	}
	return n, syscall.ENOSPC
}

// TestWriteFailureKeepsFileReadable: a write that extends the file and
// fails half-way (ENOSPC) leaves the file as it was: same size, every
// byte readable. Before the fix the torn block stayed and the whole file
// read as an error.
func TestWriteFailureKeepsFileReadable(t *testing.T) {
	key := testKey(t, 1)
	for _, start := range []int{0, 4096, 5000, 3 * BlockSize} {
		b := &fullBacking{File: tempBacking(t)}
		b.limit = 1 << 40
		f, err := Open(b, key, "f")
		if err != nil {
			t.Fatal(err)
		}
		first := randBytes(t, start)
		if _, err := f.WriteAt(first, 0); err != nil {
			t.Fatal(err)
		}
		// Room for half a block more.
		b.limit = CipherSize(int64(start)) + BlockSize/2
		if start%BlockSize != 0 {
			b.limit = CipherSize(roundUp(int64(start))) + BlockSize/2
		}
		if _, err := f.WriteAt(randBytes(t, 3*BlockSize), int64(start)); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("start %d: write past the limit: %v, want ENOSPC", start, err)
		}
		b.limit = 1 << 40
		g, err := Open(b, key, "f")
		if err != nil {
			t.Fatalf("start %d: reopen after the failed write: %v", start, err)
		}
		size, _ := g.Size()
		got := make([]byte, size)
		if _, err := g.ReadAt(got, 0); err != nil && err != io.EOF {
			t.Fatalf("start %d: read after the failed write: %v", start, err)
		}
		if int(size) != start || !bytes.Equal(got, first) {
			t.Fatalf("start %d: after the failed write the file has %d bytes, equal %v", start, size, bytes.Equal(got, first))
		}
	}
}
