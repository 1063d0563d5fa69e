package content

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// sealed returns the ciphertext of data under key.
func sealed(t *testing.T, key *Key, data []byte) []byte {
	t.Helper()
	var enc bytes.Buffer
	w, err := NewWriter(&enc, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return enc.Bytes()
}

// readBoth decrypts ct with the random-access File and the stream Reader
// and returns both errors; neither may return plaintext that differs from
// want.
func readBoth(t *testing.T, key *Key, ct, want []byte) (fileErr, streamErr error) {
	t.Helper()
	b := tempBacking(t)
	if _, err := b.Write(ct); err != nil {
		t.Fatal(err)
	}
	f, err := Open(b, key, "victim")
	if err != nil {
		fileErr = err
	} else {
		size, err := f.Size()
		if err != nil {
			fileErr = err
		} else {
			got := make([]byte, size)
			n, err := f.ReadAt(got, 0)
			if err != nil && err != io.EOF {
				fileErr = err
			} else if !bytes.Equal(got[:n], want) {
				t.Fatalf("File returned wrong plaintext without an error")
			}
		}
	}
	sr, err := NewReader(bytes.NewReader(ct), key, "victim")
	if err != nil {
		streamErr = err
	} else {
		got, err := io.ReadAll(sr)
		if err != nil {
			streamErr = err
		}
		if !bytes.HasPrefix(want, got) {
			t.Fatalf("Reader returned wrong plaintext")
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("Reader returned different plaintext without an error")
		}
	}
	return fileErr, streamErr
}

func TestTamper(t *testing.T) {
	key := testKey(t, 7)
	data := randBytes(t, 3*BlockSize+100) // blocks 0,1,2 full, block 3 short
	ct := sealed(t, key, data)
	other := sealed(t, key, randBytes(t, 3*BlockSize+100))

	blk := func(n int) (int, int) { // start and end of stored block n
		s := HeaderSize + n*CipherBlockSize
		return s, min(s+CipherBlockSize, len(ct))
	}
	cases := []struct {
		name      string
		mutate    func(c []byte) []byte
		wantBlock int64 // block the error must name
	}{
		{"magic", flip(0), HeaderBlock},
		{"version", flip(7), HeaderBlock},
		{"file ID", flip(10), 0},
		{"key ID", flip(30), HeaderBlock},
		{"nonce of block 1", flip(HeaderSize + CipherBlockSize + 3), 1},
		{"ciphertext of block 0", flip(HeaderSize + NonceSize + 50), 0},
		{"tag of block 2", flip(HeaderSize + 3*CipherBlockSize - 1), 2},
		{"ciphertext of last block", flip(len(ct) - TagSize - 5), 3},
		{"swap blocks 0 and 1", func(c []byte) []byte {
			s0, e0 := blk(0)
			s1, e1 := blk(1)
			b0 := append([]byte(nil), c[s0:e0]...)
			copy(c[s0:e0], c[s1:e1])
			copy(c[s1:e1], b0)
			return c
		}, 0},
		{"block from another file", func(c []byte) []byte {
			s, e := blk(1)
			copy(c[s:e], other[s:e])
			return c
		}, 1},
		{"header from another file", func(c []byte) []byte {
			copy(c[:HeaderSize], other[:HeaderSize])
			return c
		}, 0},
		{"truncate inside last block", func(c []byte) []byte { return c[:len(c)-10] }, 3},
		{"truncate inside block 1", func(c []byte) []byte { s, _ := blk(1); return c[:s+100] }, 1},
		{"truncate to a stub", func(c []byte) []byte { s, _ := blk(3); return c[:s+BlockOverhead] }, HeaderBlock},
		{"truncate inside header", func(c []byte) []byte { return c[:HeaderSize-1] }, HeaderBlock},
		{"drop block 1", func(c []byte) []byte {
			s, e := blk(1)
			return append(c[:s:s], c[e:]...)
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.mutate(append([]byte(nil), ct...))
			fileErr, streamErr := readBoth(t, key, c, data)
			for which, err := range map[string]error{"File": fileErr, "Reader": streamErr} {
				if err == nil {
					t.Fatalf("%s: tampering not detected", which)
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: error %v does not match ErrCorrupt", which, err)
				}
				var ce *CorruptError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: error %T is not a *CorruptError", which, err)
				}
				if !strings.Contains(err.Error(), "victim") {
					t.Fatalf("%s: error %q does not name the file", which, err)
				}
				// The stream reader sees a size change only when it
				// reaches the damaged block; the File sees it at once.
				if which == "File" && ce.Block != tc.wantBlock && !(tc.wantBlock >= 0 && ce.Block == HeaderBlock) {
					t.Fatalf("%s: error names block %d, want %d: %v", which, ce.Block, tc.wantBlock, err)
				}
			}
		})
	}
}

// TestTruncateAtBlockBoundary documents the one cut the format cannot see:
// removing whole blocks from the end reads as a shorter file.
func TestTruncateAtBlockBoundary(t *testing.T) {
	key := testKey(t, 8)
	data := randBytes(t, 3*BlockSize)
	ct := sealed(t, key, data)
	cut := ct[:HeaderSize+2*CipherBlockSize]
	fileErr, streamErr := readBoth(t, key, cut, data[:2*BlockSize])
	if fileErr != nil || streamErr != nil {
		t.Fatalf("block-boundary truncation: %v / %v", fileErr, streamErr)
	}
}

func flip(off int) func([]byte) []byte {
	return func(c []byte) []byte {
		c[off] ^= 0x10
		return c
	}
}

// TestTamperOnDisk flips a bit in a file written through File and checks
// that a read through a reopened File fails.
func TestTamperOnDisk(t *testing.T) {
	key := testKey(t, 9)
	b := tempBacking(t)
	f, _ := Open(b, key, "disk")
	if _, err := f.WriteAt(randBytes(t, 10000), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := b.ReadAt(buf, HeaderSize+CipherBlockSize+500); err != nil {
		t.Fatal(err)
	}
	buf[0] ^= 1
	if _, err := b.WriteAt(buf, HeaderSize+CipherBlockSize+500); err != nil {
		t.Fatal(err)
	}
	f2, err := Open(b, key, "disk")
	if err != nil {
		t.Fatal(err)
	}
	// Block 0 still reads; block 1 fails; a write into block 1 that needs
	// its old content fails too instead of sealing garbage.
	if _, err := f2.ReadAt(make([]byte, 100), 0); err != nil {
		t.Fatalf("undamaged block: %v", err)
	}
	if _, err := f2.ReadAt(make([]byte, 100), BlockSize+10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged block read: got %v", err)
	}
	if _, err := f2.WriteAt([]byte("x"), BlockSize+10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("partial write into damaged block: got %v", err)
	}
	_ = os.Remove(b.Name())
}
