package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/daemon/daemontest"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/testenv"
)

func TestParseCategoryName(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"appdata", "appdata"}, {"@app_data-2", "app_data-2"}, {"App", ""}, {"@", ""}, {"a.b", ""}, {"9x", ""},
	} {
		got, err := ParseCategoryName(tc.arg)
		if tc.want == "" {
			if !errors.Is(err, volume.ErrBadCategoryName) || !strings.Contains(err.Error(), `"`+tc.arg+`"`) {
				t.Errorf("%q: %q, %v; want ErrBadCategoryName naming it", tc.arg, got, err)
			}
			if h, _ := hint.Of(err); !strings.HasPrefix(h, "a category name is a lower-case letter") {
				t.Errorf("%q: hint %q", tc.arg, h)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
}

func hintOf(t *testing.T, err error) string {
	t.Helper()
	h, ok := hint.Of(err)
	if !ok {
		t.Fatalf("no hint in %v", err)
	}
	return h
}

// unlockStore opens the volume in store with daemontest's credential.
func unlockStore(t *testing.T, store string) (*volume.Volume, *volume.Keys) {
	t.Helper()
	v, err := volume.Load(store)
	if err != nil {
		t.Fatal(err)
	}
	k, err := v.Unlock(volume.Passphrase{Passphrase: daemontest.Passphrase, Salt: daemontest.Salt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Wipe)
	return v, k
}

// TestChangeCategory adds and removes categories through a real daemon;
// refusals carry their hints.
func TestChangeCategory(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	c, store := daemontest.Serve(t, nil, nil)
	conn := func() Conn { return Conn{Client: c, Cred: daemontest.Master()} }
	v0, err := volume.Load(store)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := ChangeCategory(ctx, conn(), CategoryAdd, "appdata")
	if err != nil || gen <= v0.Config.Generation {
		t.Fatalf("add: generation %d (was %d), %v", gen, v0.Config.Generation, err)
	}
	if v, _ := volume.Load(store); !v.Config.HasCategory("appdata") || v.Config.Generation != gen {
		t.Fatalf("after add: %v generation %d", v.Config.Categories, v.Config.Generation)
	}
	if _, err := ChangeCategory(ctx, conn(), CategoryAdd, "appdata"); !errors.Is(err, volume.ErrCategoryExists) {
		t.Fatalf("add twice: %v, want ErrCategoryExists", err)
	}
	_, err = ChangeCategory(ctx, conn(), CategoryRemove, "nosuch")
	if !errors.Is(err, volume.ErrUnknownCategory) || hintOf(t, err) != "'mysecure category list' shows the categories" {
		t.Fatalf("remove unknown: %v", err)
	}
	if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @appdata * /usr/bin/true", Credential: daemontest.Master()}); err != nil {
		t.Fatal(err)
	}
	_, err = ChangeCategory(ctx, conn(), CategoryRemove, "appdata")
	if !errors.Is(err, volume.ErrCategoryInUse) || !strings.Contains(hintOf(t, err), "'mysecure decrypt @appdata PATH'") {
		t.Fatalf("remove named by a rule: %v", err)
	}

	// The same refusal offline, from the rules the daemon wrote.
	v, k := unlockStore(t, store)
	_, err = ChangeCategoryOffline(v, k, CategoryRemove, "appdata")
	if !errors.Is(err, volume.ErrCategoryInUse) || !strings.Contains(hintOf(t, err), "delete the rules that name it") {
		t.Fatalf("offline remove named by a rule: %v", err)
	}
	cats, err := OfflineCategories(store)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ci := range cats {
		names = append(names, ci.Name)
		if ci.Name == "appdata" && (ci.Rules != 1 || !ci.Empty || ci.Entries != 0) {
			t.Errorf("appdata listed as %+v", ci)
		}
	}
	if got := strings.Join(names, " "); got != "appdata mysql mysqlbackup ndbdata protected" {
		t.Fatalf("offline list %s", got)
	}
}

// TestChangeCategoryOffline adds and removes categories on the volume
// config, without a daemon.
func TestChangeCategoryOffline(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	v, k, err := volume.Create(store, volume.CreateOptions{Categories: []string{"mysql", "logs"}}, volume.NewPassphrase{
		Passphrase: volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")},
		KDF:        volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Wipe()
	gen0 := v.Config.Generation
	gen, err := ChangeCategoryOffline(v, k, CategoryAdd, "appdata")
	if err != nil || gen != gen0+1 {
		t.Fatalf("add: generation %d (was %d), %v", gen, gen0, err)
	}
	if l, err := volume.Load(store); err != nil || l.Config.Generation != gen || !l.Config.HasCategory("appdata") {
		t.Fatalf("saved: %v", err)
	}
	if gen, err := ChangeCategoryOffline(v, k, CategoryRemove, "logs"); err != nil || gen != gen0+2 {
		t.Fatalf("remove: generation %d, %v", gen, err)
	}
	_, err = ChangeCategoryOffline(v, k, CategoryRemove, "logs")
	if !errors.Is(err, volume.ErrUnknownCategory) || hintOf(t, err) != "'mysecure category list' shows the categories" {
		t.Fatalf("remove twice: %v", err)
	}
	if _, err := ChangeCategoryOffline(v, k, "rename", "x"); err == nil {
		t.Fatal("an unknown operation succeeded")
	}
	// A category with data in the store is in use.
	if err := os.MkdirAll(v.CategoryDir("mysql"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.CategoryDir("mysql"), "somefile"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ChangeCategoryOffline(v, k, CategoryRemove, "mysql")
	if !errors.Is(err, volume.ErrCategoryInUse) {
		t.Fatalf("remove with data: %v, want ErrCategoryInUse", err)
	}
	cats, err := OfflineCategories(store)
	if err != nil {
		t.Fatal(err)
	}
	if len(cats) != 2 || cats[0].Name != "appdata" || !cats[0].Empty || cats[1].Name != "mysql" || cats[1].Empty || cats[1].Entries != 1 || cats[1].Rules != 0 {
		t.Fatalf("list %+v", cats)
	}
	if _, err := OfflineCategories(filepath.Join(t.TempDir(), "none")); !errors.Is(err, volume.ErrNotInitialized) {
		t.Fatalf("no volume: %v", err)
	}
}

func TestStoreDaemon(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	c, store := daemontest.Serve(t, nil, nil)
	if got, err := StoreDaemon(ctx, c, "/run/s.sock", store+"/"); got != c || err != nil {
		t.Fatalf("its own store: %v, %v", got, err)
	}
	got, err := StoreDaemon(ctx, c, "/run/s.sock", "/srv/other")
	var other *OtherStoreError
	if got != nil || !errors.As(err, &other) || err.Error() != "the daemon on /run/s.sock serves the store "+store+", not /srv/other" {
		t.Fatalf("another store: %v, %v", got, err)
	}
	none := daemon.NewClient(filepath.Join(t.TempDir(), "none.sock"))
	if got, err := StoreDaemon(ctx, none, "x", store); got != nil || err != nil {
		t.Fatalf("no daemon: %v, %v", got, err)
	}
}

// TestListCategories lists from the daemon that serves the store, and
// from the disk when none does or the daemon serves another store.
func TestListCategories(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	c, store := daemontest.Serve(t, nil, nil)
	if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @mysql * /usr/bin/true", Credential: daemontest.Master()}); err != nil {
		t.Fatal(err)
	}
	names := func(cats []daemon.CategoryInfo) string {
		var n []string
		for _, ci := range cats {
			n = append(n, fmt.Sprintf("%s:%d", ci.Name, ci.Rules))
		}
		return strings.Join(n, " ")
	}
	cats, online, err := ListCategories(ctx, c, "/run/s.sock", store)
	if err != nil || !online || names(cats) != "mysql:1 mysqlbackup:0 ndbdata:0 protected:0" {
		t.Fatalf("served store: %s online %v, %v", names(cats), online, err)
	}
	other := filepath.Join(t.TempDir(), "store")
	if _, k, err := volume.Create(other, volume.CreateOptions{Categories: []string{"logs"}}, volume.NewPassphrase{
		Passphrase: volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")},
		KDF:        volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}}); err != nil {
		t.Fatal(err)
	} else {
		k.Wipe()
	}
	cats, online, err = ListCategories(ctx, c, "/run/s.sock", other)
	if err != nil || online || names(cats) != "logs:0" {
		t.Fatalf("another store: %s online %v, %v", names(cats), online, err)
	}
	none := daemon.NewClient(filepath.Join(t.TempDir(), "none.sock"))
	cats, online, err = ListCategories(ctx, none, "x", other)
	if err != nil || online || names(cats) != "logs:0" {
		t.Fatalf("no daemon: %s online %v, %v", names(cats), online, err)
	}
	if _, _, err := ListCategories(ctx, none, "x", filepath.Join(t.TempDir(), "none")); !errors.Is(err, volume.ErrNotInitialized) {
		t.Fatalf("no volume: %v", err)
	}
}
