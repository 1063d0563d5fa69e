package xbstream

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand"
	"testing"
)

// builder writes xbstream chunks byte by byte from the layout, independently
// of the parser.
type builder struct{ bytes.Buffer }

func (b *builder) head(flags, typ byte, path string) {
	b.WriteString("XBSTCK01")
	b.WriteByte(flags)
	b.WriteByte(typ)
	_ = binary.Write(&b.Buffer, binary.LittleEndian, uint32(len(path)))
	b.WriteString(path)
}

// raw writes a 'P'-layout chunk of any type with the given checksum.
func (b *builder) raw(flags, typ byte, path string, off uint64, data []byte, sum uint32) {
	b.head(flags, typ, path)
	_ = binary.Write(&b.Buffer, binary.LittleEndian, uint64(len(data)))
	_ = binary.Write(&b.Buffer, binary.LittleEndian, off)
	_ = binary.Write(&b.Buffer, binary.LittleEndian, sum)
	b.Write(data)
}

func (b *builder) payload(path string, off uint64, data string) *builder {
	b.raw(0, 'P', path, off, []byte(data), crc32.ChecksumIEEE([]byte(data)))
	return b
}

func (b *builder) eof(path string) *builder {
	b.head(0, 'E', path)
	return b
}

// sparse writes an 'S' chunk: entries are (skip, len) pairs.
func (b *builder) sparse(path string, off uint64, entries [][2]uint32, data string) *builder {
	var m bytes.Buffer
	for _, e := range entries {
		_ = binary.Write(&m, binary.LittleEndian, e[0])
		_ = binary.Write(&m, binary.LittleEndian, e[1])
	}
	b.head(0, 'S', path)
	_ = binary.Write(&b.Buffer, binary.LittleEndian, uint32(len(entries)))
	_ = binary.Write(&b.Buffer, binary.LittleEndian, uint64(len(data)))
	_ = binary.Write(&b.Buffer, binary.LittleEndian, off)
	sum := crc32.Update(crc32.ChecksumIEEE(m.Bytes()), crc32.IEEETable, []byte(data))
	_ = binary.Write(&b.Buffer, binary.LittleEndian, sum)
	b.Write(m.Bytes())
	b.WriteString(data)
	return b
}

// chunkPos locates one chunk of a stream of 'P' and 'E' chunks.
type chunkPos struct {
	start, payload, end int // payload: first payload byte ('P')
	typ                 byte
	path                string
	length              int
}

// walk splits a well-formed stream of 'P' and 'E' chunks, for tests that
// damage it at chosen places.
func walk(t testing.TB, s []byte) []chunkPos {
	t.Helper()
	var out []chunkPos
	for i := 0; i < len(s); {
		if len(s)-i < 14 || string(s[i:i+8]) != "XBSTCK01" {
			t.Fatalf("walk: no chunk at %d", i)
		}
		c := chunkPos{start: i, typ: s[i+9]}
		n := int(binary.LittleEndian.Uint32(s[i+10:]))
		c.path = string(s[i+14 : i+14+n])
		j := i + 14 + n
		if c.typ == 'P' {
			c.length = int(binary.LittleEndian.Uint64(s[j:]))
			c.payload = j + 20
			j = c.payload + c.length
		}
		c.end = j
		out = append(out, c)
		i = j
	}
	return out
}

// result is what an Observer reports, to compare runs.
type result struct {
	err      string
	stats    Stats
	files    []File
	captured map[string]string
	ok       map[string]bool
}

// observe feeds s to a new Observer in pieces cut by split, and closes it.
func observe(t testing.TB, s []byte, opts Options, split func(rest int) int) result {
	t.Helper()
	var r result
	opts.OnFile = func(f File) { r.files = append(r.files, f) }
	o := New(opts)
	for rest := s; len(rest) > 0; {
		k := split(len(rest))
		n, err := o.Write(rest[:k])
		if n != k || err != nil {
			t.Fatalf("Write returned %d, %v; want %d, nil", n, err, k)
		}
		rest = rest[k:]
	}
	if err := o.Close(); err != nil {
		r.err = err.Error()
		if o.Err() == nil || o.Err().Error() != r.err {
			t.Fatalf("Err() = %v after Close() = %v", o.Err(), err)
		}
	}
	r.stats = o.Stats()
	r.captured, r.ok = map[string]string{}, map[string]bool{}
	for _, name := range opts.Capture {
		b, ok := o.Captured(name)
		r.captured[name], r.ok[name] = string(b), ok
	}
	return r
}

func whole(n int) int  { return n }
func bytewise(int) int { return 1 }
func randomSplit(rng *rand.Rand, max int) func(int) int {
	return func(n int) int { return 1 + rng.Intn(min(n, max)) }
}
