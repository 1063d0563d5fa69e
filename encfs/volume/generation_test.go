package volume

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestConfigGeneration: every write of the config bumps its generation,
// the generation is under the MAC, a failed change leaves it alone, and a
// version 1 config (the frozen fixture) reads as generation 0.
func TestConfigGeneration(t *testing.T) {
	dir, v, k := newVolume(t)
	if v.Config.Generation != 1 || v.Config.Version != ConfigVersion {
		t.Fatalf("new volume: generation %d version %d", v.Config.Generation, v.Config.Version)
	}
	rk := genRSA(t)
	id, err := v.AddSlot(k, NewRSA{Public: &rk.PublicKey}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ReplaceSlot(k, 1, NewPassphrase{Passphrase: pass("correct horse", "pepper"), KDF: cheapKDF}); err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveSlot(k, id); err != nil {
		t.Fatal(err)
	}
	// Refused changes write nothing and count nothing.
	if err := v.RemoveSlot(k, 1); !errors.Is(err, ErrLastSlot) {
		t.Fatal(err)
	}
	if v.Config.Generation != 4 {
		t.Fatalf("after add, change, remove: generation %d, want 4", v.Config.Generation)
	}
	v2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Config.Generation != 4 {
		t.Fatalf("on disk: generation %d, want 4", v2.Config.Generation)
	}
	// A failed save (read-only store dir) restores the counter.
	if os.Geteuid() != 0 {
		os.Chmod(dir, 0o500)
		if _, err := v2.AddSlot(k, NewRSA{Public: &rk.PublicKey}, ""); err == nil {
			t.Fatal("AddSlot into a read-only dir worked")
		}
		os.Chmod(dir, 0o700)
		if v2.Config.Generation != 4 {
			t.Fatalf("failed save left generation %d", v2.Config.Generation)
		}
	}
	// The generation is authenticated: raising it by hand is tampering.
	rewrite(t, dir, func(m map[string]any) { m["volume"].(map[string]any)["generation"] = 99 })
	v3, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v3.Unlock(pass("correct horse", "pepper")); !errors.Is(err, ErrTampered) {
		t.Fatalf("edited generation: %v, want ErrTampered", err)
	}
}

func TestFixtureGenerationZero(t *testing.T) {
	v, err := Load(filepath.Join("..", "..", "testdata", "volume-v1", "store"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Config.Version != 1 || v.Config.Generation != 0 {
		t.Fatalf("fixture: version %d generation %d, want 1 and 0", v.Config.Version, v.Config.Generation)
	}
	// Saved again, a version 1 volume becomes version 2, generation 1.
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o700)
	data, _ := os.ReadFile(ConfigPath(v.Dir))
	os.WriteFile(ConfigPath(dir), data, 0o600)
	v, _ = Load(dir)
	pp, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "volume-v1", "passphrase.txt"))
	ss, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "volume-v1", "salt.txt"))
	k, err := v.Unlock(Passphrase{Passphrase: trimNL(pp), Salt: trimNL(ss)})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveSlot(k, 3); err != nil {
		t.Fatal(err)
	}
	v, err = Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Config.Version != 2 || v.Config.Generation != 1 {
		t.Fatalf("rewritten fixture: version %d generation %d, want 2 and 1", v.Config.Version, v.Config.Generation)
	}
	if _, err := v.Unlock(Passphrase{Passphrase: trimNL(pp), Salt: trimNL(ss)}); err != nil {
		t.Fatal(err)
	}
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
