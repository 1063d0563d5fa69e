package daemon_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/daemon/daemontest"
	"github.com/mysecure/mysecure/encfs/volume"
	"github.com/mysecure/mysecure/internal/testenv"
)

// TestPassphraseNeverSent: the client sends the key of the passphrase
// slot instead of the passphrase and salt, and the daemon takes it as the
// master credential; a wrong passphrase gives an empty proof, refused as
// a wrong passphrase was.
func TestPassphraseNeverSent(t *testing.T) {
	c, master := serve(t)
	ctx := context.Background()
	p, done, err := c.Proof(ctx, master())
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != daemon.CredentialSlotKey || p.Slot != 1 || len(p.SlotKey) != 32 || p.Passphrase != nil || p.Salt != nil {
		t.Fatalf("proof %s", wire)
	}
	st, _ := c.Status(ctx)
	v, err := volume.Load(st.Store)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := v.Unlock(volume.SlotKey{Slot: p.Slot, Key: p.SlotKey}); err != nil || !k.IsMaster() {
		t.Fatalf("the proof does not open the volume as a master credential: %v", err)
	} else {
		k.Wipe()
	}
	key := p.SlotKey
	done()
	if !bytes.Equal(key, make([]byte, 32)) {
		t.Fatal("done did not wipe the slot key")
	}

	wrong := &daemon.Credential{Type: "passphrase", Passphrase: []byte("p"), Salt: []byte("wrong")}
	p, done, err = c.Proof(ctx, wrong)
	if err != nil || p.Type != daemon.CredentialSlotKey || p.Slot != 0 || p.SlotKey != nil {
		t.Fatalf("wrong passphrase: %+v, %v", p, err)
	}
	done()
	if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat", Credential: wrong}); !errors.Is(err, volume.ErrIncorrectCredentials) || err.Error() != volume.ErrIncorrectCredentials.Error() {
		t.Fatalf("rule with a wrong passphrase: %v", err)
	}
	if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/cat", Credential: master()}); err != nil {
		t.Fatalf("rule with the passphrase: %v", err)
	}
	rsa := &daemon.Credential{Type: "rsa", RSAPEM: []byte("pem")}
	if p, _, err := c.Proof(ctx, rsa); err != nil || p != rsa {
		t.Fatalf("an rsa credential is not sent as it is: %+v %v", p, err)
	}
	if p, _, err := c.Proof(ctx, nil); err != nil || p != nil {
		t.Fatalf("no credential: %+v %v", p, err)
	}
}

// TestLegacyPassphrase: a request that carries the passphrase itself (an
// older client) is still accepted; a wrong one is refused.
func TestLegacyPassphrase(t *testing.T) {
	testenv.RequireRoot(t)
	_, store := daemontest.Serve(t, nil, nil)
	sock := filepath.Join(filepath.Dir(store), "run", "control.sock")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	post := func(salt string) int {
		t.Helper()
		body := `{"mode":"permissive","credential":{"type":"passphrase","passphrase":"` +
			base64.StdEncoding.EncodeToString(daemontest.Passphrase) + `","salt":"` + base64.StdEncoding.EncodeToString([]byte(salt)) + `"}}`
		resp, err := hc.Post("http://mysecure/v1/mode", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong salt: status %d", code)
	}
	if code := post(string(daemontest.Salt)); code != http.StatusOK {
		t.Fatalf("the passphrase itself: status %d", code)
	}
}

// TestPassphraseToOlderDaemon: a daemon whose status does not say it takes
// slot keys (an older one, still running after an upgrade) gets the
// passphrase as before.
func TestPassphraseToOlderDaemon(t *testing.T) {
	testenv.RequireRoot(t) // the client talks only to a root-owned socket
	sock := filepath.Join(t.TempDir(), "old.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var got daemon.ModeRequest
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"mounted":true,"store":"/nonexistent","mode":"enforcing"}`))
	})
	mux.HandleFunc("POST /v1/mode", func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got)
		w.Write([]byte(`{"mode":"permissive","previous":"enforcing"}`))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	c := daemon.NewClient(sock)
	if _, err := c.SetMode(context.Background(), daemon.ModeRequest{Mode: "permissive", Credential: daemontest.Master()}); err != nil {
		t.Fatal(err)
	}
	if got.Credential == nil || got.Credential.Type != "passphrase" || string(got.Credential.Passphrase) != string(daemontest.Passphrase) {
		t.Fatalf("an older daemon got %+v", got.Credential)
	}
}
