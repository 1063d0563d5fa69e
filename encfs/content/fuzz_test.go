package content

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// FuzzFileOps drives a File with writes and truncates decoded from the fuzz
// input and compares every read with a plaintext model.
func FuzzFileOps(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 5, 1, 0, 16, 2, 0, 0})
	f.Add([]byte{0, 255, 255, 0, 200, 1, 1, 0, 0, 255, 0, 2, 0, 1})
	f.Fuzz(func(t *testing.T, prog []byte) {
		key := testKey(t, 11)
		b := tempBacking(t)
		file, err := Open(b, key, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		var model []byte
		for len(prog) >= 5 {
			op := prog[0] % 3
			off := int(binary.BigEndian.Uint16(prog[1:3])) * 7 % (6 * BlockSize)
			n := int(binary.BigEndian.Uint16(prog[3:5])) % (3 * BlockSize)
			prog = prog[5:]
			switch op {
			case 0:
				data := bytes.Repeat([]byte{byte(off + n)}, n)
				if _, err := file.WriteAt(data, int64(off)); err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					if end := off + n; end > len(model) {
						model = append(model, make([]byte, end-len(model))...)
					}
					copy(model[off:], data)
				}
			case 1:
				if err := file.Truncate(int64(off)); err != nil {
					t.Fatal(err)
				}
				if off > len(model) {
					model = append(model, make([]byte, off-len(model))...)
				}
				model = model[:off]
			case 2:
				p := make([]byte, n+1)
				got, err := file.ReadAt(p, int64(off))
				want := 0
				if off < len(model) {
					want = min(len(p), len(model)-off)
				}
				if got != want || (got < len(p) && err != io.EOF) {
					t.Fatalf("read %d at %d: got %d (%v), want %d", len(p), off, got, err, want)
				}
				if got > 0 && !bytes.Equal(p[:got], model[off:off+got]) {
					t.Fatalf("read at %d differs", off)
				}
			}
		}
		if got := readAll(t, file); !bytes.Equal(got, model) {
			t.Fatal("final content differs")
		}
		// What the store holds, read by a File that never wrote it (no
		// cached last block).
		fresh, err := Open(b, key, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, fresh); !bytes.Equal(got, model) {
			t.Fatal("store differs from the model")
		}
	})
}

// FuzzParseHeader checks the header parser never panics and that what it
// accepts marshals back to the same bytes.
func FuzzParseHeader(f *testing.F) {
	h, _ := NewHeader([KeyIDSize]byte{1})
	f.Add(h.Marshal())
	f.Add([]byte("MYSEC\x00\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.Marshal(), b[:HeaderSize]) {
			t.Fatal("header does not round-trip")
		}
	})
}

// FuzzReader feeds arbitrary bytes to the stream reader: it must not panic,
// and what it accepts must be exactly what was sealed.
func FuzzReader(f *testing.F) {
	key := testKey(f, 12)
	var enc bytes.Buffer
	w, _ := NewWriter(&enc, key)
	_, _ = w.Write(bytes.Repeat([]byte("a"), 5000))
	_ = w.Close()
	f.Add(enc.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sr, err := NewReader(bytes.NewReader(b), key, "fuzz")
		if err != nil {
			return
		}
		got, err := io.ReadAll(sr)
		if err != nil {
			return
		}
		if len(got) > 0 && !bytes.Equal(got, bytes.Repeat([]byte("a"), len(got))) {
			t.Fatal("reader accepted forged data")
		}
	})
}
