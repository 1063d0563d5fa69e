package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/daemon/daemontest"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/testenv"
)

func serve(t *testing.T) (*daemon.Client, func() *daemon.Credential) {
	t.Helper()
	testenv.RequireRoot(t) // the client talks only to a root-owned socket
	c, _ := daemontest.Serve(t, nil, nil)
	return c, daemontest.Master
}

// TestAdminRequests: mode, rule and category changes need the master
// credential (except back to enforcing), and their errors reach the
// client as the volume's sentinels.
func TestAdminRequests(t *testing.T) {
	c, master := serve(t)
	ctx := context.Background()
	if _, err := c.SetMode(ctx, daemon.ModeRequest{Mode: "permissive"}); !errors.Is(err, volume.ErrIncorrectCredentials) {
		t.Fatalf("permissive without the credential: %v", err)
	}
	wrong := &daemon.Credential{Type: "passphrase", Passphrase: []byte("p"), Salt: []byte("wrong")}
	if _, err := c.SetMode(ctx, daemon.ModeRequest{Mode: "permissive", Credential: wrong}); !errors.Is(err, volume.ErrIncorrectCredentials) {
		t.Fatalf("permissive with a wrong salt: %v", err)
	}
	if _, err := c.SetMode(ctx, daemon.ModeRequest{Mode: "lax", Credential: master()}); !errors.Is(err, daemon.ErrUsage) {
		t.Fatalf("unknown mode: %v", err)
	}
	if prev, err := c.SetMode(ctx, daemon.ModeRequest{Mode: "permissive", Credential: master()}); err != nil || prev != "enforcing" {
		t.Fatalf("permissive: %q %v", prev, err)
	}
	if prev, err := c.SetMode(ctx, daemon.ModeRequest{Mode: "enforcing"}); err != nil || prev != "permissive" {
		t.Fatalf("back to enforcing without a credential: %q %v", prev, err)
	}
	if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @nosuch * /bin/cat", Credential: master()}); !errors.Is(err, volume.ErrUnknownCategory) {
		t.Fatalf("rule for an unknown category: %v", err)
	}
	if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat"}); !errors.Is(err, volume.ErrIncorrectCredentials) {
		t.Fatalf("rule without the credential: %v", err)
	}
	r, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat", Credential: master()})
	if err != nil || len(r.Rules) != 1 {
		t.Fatalf("rule: %+v %v", r, err)
	}
	if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat", Credential: master()}); !errors.Is(err, daemon.ErrConflict) {
		t.Fatalf("the same rule again: %v", err)
	}
	if _, err := c.Category(ctx, daemon.CategoryRequest{Op: "add", Name: "Bad!", Credential: master()}); !errors.Is(err, volume.ErrBadCategoryName) {
		t.Fatalf("bad category name: %v", err)
	}
	if _, err := c.Category(ctx, daemon.CategoryRequest{Op: "remove", Name: "mysql", Credential: master()}); !errors.Is(err, volume.ErrCategoryInUse) {
		t.Fatalf("removing a category a rule names: %v", err)
	}
}

// TestLoadRules: the rule file the daemon saved reads back offline with
// the volume's keys; a changed file is refused with its path.
func TestLoadRules(t *testing.T) {
	c, master := serve(t)
	if _, err := c.ACL(context.Background(), daemon.ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat", Credential: master()}); err != nil {
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
	rs, err := daemon.LoadRules(store, keys)
	if err != nil || len(rs.Rules) != 1 || len(rs.CategoryRefs("mysql")) != 1 {
		t.Fatalf("%+v %v", rs, err)
	}
	p := filepath.Join(store, daemon.RulesFile)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte("/bin/cat"), []byte("/bin/ls"), 1), 0o600)
	if _, err := daemon.LoadRules(store, keys); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("changed rule file: %v", err)
	}
}
