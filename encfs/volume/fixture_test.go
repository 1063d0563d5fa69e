package volume_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/names"
	"github.com/mysecure/mysecure/encfs/volume"
)

// The frozen fixture volume in testdata/volume-v1 was written by format
// version 1 and must keep opening with every later build. Regenerate it
// only for a new format version, into a new directory:
//
//	go test ./encfs/volume -run TestFixture -write-fixture=../../testdata/volume-vN
var writeFixture = flag.String("write-fixture", "", "write a new fixture volume into this directory")

const fixtureDir = "../../testdata/volume-v1"

type nameVector struct {
	Category string `json:"category"`
	DirIV    string `json:"diriv"`
	Plain    string `json:"plain"`
	Enc      string `json:"enc"`
}

type fixtureFile struct {
	Category string `json:"category"`
	Plain    string `json:"plain"`
	Enc      string `json:"enc"`
}

type fixtureIndex struct {
	Files []fixtureFile `json:"files"`
	Names []nameVector  `json:"names"`
}

func TestFixture(t *testing.T) {
	if *writeFixture != "" {
		makeFixture(t, *writeFixture)
	}
	dir := fixtureDir
	var idx fixtureIndex
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	v, err := volume.Load(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	pass := readFile(t, dir, "passphrase.txt")
	salt := readFile(t, dir, "salt.txt")
	rsaKey, err := volume.ParseRSAPrivateKeyPEM(readFile(t, dir, "rsa.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// git does not keep mode 0400: copy the key file to a private one.
	kfPath := filepath.Join(t.TempDir(), "boot.key")
	if err := os.WriteFile(kfPath, readFile(t, dir, "boot.key"), 0o400); err != nil {
		t.Fatal(err)
	}
	kf, err := volume.ReadKeyFile(kfPath)
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]volume.Credential{
		"passphrase": volume.Passphrase{Passphrase: bytes.TrimSpace(pass), Salt: bytes.TrimSpace(salt)},
		"rsa":        volume.RSAPrivateKey{Key: rsaKey},
		"keyfile":    *kf,
	}
	for name, c := range creds {
		t.Run(name, func(t *testing.T) {
			k, err := v.Unlock(c)
			if err != nil {
				t.Fatal(err)
			}
			ring, err := k.Keyring()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range idx.Files {
				want := readFile(t, dir, f.Plain)
				enc, err := os.Open(filepath.Join(dir, f.Enc))
				if err != nil {
					t.Fatal(err)
				}
				r, err := content.NewReader(enc, ring, f.Enc)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				enc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s decrypts to different bytes", f.Enc)
				}
				h, _ := r.Header()
				id, _ := k.KeyID(f.Category)
				if h.KeyID != id {
					t.Fatalf("%s: key ID is not that of @%s", f.Enc, f.Category)
				}
				// The random-access File the mount uses reads the format 1
				// file too, and growing it keeps it readable (format 1
				// files get sealed zeros, never holes: docs/format.md).
				if len(want) > 0 {
					ck, _ := ring.KeyByID(h.KeyID)
					cp := filepath.Join(t.TempDir(), "copy")
					os.WriteFile(cp, readFile(t, dir, f.Enc), 0o600)
					b, err := os.OpenFile(cp, os.O_RDWR, 0)
					if err != nil {
						t.Fatal(err)
					}
					cf, err := content.Open(b, ck, cp)
					if err != nil {
						t.Fatal(err)
					}
					got := make([]byte, len(want))
					if _, err := cf.ReadAt(got, 0); err != nil && err != io.EOF || !bytes.Equal(got, want) {
						t.Fatalf("%s through content.File: %v", f.Enc, err)
					}
					if err := cf.Truncate(int64(len(want)) + 5*content.BlockSize); err != nil {
						t.Fatal(err)
					}
					cf, _ = content.Open(b, ck, cp)
					grown := make([]byte, len(want)+5*content.BlockSize)
					if _, err := cf.ReadAt(grown, 0); err != nil || !bytes.Equal(grown[:len(want)], want) || !bytes.Equal(grown[len(want):], make([]byte, 5*content.BlockSize)) {
						t.Fatalf("%s grown through content.File: %v", f.Enc, err)
					}
					b.Close()
				}
			}
			for _, nv := range idx.Names {
				nk, err := k.Subkey(volume.PurposeNames, nv.Category)
				if err != nil {
					t.Fatal(err)
				}
				c, err := names.New(nk)
				if err != nil {
					t.Fatal(err)
				}
				iv, _ := hex.DecodeString(nv.DirIV)
				enc, err := c.Encrypt(iv, nv.Plain)
				if err != nil || enc != nv.Enc {
					t.Fatalf("name %q encrypts to %q, fixture says %q (%v)", nv.Plain, enc, nv.Enc, err)
				}
				plain, err := c.Decrypt(iv, nv.Enc)
				if err != nil || plain != nv.Plain {
					t.Fatalf("name %q decrypts to %q (%v)", nv.Enc, plain, err)
				}
			}
		})
	}
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeFixture writes a new fixture volume: three slot types, files in two
// categories, name vectors. Run only when a format version changes.
func makeFixture(t *testing.T, dir string) {
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists: fixtures are frozen, write a new version dir", dir)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "files"), 0o755))
	w := func(name string, b []byte) { must(os.WriteFile(filepath.Join(dir, name), b, 0o644)) }
	w("passphrase.txt", []byte("fixture passphrase v1\n"))
	w("salt.txt", []byte("fixture salt v1\n"))
	gk, err := rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	der, err := x509.MarshalPKCS8PrivateKey(gk)
	must(err)
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	w("rsa.pem", out)
	rk, err := volume.ParseRSAPrivateKeyPEM(out, nil)
	must(err)
	kfTmp := filepath.Join(t.TempDir(), "boot.key")
	kf, err := volume.GenerateKeyFile(kfTmp)
	must(err)
	kfText, err := os.ReadFile(kfTmp)
	must(err)
	w("boot.key", kfText)

	cheap := volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}
	v, k, err := volume.Create(filepath.Join(dir, "store"), volume.CreateOptions{},
		volume.NewPassphrase{Passphrase: volume.Passphrase{Passphrase: []byte("fixture passphrase v1"), Salt: []byte("fixture salt v1")}, KDF: cheap},
		volume.NewRSA{Public: &rk.PublicKey},
		volume.NewKeyFile{KeyFile: *kf, Path: "/etc/mysecure/boot.key"})
	must(err)
	_ = v
	var idx fixtureIndex
	plain := map[string][]byte{
		"hello.txt":  []byte("hello from mysecure format v1\n"),
		"empty.txt":  {},
		"blocks.bin": bytes.Repeat([]byte("0123456789abcdef"), 700), // 11200 bytes: 2 full blocks + 1 short
	}
	cats := map[string]string{"hello.txt": "mysqlbackup", "empty.txt": "protected", "blocks.bin": "mysql"}
	for name, data := range plain {
		w("files/"+name, data)
		key, err := k.ContentKey(cats[name])
		must(err)
		var buf bytes.Buffer
		sw, err := content.NewWriter(&buf, key)
		must(err)
		_, err = sw.Write(data)
		must(err)
		must(sw.Close())
		w("files/"+name+".msec", buf.Bytes())
		idx.Files = append(idx.Files, fixtureFile{Category: cats[name], Plain: "files/" + name, Enc: "files/" + name + ".msec"})
	}
	for _, nv := range []struct{ cat, name string }{{"mysql", "ibdata1"}, {"mysql", "ib_logfile0"}, {"mysqlbackup", "protected.cnf"}, {"protected", string(bytes.Repeat([]byte("n"), 200))}} {
		iv, err := names.NewDirIV()
		must(err)
		nk, err := k.Subkey(volume.PurposeNames, nv.cat)
		must(err)
		c, err := names.New(nk)
		must(err)
		enc, err := c.Encrypt(iv, nv.name)
		must(err)
		idx.Names = append(idx.Names, nameVector{nv.cat, hex.EncodeToString(iv), nv.name, enc})
	}
	js, err := json.MarshalIndent(idx, "", "  ")
	must(err)
	w("index.json", append(js, '\n'))
	w("README.md", []byte("# Frozen fixture volume, format version 1\n\nWritten once by `go test ./encfs/volume -run TestFixture -write-fixture=...`.\nDo not regenerate or edit: TestFixture and the CLI scripts prove that this\nvolume keeps opening. Its secrets are public test values.\n"))
}
