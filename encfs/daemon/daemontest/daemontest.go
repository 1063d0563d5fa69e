// Package daemontest runs the control socket of a real daemon on a fresh
// volume, without a mount, for tests of the control API and of its
// clients (as net/http/httptest does for HTTP servers). It is for tests
// only. The client talks only to a root-owned socket, so a test that
// uses it must run as root (check with internal/testenv first).
package daemontest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/volume"
)

// The passphrase and salt of the volumes Serve makes.
var (
	Passphrase = []byte("p")
	Salt       = []byte("s")
)

// Master returns the master credential of the volumes Serve makes (a new
// one each time: a request wipes the one it carried).
func Master() *daemon.Credential {
	return &daemon.Credential{Type: daemon.CredentialPassphrase, Passphrase: append([]byte(nil), Passphrase...), Salt: append([]byte(nil), Salt...)}
}

// Serve creates a volume (cheap KDF) in a temp dir, serves its daemon's
// control socket with jobs (nil: none) until the test ends, and returns a
// client that decodes job errors with jobErr (nil: none) and the store.
func Serve(t testing.TB, jobs daemon.Jobs, jobErr func(code string) error) (*daemon.Client, string) {
	t.Helper()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	vol, keys, err := volume.Create(store, volume.CreateOptions{}, volume.NewPassphrase{
		Passphrase: volume.Passphrase{Passphrase: Passphrase, Salt: Salt},
		KDF:        volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "control.sock")
	d, err := daemon.New(daemon.Config{Store: store, Mount: filepath.Join(dir, "mnt"), Socket: sock,
		AuditLog: filepath.Join(dir, "audit.log"), Jobs: jobs}, vol, keys)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.ServeControl(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.Close()
	})
	c := daemon.NewClient(sock).WithJobErrors(jobErr)
	for i := 0; ; i++ {
		_, err := c.Status(context.Background())
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("the control socket does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c, store
}
