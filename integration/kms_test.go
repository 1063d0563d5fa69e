package integration

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/kmip"
	"github.com/mysecure/mysecure/internal/testenv"
)

// kmsSlotArgs are the flags of 'key add --type kms' for keyID with the
// server's client certificate.
func kmsSlotArgs(ks *testenv.KMIPServer, keyID, cert, key string) []string {
	return []string{"key", "add", "--type", "kms", "--kms", ks.URL(), "--cert", cert, "--key", key, "--ca", ks.CAPath, "--key-id", keyID}
}

// TestKMS: a kms key slot on a real pykmip-server (Debian python3-pykmip)
// on loopback, with certificates made by the test: add the slot, mount
// through it with no passphrase and no terminal (detached and in the
// foreground, as a boot unit does), refuse foreign client certificates
// and a tampered slot, rotate the key on the server, and fall back to the
// passphrase when the server is down.
func TestKMS(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireFUSE(t)
	ks := testenv.StartKMIPServer(t)
	admin := &kmip.Client{Addr: ks.Addr, TLS: ks.TLSConfig(ks.Client)}
	ctx := context.Background()
	keyID, err := admin.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	// The mount env without a credential: what is given is per command.
	pass := e.creds
	noCreds := *e
	noCreds.creds = nil

	out := e.run(0, nil, nil, append(kmsSlotArgs(ks, keyID, ks.ClientCert, ks.ClientKey), pass...)...)
	var list struct {
		Slots []struct {
			ID   int    `json:"id"`
			Type string `json:"type"`
			KMS  *struct {
				URL   string `json:"url"`
				KeyID string `json:"key_id"`
			} `json:"kms"`
		} `json:"slots"`
	}
	var lo bytes.Buffer
	e.run(0, nil, &lo, "key", "list", "--json")
	if err := json.Unmarshal(lo.Bytes(), &list); err != nil {
		t.Fatal(err, out)
	}
	if len(list.Slots) != 2 || list.Slots[1].Type != "kms" || list.Slots[1].KMS == nil ||
		list.Slots[1].KMS.URL != ks.URL() || list.Slots[1].KMS.KeyID != keyID {
		t.Fatalf("key list after key add --type kms: %s", lo.String())
	}

	t.Run("wrong client certificate refused", func(t *testing.T) {
		dir := t.TempDir()
		rogueCA := testenv.NewCert(t, "rogue CA", nil, true, 0)
		rogue := testenv.NewCert(t, "mysecure", rogueCA, false, x509.ExtKeyUsageClientAuth)
		cert, key := rogue.Write(t, dir, "rogue")
		errOut := e.run(3, nil, nil, append(kmsSlotArgs(ks, keyID, cert, key), pass...)...)
		t.Logf("rogue CA:\n%s", errOut)
		mustContain(t, errOut, "mysecure: error: failed to create kms key slot: kms: "+ks.URL()+": ", "mysecure: hint: ")
		// Another identity of the same CA does not own the key.
		other := testenv.NewCert(t, "other-host", ks.CA, false, x509.ExtKeyUsageClientAuth)
		cert, key = other.Write(t, dir, "other")
		errOut = e.run(3, nil, nil, append(kmsSlotArgs(ks, keyID, cert, key), pass...)...)
		t.Logf("other identity:\n%s", errOut)
		mustContain(t, errOut, "the key server refused Encrypt")
		// A CA file that does not sign the server's certificate.
		rogueCAPath, _ := rogueCA.Write(t, dir, "rogue-ca")
		args := kmsSlotArgs(ks, keyID, ks.ClientCert, ks.ClientKey)
		args[len(args)-3] = rogueCAPath
		errOut = e.run(3, nil, nil, append(args, pass...)...)
		mustContain(t, errOut, "the key server's certificate does not verify with the CA file")
		// None left a slot behind.
		var lo bytes.Buffer
		e.run(0, nil, &lo, "key", "list")
		if strings.Count(lo.String(), " kms ") != 1 {
			t.Fatalf("a refused kms slot was added:\n%s", lo.String())
		}
	})

	// Mount through the kms slot: no credential; from here on no terminal.
	m := mountVolume(t, &noCreds, nil)
	m.noTTY = true
	mustContain(t, m.ms(0, "status"), "mounted:")
	if b, _ := os.ReadFile(m.log); bytes.Contains(b, []byte("falling back")) {
		t.Fatalf("the kms mount fell back:\n%s", b)
	}
	m.ms(0, "umount")

	t.Run("foreground, as the boot unit runs it", func(t *testing.T) {
		c := m.cmd("mount", "--foreground")
		var logb bytes.Buffer
		c.Stdout, c.Stderr = &logb, &logb
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- c.Wait() }()
		waitMounted(t, m, exited, &logb)
		m.ms(0, "umount")
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("mount --foreground: %v\n%s", err, logb.String())
			}
		case <-time.After(30 * time.Second):
			c.Process.Kill()
			t.Fatal("mount --foreground did not exit after umount")
		}
	})

	t.Run("key verify asks the key server", func(t *testing.T) {
		var vo bytes.Buffer
		e.run(0, nil, &vo, append([]string{"key", "verify"}, pass...)...)
		mustContain(t, vo.String(), "ok: the credential opens key slot 1", "opens the volume (the key server unwrapped it)")
		mustContain(t, m.ms(0, "key", "verify", "--kms"), "ok: the credential opens key slot 2")
	})

	t.Run("tampered wrapped key refused", func(t *testing.T) {
		conf := filepath.Join(e.store, "mysecure.conf")
		orig, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(conf, orig, 0o600)
		tamperKMSSlot(t, conf, orig)
		out := m.ms(3, "key", "verify", "--kms")
		mustContain(t, out, "kms slot 2: "+ks.URL()+": the slot does not verify with the client key: it was changed outside mysecure")
		out = m.ms(3, "mount")
		mustContain(t, out, "no passphrase to fall back to", "mysecure: hint: ")
		if _, err := os.Stat(filepath.Join(m.mnt, "mysql")); err == nil {
			t.Fatal("mounted with a tampered kms slot")
		}
	})

	t.Run("key rotation on the server", func(t *testing.T) {
		newID, err := admin.CreateKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e.run(0, nil, nil, append(kmsSlotArgs(ks, newID, ks.ClientCert, ks.ClientKey), pass...)...)
		e.run(0, nil, nil, append([]string{"key", "remove", "2"}, pass...)...)
		var lo bytes.Buffer
		e.run(0, nil, &lo, "key", "list", "--json")
		if err := json.Unmarshal(lo.Bytes(), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Slots) != 2 || list.Slots[1].ID != 3 || list.Slots[1].KMS.KeyID != newID {
			t.Fatalf("after rotation: %s", lo.String())
		}
		vo := m.ms(0, "key", "verify", "--kms")
		mustContain(t, vo, "ok: the credential opens key slot 3")
		m.ms(0, "mount")
		mustContain(t, m.ms(0, "status"), "mounted:")
		m.ms(0, "umount")
	})

	t.Run("server down at boot", func(t *testing.T) {
		ks.Stop()
		refused := "kms slot 3: " + ks.URL() + ": connection refused"
		// With the passphrase at hand: one line, then the passphrase slot.
		out := m.ms(0, append([]string{"mount", "--kms"}, pass...)...)
		t.Logf("mount --kms, server down:\n%s", out)
		mustContain(t, out, "mysecure: warning: "+refused+"; falling back to the passphrase slot")
		mustContain(t, m.ms(0, "status"), "mounted:")
		m.ms(0, "umount")
		// Without: a clear error, exit 3, nothing mounted.
		out = m.ms(3, "mount")
		t.Logf("mount, server down, no passphrase:\n%s", out)
		mustContain(t, out, "mysecure: error: "+refused+"; no passphrase to fall back to", "mysecure: hint: ")
		m.ms(8, "status")
		// In the foreground (the boot unit) the same.
		out = m.ms(3, "mount", "--foreground")
		mustContain(t, out, refused+"; no passphrase to fall back to")
		// key verify says which slot no longer opens the volume.
		var vo bytes.Buffer
		errOut := e.run(3, nil, &vo, append([]string{"key", "verify"}, pass...)...)
		t.Logf("key verify, server down:\n%s%s", vo.String(), errOut)
		mustContain(t, vo.String(), "slot 3", "FAILS: "+refused)
		mustContain(t, errOut, "1 of 1 kms slots do not open the volume")
	})
}

// waitMounted waits until status answers "mounted", or the daemon exits.
func waitMounted(t *testing.T, m *mountEnv, exited <-chan error, logb *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out, err := m.cmd("status").CombinedOutput(); err == nil && strings.Contains(string(out), "mounted:") {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("mount --foreground exited: %v\n%s", err, logb.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount --foreground did not mount:\n%s", logb.String())
		}
	}
}

// tamperKMSSlot flips one bit of the kms slot's wrapped key in conf.
func tamperKMSSlot(t *testing.T, conf string, orig []byte) {
	t.Helper()
	var file struct {
		Volume json.RawMessage `json:"volume"`
		MAC    string          `json:"mac"`
	}
	if err := json.Unmarshal(orig, &file); err != nil {
		t.Fatal(err)
	}
	var vol map[string]any
	if err := json.Unmarshal(file.Volume, &vol); err != nil {
		t.Fatal(err)
	}
	slots := vol["slots"].([]any)
	var w string
	for _, s := range slots {
		sm := s.(map[string]any)
		if sm["type"] == "kms" {
			w = sm["wrapped"].(string)
			b, _ := base64.StdEncoding.DecodeString(w)
			b[20] ^= 1
			sm["wrapped"] = base64.StdEncoding.EncodeToString(b)
		}
	}
	if w == "" {
		t.Fatal("no kms slot in " + strconv.Quote(conf))
	}
	body, _ := json.Marshal(vol)
	file.Volume = body
	out, _ := json.Marshal(file)
	if err := os.WriteFile(conf, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
