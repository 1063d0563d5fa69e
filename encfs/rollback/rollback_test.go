package rollback

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const vid = "00112233445566778899aabbccddeeff"

func TestObserveAcceptCounter(t *testing.T) {
	d := Dir{Path: filepath.Join(t.TempDir(), "state")}
	conf := "/store/mysecure.conf"
	steps := []struct {
		name    string
		gen     uint64
		wantErr bool
		last    uint64
	}{
		{"first sight of an old file (generation 0)", 0, false, 0},
		{"higher is recorded", 3, false, 3},
		{"same again is fine", 3, false, 3},
		{"lower is refused", 2, true, 3},
		{"zero is refused after a higher one", 0, true, 3},
		{"higher again", 7, false, 7},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := d.Observe(vid, conf, s.gen)
			if (err != nil) != s.wantErr {
				t.Fatalf("Observe(%d): %v", s.gen, err)
			}
			if err != nil {
				var re *Error
				if !errors.As(err, &re) || !errors.Is(err, ErrRollback) {
					t.Fatalf("error %T does not carry the rollback: %v", err, err)
				}
				if re.Generation != s.gen || re.LastSeen != s.last || re.File != conf {
					t.Fatalf("error fields: %+v", re)
				}
				for _, want := range []string{conf, "generation " + strconv.FormatUint(s.gen, 10), "generation " + strconv.FormatUint(s.last, 10), d.StatePath(vid)} {
					if !strings.Contains(err.Error(), want) {
						t.Fatalf("error %q lacks %q", err, want)
					}
				}
			}
			if got, _ := d.Last(vid, "mysecure.conf"); got != s.last {
				t.Fatalf("last seen %d, want %d", got, s.last)
			}
		})
	}
	// Files are counted apart (by base name), volumes too.
	if err := d.Observe(vid, "/store/rules.json", 1); err != nil {
		t.Fatal(err)
	}
	other := "ffeeddccbbaa99887766554433221100"
	if err := d.Observe(other, conf, 1); err != nil {
		t.Fatalf("another volume: %v", err)
	}
	// Accept lowers the counter on purpose and reports what it replaced.
	prev, err := d.Accept(vid, conf, 2)
	if err != nil || prev != 7 {
		t.Fatalf("Accept: %d %v", prev, err)
	}
	if err := d.Observe(vid, conf, 2); err != nil {
		t.Fatalf("after Accept: %v", err)
	}
	if got, _ := d.Last(vid, "rules.json"); got != 1 {
		t.Fatalf("rules.json last seen %d", got)
	}
}

func TestStatePermissions(t *testing.T) {
	d := Dir{Path: filepath.Join(t.TempDir(), "state")}
	if err := d.Observe(vid, "mysecure.conf", 1); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(d.Path)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v", fi.Mode(), err)
	}
	fi, err = os.Stat(d.StatePath(vid))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi.Mode(), err)
	}
	if m, _ := filepath.Glob(filepath.Join(d.Path, ".*tmp*")); len(m) > 0 {
		t.Fatalf("temp files left: %v", m)
	}
	// A state directory others can write is not trusted.
	os.Chmod(d.Path, 0o777)
	if err := d.Observe(vid, "mysecure.conf", 2); !errors.Is(err, ErrInsecureState) {
		t.Fatalf("world-writable state dir: %v", err)
	}
	os.Chmod(d.Path, 0o700)
	os.Chmod(d.StatePath(vid), 0o666)
	if _, err := d.Last(vid, "mysecure.conf"); !errors.Is(err, ErrInsecureState) {
		t.Fatalf("world-writable state file: %v", err)
	}
	// Bad volume IDs never become paths.
	if err := d.Observe("../../etc/passwd", "x", 1); err == nil {
		t.Fatal("bad volume ID accepted")
	}
	if err := (Dir{}).Observe(vid, "x", 1); err == nil {
		t.Fatal("empty state dir accepted")
	}
}
