package backup

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

type failAfter struct {
	n   int
	buf bytes.Buffer
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.buf.Len()+len(p) > f.n {
		return 0, errors.New("disk full")
	}
	return f.buf.Write(p)
}

func TestParallelZstd(t *testing.T) {
	// Compressible and random parts, sizes around frame boundaries.
	data := bytes.Repeat([]byte("INSERT INTO t VALUES (1,'abc');\n"), 600000)
	rnd := make([]byte, 3*frameSize+17)
	rand.Read(rnd)
	data = append(data, rnd...)
	for _, size := range []int{0, 1, frameSize - 1, frameSize, frameSize + 1, len(data)} {
		var out bytes.Buffer
		p, err := newParallelZstd(&out, 3, 3)
		if err != nil {
			t.Fatal(err)
		}
		for rest := data[:size]; len(rest) > 0; {
			n := min(len(rest), 70001)
			if _, err := p.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		dec, _ := zstd.NewReader(&out)
		got, err := io.ReadAll(dec)
		dec.Close()
		if err != nil || !bytes.Equal(got, data[:size]) {
			t.Fatalf("size %d: round trip %v, equal %v", size, err, bytes.Equal(got, data[:size]))
		}
	}
	// A failing writer: the error comes back, nothing hangs.
	f := &failAfter{n: 100000}
	p, _ := newParallelZstd(f, 3, 2)
	var werr error
	for i := 0; i < 40 && werr == nil; i++ {
		_, werr = p.Write(rnd[:frameSize])
	}
	if err := p.Close(); err == nil || (werr == nil && err == nil) {
		t.Fatalf("a failing writer: write %v close %v", werr, err)
	}
}
