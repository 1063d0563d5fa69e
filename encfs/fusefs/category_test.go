package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/names"
)

// TestCategoryAddHide: a category added to a live mount shows up in the
// root at once and serves files; a hidden one disappears (also for a
// cached entry) and comes back with its files on restore. Other
// categories keep working throughout (run with -race: every operation
// reads the key map while it is replaced).
func TestCategoryAddHide(t *testing.T) {
	store := t.TempDir()
	m := mount(t, store, testKeys(t))
	var st syscall.Stat_t
	if err := syscall.Stat(m.mnt, &st); err != nil {
		t.Fatal(err)
	}
	m.fs.mountDev.Store(uint64(st.Dev)) // as FS.Mount does

	ck, err := content.NewKey(bytes.Repeat([]byte{7}, 32), [8]byte{7})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := names.New(bytes.Repeat([]byte{17}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.mnt, "appdata")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("appdata before add: %v", err)
	}

	// Traffic on another category while the map changes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(m.mnt, "mysql", fmt.Sprintf("busy%d", i))
			want := bytes.Repeat([]byte{byte(i)}, 5000)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := os.WriteFile(p, want, 0o600); err != nil {
					errc <- err
					return
				}
				got, err := os.ReadFile(p)
				if err != nil || !bytes.Equal(got, want) {
					errc <- fmt.Errorf("read back %s: %v", p, err)
					return
				}
				if _, err := os.ReadDir(m.mnt); err != nil {
					errc <- err
					return
				}
			}
		}()
	}

	if err := m.fs.AddCategory("appdata", CategoryKeys{Content: ck, Names: nc}); err != nil {
		t.Fatal(err)
	}
	if err := m.fs.AddCategory("appdata", CategoryKeys{Content: ck, Names: nc}); err == nil {
		t.Fatal("second AddCategory of the same name worked")
	}
	if _, err := names.ReadDirIV(filepath.Join(store, "appdata")); err != nil {
		t.Fatalf("no name IV in the new category's store dir: %v", err)
	}
	ents, err := os.ReadDir(m.mnt)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range ents {
		listed = append(listed, e.Name())
	}
	if fmt.Sprint(listed) != "[appdata mysql mysqlbackup]" {
		t.Fatalf("root lists %v after add", listed)
	}
	f := filepath.Join(m.mnt, "appdata", "hello.txt")
	if err := os.WriteFile(f, []byte("hello appdata\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		restore, err := m.fs.HideCategory("appdata")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("hidden category: stat %s: %v, want ENOENT", f, err)
		}
		if _, err := os.Stat(filepath.Join(m.mnt, "appdata")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("hidden category dir: %v, want ENOENT", err)
		}
		restore()
		got, err := os.ReadFile(f)
		if err != nil || string(got) != "hello appdata\n" {
			t.Fatalf("after restore: %q, %v", got, err)
		}
	}
	if _, err := m.fs.HideCategory("nosuch"); err == nil {
		t.Fatal("HideCategory of an unknown category worked")
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}
