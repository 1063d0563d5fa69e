package trust

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/testenv"
)

func TestCheckFile(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir() // 0700, root's, under the sticky /tmp
	write := func(name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("store: /x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("ok.yaml", 0o644)
	if err := CheckFile(good); err != nil {
		t.Fatalf("root's 0644 file in root's directories refused: %v", err)
	}
	// Relative paths are checked as absolute ones.
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(base)
	if err := CheckFile("ok.yaml"); err != nil {
		t.Fatalf("relative path refused: %v", err)
	}
	os.Chdir(wd)

	sticky := filepath.Join(base, "sticky")
	os.Mkdir(sticky, 0o755)
	os.Chmod(sticky, os.ModeSticky|0o777)
	inSticky := write("sticky/c.yaml", 0o640)
	if err := CheckFile(inSticky); err != nil {
		t.Fatalf("root's file in a sticky world-writable directory refused: %v", err)
	}

	cases := map[string]struct {
		path string
		want string
	}{
		"group-writable": {write("gw.yaml", 0o664), "has mode 0664"},
		"world-writable": {write("ww.yaml", 0o646), "has mode 0646"},
	}
	loose := filepath.Join(base, "loose")
	os.Mkdir(loose, 0o755)
	cases["directory writable by others"] = struct{ path, want string }{write("loose/c.yaml", 0o644), "directory " + loose + " has mode 0777"}
	os.Chmod(loose, 0o777)

	owned := write("owned.yaml", 0o644)
	os.Chown(owned, 65534, 65534)
	cases["owned by nobody"] = struct{ path, want string }{owned, "owned by uid 65534"}

	userDir := filepath.Join(base, "userdir")
	os.Mkdir(userDir, 0o755)
	inUserDir := write("userdir/c.yaml", 0o644)
	os.Chown(userDir, 65534, 65534)
	cases["in a directory another user owns"] = struct{ path, want string }{inUserDir, userDir + " is owned by uid 65534"}

	// A link root owns to a file another user may write is the file.
	link := filepath.Join(base, "link.yaml")
	os.Symlink(cases["world-writable"].path, link)
	cases["root's link to a loose file"] = struct{ path, want string }{link, "has mode 0646"}
	// A link another user owns may be pointed anywhere.
	ulink := filepath.Join(base, "ulink.yaml")
	os.Symlink(good, ulink)
	os.Lchown(ulink, 65534, 65534)
	cases["a link another user owns"] = struct{ path, want string }{ulink, ulink + " is owned by uid 65534"}
	dir := filepath.Join(base, "adir")
	os.Mkdir(dir, 0o755)
	cases["a directory"] = struct{ path, want string }{dir, "not a regular file"}

	for name, c := range cases {
		err := CheckFile(c.path)
		if !errors.Is(err, ErrUntrusted) || !errors.Is(err, os.ErrPermission) {
			t.Errorf("%s: got %v, want ErrUntrusted", name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", name, err, c.want)
		}
	}
	if err := CheckFile(filepath.Join(base, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want ErrNotExist", err)
	}
}
