package content

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHolesStaySparse: truncating up and writing past the end leave
// holes in the store (no sealed zeros), which read as zeros.
func TestHolesStaySparse(t *testing.T) {
	key := testKey(t, 7)
	b := tempBacking(t)
	f, err := Open(b, key, "sparse")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("start"), 0)
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), 2<<30); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Fstat(int(b.Fd()), &st)
	if st.Size != CipherSize(2<<30+3) || st.Blocks*512 > 1<<20 {
		t.Fatalf("store file: size %d, %d bytes allocated; want %d and sparse", st.Size, st.Blocks*512, CipherSize(2<<30+3))
	}
	// Reopened (no cached state): zeros in the hole, data around it.
	f, err = Open(b, key, "sparse")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3*BlockSize)
	if _, err := f.ReadAt(buf, 1<<30-BlockSize-5); err != nil {
		t.Fatal(err)
	}
	if !allZero(buf) {
		t.Fatal("hole does not read as zeros")
	}
	head := make([]byte, 8)
	f.ReadAt(head, 0)
	if !bytes.Equal(head, []byte("start\x00\x00\x00")) {
		t.Fatalf("head %q", head)
	}
	// A write into the middle of a hole merges with zeros.
	f.WriteAt([]byte("mid"), 1<<29+7)
	got := make([]byte, 12)
	f.ReadAt(got, 1<<29)
	if !bytes.Equal(got, []byte("\x00\x00\x00\x00\x00\x00\x00mid\x00\x00")) {
		t.Fatalf("write into a hole: %q", got)
	}
}

func TestHoleLimits(t *testing.T) {
	key := testKey(t, 7)
	f, err := Open(tempBacking(t), key, "big")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("x"), 0)
	if err := f.Truncate(MaxSize + 1); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("truncate beyond MaxSize: %v, want EFBIG", err)
	}
	if _, err := f.WriteAt([]byte("x"), MaxSize); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("write beyond MaxSize: %v, want EFBIG", err)
	}
	if s, _ := f.Size(); s != 1 {
		t.Fatalf("size after refused growth: %d", s)
	}
}

// TestZeroedBlock: in a version 2 file an attacker who zeroes a stored
// block turns it into a hole that reads as zeros (the documented limit of
// the authentication, docs/format.md); in a version 1 file it is an error.
// Any other change is an error in both.
func TestZeroedBlock(t *testing.T) {
	key := testKey(t, 9)
	data := bytes.Repeat([]byte("secret!!"), 3*BlockSize/8)
	for _, v := range []uint16{VersionNoHoles, Version} {
		b := tempBacking(t)
		f, _ := Open(b, key, "z")
		if v == VersionNoHoles {
			var buf bytes.Buffer
			w, _ := NewWriter(&buf, key)
			w.Write(data)
			w.Close()
			b.WriteAt(buf.Bytes(), 0)
			f, _ = Open(b, key, "z")
		} else {
			f.WriteAt(data, 0)
		}
		b.WriteAt(make([]byte, CipherBlockSize), blockOffset(1))
		got := make([]byte, len(data))
		_, err := f.ReadAt(got, 0)
		if v == VersionNoHoles {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("version 1, zeroed block: %v, want corrupt", err)
			}
			continue
		}
		if err != nil || !allZero(got[BlockSize:2*BlockSize]) || !bytes.Equal(got[:BlockSize], data[:BlockSize]) {
			t.Fatalf("version 2, zeroed block: %v", err)
		}
		// Almost zero is not a hole.
		nz := make([]byte, CipherBlockSize)
		nz[100] = 1
		b.WriteAt(nz, blockOffset(1))
		if _, err := f.ReadAt(got, 0); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("version 2, block with one bit set: %v, want corrupt", err)
		}
	}
}

func TestPunchHoleAndSeek(t *testing.T) {
	key := testKey(t, 3)
	b := tempBacking(t)
	f, _ := Open(b, key, "punch")
	data := bytes.Repeat([]byte("p"), 4<<20)
	f.WriteAt(data, 0)
	var before, after unix.Stat_t
	unix.Fstat(int(b.Fd()), &before)
	if err := f.PunchHole(1000, 3<<20); err != nil {
		t.Fatal(err)
	}
	unix.Fstat(int(b.Fd()), &after)
	if (before.Blocks-after.Blocks)*512 < 2<<20 {
		t.Fatalf("punching 3 MiB freed %d bytes", (before.Blocks-after.Blocks)*512)
	}
	clear(data[1000 : 1000+3<<20])
	f, _ = Open(b, key, "punch")
	if got := readAll(t, f); !bytes.Equal(got, data) {
		t.Fatal("content after punching differs")
	}
	if h, err := f.SeekHole(0); err != nil || h != BlockSize {
		t.Fatalf("SeekHole(0) = %d, %v; want %d", h, err, BlockSize)
	}
	if d, err := f.SeekData(BlockSize); err != nil || d < 3<<20 || d > 1000+3<<20 {
		t.Fatalf("SeekData(4096) = %d, %v", d, err)
	}
	if _, err := f.SeekData(5 << 20); !errors.Is(err, syscall.ENXIO) {
		t.Fatalf("SeekData past EOF: %v", err)
	}
	// Punching the end, short last block included, then reading.
	f.Truncate(4<<20 - 10)
	if err := f.PunchHole(4<<20-3*BlockSize, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s, _ := f.Size(); s != 4<<20-10 {
		t.Fatalf("size after punching the end: %d", s)
	}
	if h, _ := f.SeekHole(4<<20 - 3*BlockSize); h != 4<<20-3*BlockSize {
		t.Fatalf("hole at the end starts at %d", h)
	}
	tail := make([]byte, 3*BlockSize-10)
	if _, err := f.ReadAt(tail, 4<<20-3*BlockSize); err != nil || !allZero(tail) {
		t.Fatalf("tail after punching: %v", err)
	}
}
