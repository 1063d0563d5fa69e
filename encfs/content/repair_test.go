package content

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
)

var errKilled = errors.New("killed")

// dyingBacking is a store file whose process dies: it lets ops mutating
// calls through, then cuts the next write after cut bytes (what the kernel
// had copied when the process was killed) and refuses everything after,
// as a dead process does nothing more. It records the killing write.
type dyingBacking struct {
	*os.File
	ops, cut  int
	dead      bool
	killOff   int64
	killLen   int
	killTrunc bool
}

func (b *dyingBacking) WriteAt(p []byte, off int64) (int, error) {
	if b.dead {
		return 0, errKilled
	}
	if b.ops == 0 {
		b.dead, b.killOff, b.killLen = true, off, len(p)
		n := min(b.cut, len(p))
		n, _ = b.File.WriteAt(p[:n], off)
		return n, errKilled
	}
	b.ops--
	return b.File.WriteAt(p, off)
}

func (b *dyingBacking) Truncate(n int64) error {
	if b.dead {
		return errKilled
	}
	if b.ops == 0 {
		b.dead, b.killTrunc = true, true
		return errKilled
	}
	b.ops--
	return b.File.Truncate(n)
}

// pageCuts are the points where the kernel may cut a write of n bytes at
// off when its process is killed: the page boundaries of the file inside
// it, plus nothing and all but the last byte.
func pageCuts(off int64, n int) []int {
	cuts := []int{0}
	for c := (off/4096 + 1) * 4096; c < off+int64(n); c += 4096 {
		cuts = append(cuts, int(c-off))
	}
	return append(cuts, n-1)
}

// afterCrash opens store file p as the next mount does: RepairTail, then
// Open, and returns the repair and the whole plaintext, failing the test
// if any of it does not read.
func afterCrash(t *testing.T, key *Key, p string) (*TailRepair, []byte) {
	t.Helper()
	b, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := RepairTail(b, key, "f")
	if err != nil {
		t.Fatalf("RepairTail: %v", err)
	}
	if again, err := RepairTail(b, key, "f"); again != nil || err != nil {
		t.Fatalf("second RepairTail cut again: %v %v", again, err)
	}
	f, err := Open(b, key, "f")
	if err != nil {
		t.Fatalf("open after the crash (repair %v): %v", r, err)
	}
	return r, readAll(t, f)
}

// TestRepairTailCrashPoints kills the writer at every store call of an
// operation that extends or shrinks a file, and at every page boundary of
// each write: after RepairTail every file opens and reads whole, holds
// only bytes that were written at their place, and lost at most its torn
// last block. Without RepairTail, some of these points leave a file that
// does not open or fails to read.
func TestRepairTailCrashPoints(t *testing.T) {
	key := testKey(t, 7)
	old := randBytes(t, 3*BlockSize+1000)
	app := randBytes(t, 9000)
	far := randBytes(t, 5000)
	tests := []struct {
		name string
		old  []byte
		op   func(f *File) error
		want []byte // the file after the operation
		// keep is what survives any crash: all but the block whose
		// rewrite was torn (its old sealing is overwritten, its new one
		// incomplete): the old last block for writes, the new last block
		// for a truncate that ends inside one.
		keep int
	}{
		{"append", old, func(f *File) error { _, err := f.WriteAt(app, int64(len(old))); return err },
			append(append([]byte{}, old...), app...), 3 * BlockSize},
		{"append to whole blocks", old[:2*BlockSize], func(f *File) error { _, err := f.WriteAt(app, 2*BlockSize); return err },
			append(append([]byte{}, old[:2*BlockSize]...), app...), 2 * BlockSize},
		{"write past the end", old[:BlockSize+10], func(f *File) error { _, err := f.WriteAt(far, 8*BlockSize+3); return err },
			append(append(append([]byte{}, old[:BlockSize+10]...), make([]byte, 7*BlockSize-7)...), far...), BlockSize},
		{"truncate longer", old, func(f *File) error { return f.Truncate(6*BlockSize + 7) },
			append(append([]byte{}, old...), make([]byte, 6*BlockSize+7-len(old))...), 3 * BlockSize},
		{"truncate inside the last block", old, func(f *File) error { return f.Truncate(3*BlockSize + 10) },
			old[:3*BlockSize+10], 3 * BlockSize},
		{"truncate shorter", old, func(f *File) error { return f.Truncate(BlockSize + 100) },
			old[:BlockSize+100], BlockSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			points, repaired := 0, 0
			for ops := 0; ; ops++ {
				cuts := []int{0}
				completed := false
				for i := 0; i < len(cuts); i++ {
					b := &dyingBacking{File: tempBacking(t), ops: 1 << 30}
					f, err := Open(b, key, "f")
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.WriteAt(tc.old, 0); err != nil {
						t.Fatal(err)
					}
					b.ops, b.cut = ops, cuts[i]
					err = tc.op(f)
					if !b.dead {
						if err != nil {
							t.Fatal(err)
						}
						completed = true
						break
					}
					if i == 0 && !b.killTrunc {
						cuts = pageCuts(b.killOff, b.killLen)
					}
					points++
					r, got := afterCrash(t, key, b.Name())
					if r != nil {
						repaired++
					}
					where := fmt.Sprintf("killed at store call %d after %d of %d bytes (repair: %v)", ops, cuts[i], b.killLen, r)
					if len(got) < tc.keep {
						t.Fatalf("%s: %d bytes left, want at least %d", where, len(got), tc.keep)
					}
					// Old or new bytes at each place; the new file
					// starts with the old one but for truncates.
					if !bytes.Equal(got, tc.want[:min(len(got), len(tc.want))]) && !bytes.Equal(got, tc.old[:min(len(got), len(tc.old))]) {
						t.Fatalf("%s: %d bytes read, not a prefix of the file before or after", where, len(got))
					}
				}
				if completed {
					break
				}
			}
			t.Logf("%d crash points, %d tails cut", points, repaired)
			if points == 0 {
				t.Fatal("no crash point reached")
			}
		})
	}
}

// storeFile writes n random plaintext bytes into a new store file and
// returns its path and the plaintext.
func storeFile(t *testing.T, key *Key, n int) (string, []byte) {
	t.Helper()
	b := tempBacking(t)
	f, err := Open(b, key, "f")
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, n)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	return b.Name(), data
}

func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRepairTailLeavesTamperingAlone: damage that a killed writer cannot
// leave (a block in the middle, two blocks at the end, another key) is
// not cut: the file keeps its size and reads as an error.
func TestRepairTailLeavesTamperingAlone(t *testing.T) {
	key := testKey(t, 7)
	tests := []struct {
		name   string
		key    *Key
		damage func(p string)
	}{
		{"middle block", key, func(p string) { flipByte(t, p, blockOffset(1)+100) }},
		{"last two blocks", key, func(p string) {
			flipByte(t, p, blockOffset(2)+100)
			flipByte(t, p, blockOffset(3)+100)
		}},
		{"header", key, func(p string) { flipByte(t, p, 10) }},
		{"another key", testKey(t, 8), func(p string) { flipByte(t, p, blockOffset(3)+100) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := storeFile(t, key, 3*BlockSize+500)
			tc.damage(p)
			before, _ := os.ReadFile(p)
			b, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			r, err := RepairTail(b, tc.key, "f")
			if r != nil || err != nil {
				t.Fatalf("RepairTail cut tampered file: %v %v", r, err)
			}
			after, _ := os.ReadFile(p)
			if !bytes.Equal(before, after) {
				t.Fatal("RepairTail changed the file")
			}
			f, err := Open(b, tc.key, "f")
			if err == nil {
				size, _ := f.Size()
				_, err = f.ReadAt(make([]byte, size), 0)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("tampered file read: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestRepairTailCuts: the tails RepairTail does cut, and to where. A
// changed last block is cut like a torn one: it cannot be told apart, and
// whoever can change it can cut the file there anyway
// (docs/threat-model.md).
func TestRepairTailCuts(t *testing.T) {
	key := testKey(t, 7)
	tests := []struct {
		name   string
		damage func(p string)
		keep   int
	}{
		{"stored size leaves the last block no byte", func(p string) {
			if err := os.Truncate(p, blockOffset(3)+20); err != nil {
				t.Fatal(err)
			}
		}, 3 * BlockSize},
		{"last block cut short", func(p string) {
			if err := os.Truncate(p, blockOffset(3)+300); err != nil {
				t.Fatal(err)
			}
		}, 3 * BlockSize},
		{"last block changed", func(p string) { flipByte(t, p, blockOffset(3)+100) }, 3 * BlockSize},
		{"only block torn", func(p string) {
			if err := os.Truncate(p, HeaderSize+BlockOverhead); err != nil {
				t.Fatal(err)
			}
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, data := storeFile(t, key, 3*BlockSize+500)
			if tc.keep == 0 {
				p, data = storeFile(t, key, 500)
			}
			tc.damage(p)
			r, got := afterCrash(t, key, p)
			if r == nil {
				t.Fatal("torn tail not cut")
			}
			if len(got) != tc.keep || !bytes.Equal(got, data[:tc.keep]) {
				t.Fatalf("after the cut: %d bytes, want the first %d", len(got), tc.keep)
			}
			if r.PlainTo != int64(tc.keep) {
				t.Fatalf("repair says %v, want plaintext %d", r, tc.keep)
			}
		})
	}
}

// TestRepairTailSound: sound files (empty, a lone header, whole blocks,
// a short last block, a trailing hole) are left alone.
func TestRepairTailSound(t *testing.T) {
	key := testKey(t, 7)
	for _, n := range []int{0, 1, 4095, 4096, 3*BlockSize + 7} {
		p, _ := storeFile(t, key, n)
		if r, _ := afterCrash(t, key, p); r != nil {
			t.Fatalf("%d bytes: sound file cut: %v", n, r)
		}
	}
	b := tempBacking(t)
	f, err := Open(b, key, "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10*BlockSize + 5); err != nil {
		t.Fatal(err)
	}
	if r, got := afterCrash(t, key, b.Name()); r != nil || len(got) != 10*BlockSize+5 {
		t.Fatalf("file ending in a hole: repair %v, %d bytes", r, len(got))
	}
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
}
