package bench

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/mysecure/mysecure/encfs/content"
)

// The format is compared with raw AES-256-GCM on the same data: a 1 MiB
// buffer (one stream batch) handled as 256 blocks of 4 KiB. Every benchmark
// calls b.SetBytes with the plaintext bytes per op, so `go test -bench`
// prints MB/s of plaintext and bench/cmd/benchratio can divide them.
// All benchmarks run on one goroutine: the numbers are per core.

const (
	chunkSize  = 1 << 20 // bytes per op: one stream batch
	blockSize  = content.BlockSize
	blocksPerC = chunkSize / blockSize
	// fileSpan is the plaintext size of the random-access benchmark file.
	fileSpan = 64 << 20
)

// randBytes returns n random bytes; the benchmarks fail (not skip) when the
// system cannot provide them.
func randBytes(b *testing.B, n int) []byte {
	b.Helper()
	p := make([]byte, n)
	if _, err := crand.Read(p); err != nil {
		b.Fatalf("failed to read random bytes: %v", err)
	}
	return p
}

// rawGCM returns AES-256-GCM with the standard 12-byte nonce: the baseline.
func rawGCM(b *testing.B, nonceSize int) cipher.AEAD {
	b.Helper()
	blk, err := aes.NewCipher(randBytes(b, 32))
	if err != nil {
		b.Fatal(err)
	}
	var aead cipher.AEAD
	if nonceSize == 12 {
		aead, err = cipher.NewGCM(blk)
	} else {
		aead, err = cipher.NewGCMWithNonceSize(blk, nonceSize)
	}
	if err != nil {
		b.Fatal(err)
	}
	return aead
}

// formatKey returns a content key with a random raw key.
func formatKey(b *testing.B) *content.Key {
	b.Helper()
	k, err := content.NewKey(randBytes(b, 32), [content.KeyIDSize]byte{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// sealRaw seals plain as 4 KiB blocks into out (tag appended to each
// block), with a counter nonce and no additional data.
func sealRaw(aead cipher.AEAD, out, plain, nonce []byte, ctr *uint64) {
	stride := blockSize + aead.Overhead()
	for i := 0; i < len(plain)/blockSize; i++ {
		*ctr++
		binary.BigEndian.PutUint64(nonce[len(nonce)-8:], *ctr)
		aead.Seal(out[i*stride:i*stride], nonce, plain[i*blockSize:(i+1)*blockSize], nil)
	}
}

func benchRawSeal(b *testing.B, nonceSize int) {
	aead := rawGCM(b, nonceSize)
	plain := randBytes(b, chunkSize)
	out := make([]byte, blocksPerC*(blockSize+aead.Overhead()))
	nonce := make([]byte, nonceSize)
	var ctr uint64
	b.SetBytes(chunkSize)
	b.ReportAllocs()
	for b.Loop() {
		sealRaw(aead, out, plain, nonce, &ctr)
	}
}

// BenchmarkRawGCM is the baseline for sealing: crypto/aes + cipher.NewGCM
// sealing 4096-byte buffers with a 12-byte nonce.
func BenchmarkRawGCM(b *testing.B) { benchRawSeal(b, 12) }

// BenchmarkRawGCMNonce16 is BenchmarkRawGCM with the format's 16-byte nonce
// (non-standard sizes are GHASHed into the counter): it isolates what the
// nonce size costs. Diagnostic only; the targets are against RawGCM.
func BenchmarkRawGCMNonce16(b *testing.B) { benchRawSeal(b, 16) }

// openSpan is the size of the sealed data both Open benchmarks cycle
// through: the format's Reader needs a stream longer than one batch, and
// the raw baseline reads the same amount of memory so that neither has the
// advantage of a hotter cache.
const openSpan = 16 << 20

// sealSpan seals openSpan bytes of random plaintext as 4 KiB blocks with
// 12-byte counter nonces; it returns the sealed blocks back to back (each
// blockSize+Overhead bytes) and the nonces back to back.
func sealSpan(b *testing.B, aead cipher.AEAD) (sealed, nonces []byte) {
	b.Helper()
	plain := randBytes(b, chunkSize)
	stride := blockSize + aead.Overhead()
	nblocks := openSpan / blockSize
	sealed = make([]byte, nblocks*stride)
	nonces = make([]byte, nblocks*12)
	for i := range nblocks {
		nonce := nonces[i*12 : (i+1)*12]
		binary.BigEndian.PutUint64(nonce[4:], uint64(i))
		p := plain[(i%blocksPerC)*blockSize:][:blockSize]
		aead.Seal(sealed[i*stride:i*stride], nonce, p, nil)
	}
	return sealed, nonces
}

// BenchmarkRawGCMOpen is the baseline for opening: openSpan bytes sealed as
// in BenchmarkRawGCM, opened 1 MiB per op into one plaintext buffer.
func BenchmarkRawGCMOpen(b *testing.B) {
	aead := rawGCM(b, 12)
	sealed, nonces := sealSpan(b, aead)
	stride := blockSize + aead.Overhead()
	nblocks := openSpan / blockSize
	dst := make([]byte, chunkSize)
	b.SetBytes(chunkSize)
	b.ReportAllocs()
	first := 0
	for b.Loop() {
		for i := range blocksPerC {
			n := first + i
			if _, err := aead.Open(dst[i*blockSize:i*blockSize], nonces[n*12:(n+1)*12], sealed[n*stride:(n+1)*stride], nil); err != nil {
				b.Fatal(err)
			}
		}
		first = (first + blocksPerC) % nblocks
	}
}

// BenchmarkRawGCMOpenCopy is BenchmarkRawGCMOpen with each 1 MiB first
// copied out of the sealed span into a buffer, as any consumer of an
// io.Reader (and a read(2) from the page cache) must: the raw baseline
// with the one copy BenchmarkFormatOpen cannot avoid. Diagnostic only; the
// target is against RawGCMOpen.
func BenchmarkRawGCMOpenCopy(b *testing.B) {
	aead := rawGCM(b, 12)
	sealed, nonces := sealSpan(b, aead)
	stride := blockSize + aead.Overhead()
	nblocks := openSpan / blockSize
	in := make([]byte, blocksPerC*stride)
	dst := make([]byte, chunkSize)
	b.SetBytes(chunkSize)
	b.ReportAllocs()
	first := 0
	for b.Loop() {
		copy(in, sealed[first*stride:(first+blocksPerC)*stride])
		for i := range blocksPerC {
			n := first + i
			if _, err := aead.Open(dst[i*blockSize:i*blockSize], nonces[n*12:(n+1)*12], in[i*stride:(i+1)*stride], nil); err != nil {
				b.Fatal(err)
			}
		}
		first = (first + blocksPerC) % nblocks
	}
}

// BenchmarkFormatSeal is content.Writer sealing a stream written in 1 MiB
// chunks into io.Discard: what `file encrypt` does minus the file I/O.
func BenchmarkFormatSeal(b *testing.B) {
	key := formatKey(b)
	plain := randBytes(b, chunkSize)
	w, err := content.NewWriter(io.Discard, key)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(chunkSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(plain); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFormatOpenBlocks opens the format's blocks in memory, 1 MiB per
// op, from the same amount of sealed data as BenchmarkRawGCMOpen: the
// format's decrypt path (Key.OpenBlocks is what Reader runs per batch) on
// the same buffers as the raw baseline, with no I/O copy on either side.
func BenchmarkFormatOpenBlocks(b *testing.B) {
	key := formatKey(b)
	var sealed bytes.Buffer
	w, err := content.NewWriter(&sealed, key)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.Write(randBytes(b, openSpan)); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	hdr := sealed.Bytes()[:content.HeaderSize]
	body := sealed.Bytes()[content.HeaderSize:]
	nblocks := openSpan / blockSize
	dst := make([]byte, chunkSize)
	b.SetBytes(chunkSize)
	b.ReportAllocs()
	first := 0
	for b.Loop() {
		src := body[first*content.CipherBlockSize : (first+blocksPerC)*content.CipherBlockSize]
		if n, err := key.OpenBlocks(dst, src, int64(first), hdr); err != nil || n != chunkSize {
			b.Fatalf("opened %d bytes: %v", n, err)
		}
		first = (first + blocksPerC) % nblocks
	}
}

// BenchmarkFormatOpen is content.Reader over a pre-sealed stream of
// openSpan bytes in a bytes.Reader, read in 1 MiB chunks: `file decrypt`
// minus the file I/O. Creating a new Reader when the stream ends is not
// timed.
func BenchmarkFormatOpen(b *testing.B) {
	key := formatKey(b)
	var sealed bytes.Buffer
	sealed.Grow(int(content.CipherSize(openSpan)))
	w, err := content.NewWriter(&sealed, key)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.Write(randBytes(b, openSpan)); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	stream := sealed.Bytes()
	newReader := func() *content.Reader {
		r, err := content.NewReader(bytes.NewReader(stream), key, "bench")
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	r := newReader()
	buf := make([]byte, chunkSize)
	b.SetBytes(chunkSize)
	b.ReportAllocs()
	for b.Loop() {
		n, err := io.ReadFull(r, buf)
		if err == io.EOF {
			b.StopTimer()
			r = newReader()
			b.StartTimer()
			n, err = io.ReadFull(r, buf)
		}
		if err != nil || n != chunkSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

// benchDir returns a directory for backing files: a fresh one in /dev/shm
// when it exists (memory, like the `file encrypt` benchmark), else the
// test's temp dir.
func benchDir(b *testing.B) string {
	b.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "mysecure-bench-*")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return b.TempDir()
}

// openFile returns a random-access File over a new backing file holding
// fileSpan bytes of random plaintext.
func openFile(b *testing.B) *content.File {
	b.Helper()
	backing, err := os.CreateTemp(benchDir(b), "file-*")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { backing.Close() })
	f, err := content.Open(backing, formatKey(b), "bench")
	if err != nil {
		b.Fatal(err)
	}
	data := randBytes(b, chunkSize)
	for off := int64(0); off < fileSpan; off += chunkSize {
		if _, err := f.WriteAt(data, off); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// ioSizes are the request sizes of the random-access benchmarks: one
// block, a typical FUSE request and a stream batch. Offsets are random and
// aligned to the request size, so no block is merged.
var ioSizes = []struct {
	name string
	size int
}{
	{"4KiB", 4 << 10},
	{"128KiB", 128 << 10},
	{"1MiB", 1 << 20},
}

// offsets returns n random offsets aligned to size inside fileSpan, the
// same sequence on every run.
func offsets(n, size int) []int64 {
	rng := rand.New(rand.NewPCG(1, 2))
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = int64(rng.IntN(fileSpan/size)) * int64(size)
	}
	return offs
}

// BenchmarkFileWriteAt is content.File.WriteAt at random aligned offsets
// over a backing file in /dev/shm: the mount's write path minus FUSE.
func BenchmarkFileWriteAt(b *testing.B) {
	for _, s := range ioSizes {
		b.Run(s.name, func(b *testing.B) {
			f := openFile(b)
			data := randBytes(b, s.size)
			offs := offsets(1024, s.size)
			b.SetBytes(int64(s.size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := f.WriteAt(data, offs[i%len(offs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkFileReadAt is content.File.ReadAt at random aligned offsets
// over a backing file in /dev/shm: the mount's read path minus FUSE.
func BenchmarkFileReadAt(b *testing.B) {
	for _, s := range ioSizes {
		b.Run(s.name, func(b *testing.B) {
			f := openFile(b)
			buf := make([]byte, s.size)
			offs := offsets(1024, s.size)
			b.SetBytes(int64(s.size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := f.ReadAt(buf, offs[i%len(offs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
