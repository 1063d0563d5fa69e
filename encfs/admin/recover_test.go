package admin

import (
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

// TestRecover: a move session needs the credential (or the token); it is
// ended whether the recovery succeeds or fails, and the recovery's error
// is returned.
func TestRecover(t *testing.T) {
	testenv.RequireRoot(t) // the daemon's client talks only to a root-owned socket
	c, store := daemontest.Serve(t, nil, nil)
	audit := filepath.Join(filepath.Dir(store), "audit.log")
	sessions := func() (begun, ended int) {
		b, _ := os.ReadFile(audit)
		return strings.Count(string(b), "move-session-begin"), strings.Count(string(b), "move-session-end")
	}
	ctx := context.Background()
	wrong := &daemon.Credential{Type: "passphrase", Passphrase: []byte("p"), Salt: []byte("wrong")}
	if err := Recover(ctx, c, daemon.MoveBeginRequest{Credential: wrong}, nil); !errors.Is(err, volume.ErrIncorrectCredentials) {
		t.Fatalf("wrong credential: %v", err)
	}
	if b, e := sessions(); b != 0 || e != 0 {
		t.Fatalf("a session with a wrong credential: %d begun, %d ended", b, e)
	}

	var lines []string
	if err := Recover(ctx, c, daemon.MoveBeginRequest{Credential: daemontest.Master()}, func(l string) { lines = append(lines, l) }); err != nil || len(lines) != 0 {
		t.Fatalf("nothing to recover: %v %q", err, lines)
	}
	if b, e := sessions(); b != 1 || e != 1 {
		t.Fatalf("after a recovery: %d sessions begun, %d ended", b, e)
	}

	// A journal that cannot be read: the error comes back, the session
	// is ended all the same.
	jd := filepath.Join(store, daemon.JournalDir)
	if err := os.MkdirAll(jd, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(jd, "0123456789abcdef.json"), []byte(`{"version":1,"id":"0123456789abcdef","op":"encrypt","state":"copying","path":"/","dst":"/x"}`), 0o600)
	if err := Recover(ctx, c, daemon.MoveBeginRequest{Credential: daemontest.Master()}, nil); err == nil {
		t.Fatal("a bad journal recovered without an error")
	}
	if b, e := sessions(); b != 2 || e != 2 {
		t.Fatalf("after a failed recovery: %d sessions begun, %d ended", b, e)
	}
}
