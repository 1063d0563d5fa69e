package names

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testCipher(t testing.TB, seed byte) *Cipher {
	t.Helper()
	c, err := New(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	c := testCipher(t, 1)
	iv := bytes.Repeat([]byte{9}, DirIVSize)
	for _, name := range []string{
		"a", "ibdata1", "my.cnf", "exactly16bytes!!", "ünïcödé-名前", strings.Repeat("x", 255),
		strings.Repeat("y", 175), ".hidden", "with space",
	} {
		t.Run(name[:min(len(name), 20)], func(t *testing.T) {
			enc, err := c.Encrypt(iv, name)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(enc, name) && len(name) > 3 {
				t.Fatal("encrypted name contains the plaintext")
			}
			if strings.HasPrefix(enc, "ms.") || strings.ContainsAny(enc, "/.") {
				t.Fatalf("encrypted name %q could collide with reserved names", enc)
			}
			again, _ := c.Encrypt(iv, name)
			if again != enc {
				t.Fatal("encryption is not deterministic")
			}
			got, err := c.Decrypt(iv, enc)
			if err != nil {
				t.Fatal(err)
			}
			if got != name {
				t.Fatalf("got %q, want %q", got, name)
			}
		})
	}
}

func TestDirIVAndKeyMatter(t *testing.T) {
	c1, c2 := testCipher(t, 1), testCipher(t, 2)
	iv1, _ := NewDirIV()
	iv2, _ := NewDirIV()
	a, _ := c1.Encrypt(iv1, "ibdata1")
	b, _ := c1.Encrypt(iv2, "ibdata1")
	d, _ := c2.Encrypt(iv1, "ibdata1")
	if a == b || a == d {
		t.Fatal("same name encrypts the same under another IV or key")
	}
	if _, err := c2.Decrypt(iv1, a); err == nil {
		// EME has no authentication; padding catches most wrong keys, and
		// what gets through must still be a valid name.
		t.Log("wrong key decrypted to some name (possible: names are not authenticated)")
	}
}

func TestLongNames(t *testing.T) {
	c := testCipher(t, 3)
	iv, _ := NewDirIV()
	short, _ := c.Encrypt(iv, strings.Repeat("s", 175))
	if IsLong(short) {
		t.Fatalf("175-byte name stored as long (%d chars)", len(short))
	}
	enc, _ := c.Encrypt(iv, strings.Repeat("l", 200))
	if !IsLong(enc) {
		t.Fatalf("200-byte name (%d chars encrypted) not long", len(enc))
	}
	stored := Long(enc)
	if len(stored)+len(LongSuffix) > MaxStoredName || !IsLongStored(stored) || IsLongStored(stored+LongSuffix) {
		t.Fatalf("bad long form %q", stored)
	}
	if err := CheckLong(stored, enc); err != nil {
		t.Fatal(err)
	}
	last := "A"
	if strings.HasSuffix(enc, "A") {
		last = "B"
	}
	if err := CheckLong(stored, enc[:len(enc)-1]+last); !errors.Is(err, ErrBadName) {
		t.Fatalf("changed side file accepted: %v", err)
	}
}

func TestBadNames(t *testing.T) {
	c := testCipher(t, 4)
	iv, _ := NewDirIV()
	for _, name := range []string{"", ".", "..", "a/b", "nul\x00", strings.Repeat("z", 256)} {
		if _, err := c.Encrypt(iv, name); err == nil {
			t.Errorf("Encrypt(%q) accepted", name)
		}
	}
	for _, enc := range []string{"", "!!!", "AAAA", strings.Repeat("A", 400)} {
		if _, err := c.Decrypt(iv, enc); !errors.Is(err, ErrBadName) {
			t.Errorf("Decrypt(%q): got %v, want ErrBadName", enc, err)
		}
	}
}

func FuzzDecrypt(f *testing.F) {
	c := testCipher(f, 5)
	iv := make([]byte, DirIVSize)
	enc, _ := c.Encrypt(iv, "seed")
	f.Add(enc)
	f.Add("ms.long.x")
	f.Fuzz(func(t *testing.T, s string) {
		name, err := c.Decrypt(iv, s)
		if err != nil {
			return
		}
		if CheckName(name) != nil {
			t.Fatalf("Decrypt returned invalid name %q", name)
		}
		back, err := c.Encrypt(iv, name)
		if err != nil || back != s {
			t.Fatalf("name %q does not re-encrypt to %q", name, s)
		}
	})
}

// TestStorePath: the walk finds each level's stored name under the name
// IV of its parent, returns a long name's side content, allows a missing
// last name, and refuses ".." and a missing parent.
func TestStorePath(t *testing.T) {
	c := testCipher(t, 7)
	root := t.TempDir()
	if _, err := ReadOrCreateDirIV(root); err != nil {
		t.Fatal(err)
	}
	rootIV, _ := ReadDirIV(root)
	s, _, err := c.StoredName(rootIV, "db")
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(root, s)
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadOrCreateDirIV(db); err != nil {
		t.Fatal(err)
	}
	dbIV, _ := ReadDirIV(db)
	long := strings.Repeat("x", 200)
	ls, lc, err := c.StoredName(dbIV, long)
	if err != nil || lc == "" {
		t.Fatalf("a 200-byte name is not long: %v", err)
	}
	for rel, want := range map[string]string{"": root, "db": db, "/db/./": db, "db/" + long: filepath.Join(db, ls)} {
		p, side, err := c.StorePath(root, rel)
		if err != nil || p != want {
			t.Errorf("%q: %q %v, want %q", rel, p, err, want)
		}
		if strings.HasSuffix(rel, long) != (side == lc && side != "") {
			t.Errorf("%q: side content %q", rel, side)
		}
	}
	if _, _, err := c.StorePath(root, "db/../x"); err == nil {
		t.Error(`".." was walked`)
	}
	if _, _, err := c.StorePath(root, "nosuch/x"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing parent: %v", err)
	}
}
