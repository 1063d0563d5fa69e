package volume

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mysecure/mysecure/encfs/names"
)

// TestAddCategory: a category added after init is saved under a new MAC
// with one more generation, opens again with the credential, and gets
// the keys init would have derived for it.
func TestAddCategory(t *testing.T) {
	dir, v, k := newVolume(t)
	if err := v.AddCategory(k, "appdata"); err != nil {
		t.Fatal(err)
	}
	if v.Config.Generation != 2 {
		t.Fatalf("generation %d after add, want 2", v.Config.Generation)
	}
	// The same keys know the new category at once.
	ck, err := k.ContentKey("appdata")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !v2.Config.HasCategory("appdata") || v2.Config.Generation != 2 {
		t.Fatalf("on disk: categories %v generation %d", v2.Config.Categories, v2.Config.Generation)
	}
	k2, err := v2.Unlock(pass("correct horse", "pepper"))
	if err != nil {
		t.Fatalf("unlock after add: %v", err)
	}
	// Keys as at init: HKDF of the master key with the category's name.
	for _, p := range []string{PurposeContent, PurposeNames, PurposeKeyID} {
		want, err := hkdf.Key(sha256.New, k2.master, k2.volumeID, "mysecure/v1/"+p+"/appdata", 32)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k2.Subkey(p, "appdata")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s subkey of a category added later differs from the HKDF of init (%v)", p, err)
		}
	}
	ck2, err := k2.ContentKey("appdata")
	if err != nil {
		t.Fatal(err)
	}
	if ck.ID() != ck2.ID() {
		t.Fatal("content key ID differs between the keys that added the category and a fresh unlock")
	}
	ring, err := k2.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	if got := ring[ck2.ID()].Category; got != "appdata" {
		t.Fatalf("keyring maps the new key ID to %q", got)
	}

	// Refusals write nothing.
	for _, c := range []struct {
		name string
		want error
	}{
		{"appdata", ErrCategoryExists},
		{"mysql", ErrCategoryExists},
		{"App", ErrBadCategoryName},
		{"a.b", ErrBadCategoryName},
		{"", ErrBadCategoryName},
		{"x" + strings.Repeat("y", 32), ErrBadCategoryName},
	} {
		if err := v2.AddCategory(k2, c.name); !errors.Is(err, c.want) {
			t.Errorf("AddCategory(%q): %v, want %v", c.name, err, c.want)
		}
	}
	if v2.Config.Generation != 2 || len(v2.Config.Categories) != len(DefaultCategories)+1 {
		t.Fatalf("refused adds changed the config: generation %d categories %v", v2.Config.Generation, v2.Config.Categories)
	}
}

// TestCategoryNeedsMaster: keys opened by a key file may not add or remove
// categories.
func TestCategoryNeedsMaster(t *testing.T) {
	dir, v, k := newVolume(t)
	kfPath := filepath.Join(t.TempDir(), "boot.key")
	kf, err := GenerateKeyFile(kfPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.AddSlot(k, NewKeyFile{KeyFile: *kf, Path: kfPath}, ""); err != nil {
		t.Fatal(err)
	}
	v2, _ := Load(dir)
	kk, err := v2.Unlock(*kf)
	if err != nil {
		t.Fatal(err)
	}
	if err := v2.AddCategory(kk, "appdata"); !errors.Is(err, ErrNotMasterCredential) {
		t.Fatalf("AddCategory with key file keys: %v, want ErrNotMasterCredential", err)
	}
	if err := v2.RemoveCategory(kk, "ndbdata", nil); !errors.Is(err, ErrNotMasterCredential) {
		t.Fatalf("RemoveCategory with key file keys: %v, want ErrNotMasterCredential", err)
	}
	v3, _ := Load(dir)
	if v3.Config.HasCategory("appdata") || !v3.Config.HasCategory("ndbdata") || v3.Config.Generation != 2 {
		t.Fatalf("key file changed the categories: %v generation %d", v3.Config.Categories, v3.Config.Generation)
	}
	// Keys of another volume are refused too.
	_, _, otherKeys := newVolume(t)
	if err := v3.AddCategory(otherKeys, "appdata"); err == nil || v3.Config.Generation != 2 {
		t.Fatalf("AddCategory with another volume's keys: %v", err)
	}
}

// TestRemoveCategory: only an empty category no rule names goes, never
// the last one; its store directory goes with it.
func TestRemoveCategory(t *testing.T) {
	dir, v, k := newVolume(t)
	if err := v.AddCategory(k, "appdata"); err != nil {
		t.Fatal(err)
	}
	cdir := filepath.Join(dir, "appdata")
	if err := os.Mkdir(cdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := names.ReadOrCreateDirIV(cdir); err != nil {
		t.Fatal(err)
	}
	if n, err := v.CategoryEntries("appdata"); err != nil || n != 0 {
		t.Fatalf("fresh category: %d entries (%v), want 0", n, err)
	}
	// Any entry in the store dir counts.
	if err := os.Mkdir(filepath.Join(cdir, "SOMEENCRYPTEDNAME"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := v.RemoveCategory(k, "appdata", nil)
	if !errors.Is(err, ErrCategoryInUse) || !strings.Contains(err.Error(), "1 entry in "+cdir) {
		t.Fatalf("remove of a non-empty category: %v", err)
	}
	os.Remove(filepath.Join(cdir, "SOMEENCRYPTEDNAME"))
	// A rule that names it.
	err = v.RemoveCategory(k, "appdata", []string{"rule 2 (ALLOW @appdata * /usr/bin/cat)"})
	if !errors.Is(err, ErrCategoryInUse) || !strings.Contains(err.Error(), "rule 2 (ALLOW @appdata") {
		t.Fatalf("remove of a category a rule names: %v", err)
	}
	if err := v.RemoveCategory(k, "nosuch", nil); !errors.Is(err, ErrUnknownCategory) {
		t.Fatalf("remove of an unknown category: %v", err)
	}
	if v.Config.Generation != 2 {
		t.Fatalf("refused removals changed the generation to %d", v.Config.Generation)
	}
	if err := v.RemoveCategory(k, "appdata", nil); err != nil {
		t.Fatal(err)
	}
	if v.Config.Generation != 3 || v.Config.HasCategory("appdata") {
		t.Fatalf("after remove: generation %d categories %v", v.Config.Generation, v.Config.Categories)
	}
	if _, err := os.Stat(cdir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the empty category dir is still there: %v", err)
	}
	if _, err := k.ContentKey("appdata"); !errors.Is(err, ErrUnknownCategory) {
		t.Fatalf("content key of a removed category: %v", err)
	}
	v2, _ := Load(dir)
	if _, err := v2.Unlock(pass("correct horse", "pepper")); err != nil {
		t.Fatalf("unlock after remove: %v", err)
	}
	// Down to one category, which stays.
	for _, c := range DefaultCategories[1:] {
		if err := v2.RemoveCategory(k, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := v2.RemoveCategory(k, DefaultCategories[0], nil); !errors.Is(err, ErrLastCategory) {
		t.Fatalf("remove of the last category: %v", err)
	}
}

// TestFixtureAddCategory: a category added to the frozen version 1 volume
// works, and the fixture's own files still decrypt.
func TestFixtureAddCategory(t *testing.T) {
	fx := filepath.Join("..", "..", "testdata", "volume-v1")
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(fx, "store", ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ConfigPath(dir), data, 0o600); err != nil {
		t.Fatal(err)
	}
	pp, _ := os.ReadFile(filepath.Join(fx, "passphrase.txt"))
	ss, _ := os.ReadFile(filepath.Join(fx, "salt.txt"))
	cred := Passphrase{Passphrase: trimNL(pp), Salt: trimNL(ss)}
	v, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, err := v.Unlock(cred)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := k.Subkey(PurposeContent, "mysql")
	if err := v.AddCategory(k, "appdata"); err != nil {
		t.Fatal(err)
	}
	v, err = Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Config.Version != ConfigVersion || v.Config.Generation != 1 || !v.Config.HasCategory("appdata") {
		t.Fatalf("fixture with a new category: version %d generation %d categories %v", v.Config.Version, v.Config.Generation, v.Config.Categories)
	}
	k, err = v.Unlock(cred)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := k.Subkey(PurposeContent, "mysql")
	if !bytes.Equal(before, after) {
		t.Fatal("adding a category changed the key of an existing one")
	}
	if _, err := k.ContentKey("appdata"); err != nil {
		t.Fatal(err)
	}
}

// TestFollowCategories: a daemon's keys learn of a category another
// unlock added, while other goroutines derive keys (run with -race).
func TestFollowCategories(t *testing.T) {
	dir, _, daemonKeys := newVolume(t)
	v, _ := Load(dir)
	admin, err := v.Unlock(pass("correct horse", "pepper"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := daemonKeys.ContentKey("mysql"); err != nil {
					t.Error(err)
					return
				}
				_, _ = daemonKeys.NamesCipher("appdata")
				_, _ = daemonKeys.Keyring()
			}
		}()
	}
	if err := v.AddCategory(admin, "appdata"); err != nil {
		t.Fatal(err)
	}
	if _, err := daemonKeys.ContentKey("appdata"); !errors.Is(err, ErrUnknownCategory) {
		t.Fatalf("before FollowCategories: %v", err)
	}
	if err := daemonKeys.FollowCategories(v); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if _, err := daemonKeys.ContentKey("appdata"); err != nil {
		t.Fatalf("after FollowCategories: %v", err)
	}
	_, other, _ := newVolume(t)
	if err := daemonKeys.FollowCategories(other); err == nil {
		t.Fatal("FollowCategories took another volume's config")
	}
}

func TestCheckCategory(t *testing.T) {
	have := []string{"mysql", "mysqlbackup"}
	if err := CheckCategory("mysqlbackup", have); err != nil {
		t.Fatalf("known category: %v", err)
	}
	for _, name := range []string{"mysq", "MYSQL", "*", ""} {
		err := CheckCategory(name, have)
		if !errors.Is(err, ErrUnknownCategory) {
			t.Fatalf("%q: %v, want ErrUnknownCategory", name, err)
		}
		if want := "unknown category @" + name + " (the volume has @mysql, @mysqlbackup)"; err.Error() != want {
			t.Fatalf("%q: message %q, want %q", name, err, want)
		}
	}
}
