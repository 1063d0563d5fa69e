package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mysecure/mysecure/encfs/volume"
)

// TestNewService: the service opens the backup category of the volume,
// keeps its locks in the store, and puts credential FIFOs in the runtime
// directory only when that is an existing directory; a category the
// volume does not have is an error.
func TestNewService(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	vol, keys, err := volume.Create(store, volume.CreateOptions{}, volume.NewPassphrase{
		Passphrase: volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")},
		KDF:        volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Wipe()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ runtime, want string }{
		{dir, dir},
		{filepath.Join(dir, "missing"), ""},
		{notDir, ""},
		{"", ""},
	} {
		s, err := NewService(vol, keys, Config{Store: store, Category: "mysqlbackup",
			Tools: Tools{Dump: "mariadb-dump", RuntimeDir: tc.runtime}})
		if err != nil {
			t.Fatal(err)
		}
		if s.Tools.RuntimeDir != tc.want || s.Tools.Dump != "mariadb-dump" || s.LockDir != filepath.Join(store, "ms.locks") || s.Tree == nil {
			t.Errorf("runtime %q: got %+v", tc.runtime, s)
		}
	}
	if _, err := NewService(vol, keys, Config{Store: store, Category: "nosuch"}); err == nil {
		t.Error("a category the volume does not have opened")
	}
}

func TestProgressRate(t *testing.T) {
	for _, tc := range []struct {
		p    Progress
		want float64
	}{
		{Progress{PlainBytes: 3 << 20, Elapsed: 2 * time.Second}, 1.5 * (1 << 20)},
		{Progress{PlainBytes: 100, Elapsed: 0}, 0},
		{Progress{PlainBytes: 0, Elapsed: time.Second}, 0},
		{Progress{PlainBytes: 1000, Elapsed: 250 * time.Millisecond}, 4000},
	} {
		if got := tc.p.Rate(); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.p, got, tc.want)
		}
	}
}

// TestDoInto: a local run's result reaches the caller in the form a
// daemon client decodes (JSON), and a refused request stores nothing.
func TestDoInto(t *testing.T) {
	s := testService(t)
	in := &CredentialsIn{User: "bk", Password: "pw", Socket: "/run/mysqld/mysqld.sock"}
	var info CredentialsInfo
	if err := s.DoInto(context.Background(), Request{Op: OpCredentialsSet, Name: "nightly", Credentials: in}, true, nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "nightly" || info.User != "bk" {
		t.Errorf("stored %+v", info)
	}
	var list []CredentialsInfo
	if err := s.DoInto(context.Background(), Request{Op: OpCredentialsList}, true, nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "nightly" || list[0].Password == "pw" {
		t.Errorf("listed %+v", list)
	}
	if err := s.DoInto(context.Background(), Request{Op: OpCredentialsRemove, Name: "nightly"}, true, nil, nil); err != nil {
		t.Fatalf("no result wanted: %v", err)
	}
	list = nil
	err := s.DoInto(context.Background(), Request{Op: OpCredentialsList}, false, nil, &list)
	if !errors.Is(err, ErrDenied) || list != nil {
		t.Errorf("a non-root credentials list: %v %+v", err, list)
	}
}
