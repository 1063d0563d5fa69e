package reach

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/internal/testenv"
)

func TestBlocker(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	lib := filepath.Join(base, "lib")
	mnt := filepath.Join(lib, "mysecure", "encrypted")
	os.MkdirAll(mnt, 0o755)
	os.Chmod(filepath.Join(lib, "mysecure"), 0o700)
	const nobody = 65534
	b, err := Blocker(mnt, nobody, nil)
	if err != nil || b == nil || b.Dir != filepath.Join(lib, "mysecure") || b.Mode != 0o700 {
		t.Fatalf("0700 parent: %+v %v", b, err)
	}
	if b, _ := Blocker(mnt, 0, nil); b != nil {
		t.Fatalf("root blocked: %+v", b)
	}
	// Group search bit, for a member of the group only.
	os.Chown(filepath.Join(lib, "mysecure"), 0, 4242)
	os.Chmod(filepath.Join(lib, "mysecure"), 0o710)
	if b, _ := Blocker(mnt, nobody, []uint32{4242}); b != nil {
		t.Fatalf("group member blocked: %+v", b)
	}
	if b, _ := Blocker(mnt, nobody, []uint32{1}); b == nil {
		t.Fatal("non-member not blocked")
	}
	// Owner bit.
	os.Chown(filepath.Join(lib, "mysecure"), nobody, 0)
	os.Chmod(filepath.Join(lib, "mysecure"), 0o700)
	if b, _ := Blocker(mnt, nobody, nil); b != nil {
		t.Fatalf("owner blocked: %+v", b)
	}
	os.Chmod(filepath.Join(lib, "mysecure"), 0o755)
	os.Chown(filepath.Join(lib, "mysecure"), 0, 0)
	if b, _ := Blocker(mnt, nobody, nil); b != nil {
		t.Fatalf("0755 path blocked: %+v", b)
	}
}

func TestCheckRules(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(base, 0o700) // blocks everyone but root
	mnt := filepath.Join(base, "mnt")
	dd := filepath.Join(mnt, "mysql", "var", "lib", "mysql")
	os.MkdirAll(dd, 0o755)
	os.Chown(dd, 65534, 65534)
	rules := map[string]acl.Rule{}
	for _, text := range []string{
		"ALLOW @mysql var/lib/mysql/* /usr/sbin/mariadbd",         // owner of the datadir: nobody
		"ALLOW @mysqlbackup * /usr/bin/mariadb-dump --user=65534", // --user
		"ALLOW @* * /usr/bin/cat",                                 // no user to check
		"DENY @mysql * /usr/bin/cat",
	} {
		r, err := acl.ParseRule(text)
		if err != nil {
			t.Fatal(err)
		}
		rules[text] = r
	}
	ps := Check(mnt, rules)
	if len(ps) != 2 {
		t.Fatalf("problems: %v", ps)
	}
	for _, p := range ps {
		if p.Dir != base || p.User.UID != 65534 || !strings.Contains(p.String(), base) || !strings.Contains(p.Hint(), "chmod o+x "+base) {
			t.Errorf("problem %v", p)
		}
	}
	os.Chmod(base, 0o755)
	if ps := Check(mnt, rules); len(ps) != 0 {
		t.Fatalf("after chmod: %v", ps)
	}
}
