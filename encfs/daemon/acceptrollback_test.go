package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/rollback"
	"github.com/mysecure/mysecure/encfs/volume"
)

func saveRulesGen(t *testing.T, v *volume.Volume, k *volume.Keys, gen uint64) {
	t.Helper()
	key, err := k.Subkey(volume.PurposeRules, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := acl.SaveRules(filepath.Join(v.Dir, RulesFile), &acl.RuleSet{Generation: gen}, key); err != nil {
		t.Fatal(err)
	}
}

// TestAcceptRollback: an older config and rule file put back are refused
// by the rollback state until AcceptRollback records them with a master
// credential; a key file cannot, and a rule file that does not
// authenticate records nothing.
func TestAcceptRollback(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	master := volume.Passphrase{Passphrase: []byte("p"), Salt: []byte("s")}
	v, k, err := volume.Create(store, volume.CreateOptions{}, volume.NewPassphrase{Passphrase: master,
		KDF: volume.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Wipe()
	oldConf, err := os.ReadFile(volume.ConfigPath(store))
	if err != nil {
		t.Fatal(err)
	}
	oldGen := v.Config.Generation
	kf, err := volume.GenerateKeyFile(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.AddSlot(k, volume.NewKeyFile{KeyFile: *kf, Path: filepath.Join(dir, "key")}, ""); err != nil {
		t.Fatal(err)
	}
	newGen := v.Config.Generation
	rulesPath := filepath.Join(store, RulesFile)
	saveRulesGen(t, v, k, 5)
	d := &rollback.Dir{Path: filepath.Join(dir, "state")}
	for _, f := range []struct {
		path string
		gen  uint64
	}{{volume.ConfigPath(store), newGen}, {rulesPath, 5}} {
		if err := d.Observe(v.Config.VolumeID, f.path, f.gen); err != nil {
			t.Fatal(err)
		}
	}

	kk, err := v.Unlock(*kf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcceptRollback(d, v, kk); !errors.Is(err, volume.ErrNotMasterCredential) {
		t.Errorf("a key file accepted a rollback: %v", err)
	}
	kk.Wipe()

	// The older copies put back.
	if err := os.WriteFile(volume.ConfigPath(store), oldConf, 0o600); err != nil {
		t.Fatal(err)
	}
	saveRulesGen(t, v, k, 3)
	old, err := volume.Load(store)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Observe(old.Config.VolumeID, rulesPath, 3); !errors.Is(err, rollback.ErrRollback) {
		t.Fatalf("older rules not refused before accepting: %v", err)
	}

	// A rule file that does not authenticate: nothing recorded.
	good, _ := os.ReadFile(rulesPath)
	if err := os.WriteFile(rulesPath, append([]byte(nil), good[:len(good)-2]...), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := AcceptRollback(d, old, k); err == nil || len(got) != 0 {
		t.Errorf("a damaged rule file accepted: %v %v", got, err)
	}
	if last, _ := d.Last(old.Config.VolumeID, filepath.Base(volume.ConfigPath(store))); last != newGen {
		t.Errorf("config generation recorded %d after a refused accept, want %d", last, newGen)
	}
	if err := os.WriteFile(rulesPath, good, 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := AcceptRollback(d, old, k)
	if err != nil {
		t.Fatal(err)
	}
	want := []Accepted{{volume.ConfigPath(store), oldGen, newGen}, {rulesPath, 3, 5}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("accepted %+v, want %+v", got, want)
	}
	for _, f := range want {
		if err := d.Observe(old.Config.VolumeID, f.Path, f.Generation); err != nil {
			t.Errorf("%s still refused after accepting: %v", f.Path, err)
		}
	}
}
