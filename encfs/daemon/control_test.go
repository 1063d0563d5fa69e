package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/testenv"
)

// serve runs the control socket of a daemon on a fresh volume (no mount)
// and returns a client and the master credential.
func serve(t *testing.T) (*Client, func() *Credential) {
	t.Helper()
	testenv.RequireRoot(t) // the client talks only to a root-owned socket
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	vol, keys, err := volume.Create(store, volume.CreateOptions{}, volume.NewPassphrase{
		Passphrase: volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")},
		KDF:        volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "control.sock")
	d, err := New(Config{Store: store, Mount: filepath.Join(dir, "mnt"), Socket: sock, AuditLog: filepath.Join(dir, "audit.log")}, vol, keys)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.ServeControl(ctx) }()
	t.Cleanup(func() { cancel(); <-done; d.Close() })
	c := NewClient(sock)
	for i := 0; ; i++ {
		if _, err := c.Status(context.Background()); err == nil {
			break
		} else if i == 100 {
			t.Fatalf("the control socket does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c, func() *Credential { return &Credential{Type: "passphrase", Passphrase: []byte("p"), Salt: []byte("s")} }
}

// TestAdminRequests: mode, rule and category changes need the master
// credential (except back to enforcing), and their errors reach the
// client as the volume's sentinels.
func TestAdminRequests(t *testing.T) {
	c, master := serve(t)
	ctx := context.Background()
	if _, err := c.SetMode(ctx, ModeRequest{Mode: "permissive"}); !errors.Is(err, volume.ErrIncorrectCredentials) {
		t.Fatalf("permissive without the credential: %v", err)
	}
	wrong := &Credential{Type: "passphrase", Passphrase: []byte("p"), Salt: []byte("wrong")}
	if _, err := c.SetMode(ctx, ModeRequest{Mode: "permissive", Credential: wrong}); !errors.Is(err, volume.ErrIncorrectCredentials) {
		t.Fatalf("permissive with a wrong salt: %v", err)
	}
	if _, err := c.SetMode(ctx, ModeRequest{Mode: "lax", Credential: master()}); !errors.Is(err, ErrUsage) {
		t.Fatalf("unknown mode: %v", err)
	}
	if prev, err := c.SetMode(ctx, ModeRequest{Mode: "permissive", Credential: master()}); err != nil || prev != "enforcing" {
		t.Fatalf("permissive: %q %v", prev, err)
	}
	if prev, err := c.SetMode(ctx, ModeRequest{Mode: "enforcing"}); err != nil || prev != "permissive" {
		t.Fatalf("back to enforcing without a credential: %q %v", prev, err)
	}
	if _, err := c.ACL(ctx, ACLRequest{Op: "add", Rule: "ALLOW @nosuch * /bin/cat", Credential: master()}); !errors.Is(err, volume.ErrUnknownCategory) {
		t.Fatalf("rule for an unknown category: %v", err)
	}
	if _, err := c.ACL(ctx, ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat"}); !errors.Is(err, volume.ErrIncorrectCredentials) {
		t.Fatalf("rule without the credential: %v", err)
	}
	r, err := c.ACL(ctx, ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat", Credential: master()})
	if err != nil || len(r.Rules) != 1 {
		t.Fatalf("rule: %+v %v", r, err)
	}
	if _, err := c.ACL(ctx, ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat", Credential: master()}); !errors.Is(err, ErrConflict) {
		t.Fatalf("the same rule again: %v", err)
	}
	if _, err := c.Category(ctx, CategoryRequest{Op: "add", Name: "Bad!", Credential: master()}); !errors.Is(err, volume.ErrBadCategoryName) {
		t.Fatalf("bad category name: %v", err)
	}
	if _, err := c.Category(ctx, CategoryRequest{Op: "remove", Name: "mysql", Credential: master()}); !errors.Is(err, volume.ErrCategoryInUse) {
		t.Fatalf("removing a category a rule names: %v", err)
	}
}

// TestLoadRules: the rule file the daemon saved reads back offline with
// the volume's keys; a changed file is refused with its path.
func TestLoadRules(t *testing.T) {
	c, master := serve(t)
	if _, err := c.ACL(context.Background(), ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat", Credential: master()}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	store := st.Store
	vol, err := volume.Load(store)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := vol.Unlock(volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Wipe()
	rs, err := LoadRules(store, keys)
	if err != nil || len(rs.Rules) != 1 || len(rs.CategoryRefs("mysql")) != 1 {
		t.Fatalf("%+v %v", rs, err)
	}
	p := filepath.Join(store, RulesFile)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte("/bin/cat"), []byte("/bin/ls"), 1), 0o600)
	if _, err := LoadRules(store, keys); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("changed rule file: %v", err)
	}
}
