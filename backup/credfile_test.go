package backup

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFillFromCnf: the option file fills what the flags left empty, and
// always gives the password.
func TestFillFromCnf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "my.cnf")
	os.WriteFile(p, []byte("[client]\nuser=bk\npassword=s3cret\nsocket=/run/mysqld/mysqld.sock\nport=3307\n"), 0o600)
	c := CredentialsIn{User: "flaguser", Password: "flagpw"}
	if err := c.FillFromCnf(p); err != nil {
		t.Fatal(err)
	}
	if c.User != "flaguser" || c.Password != "s3cret" || c.Socket != "/run/mysqld/mysqld.sock" || c.Port != 3307 || c.Host != "" {
		t.Fatalf("%+v", c)
	}
	if err := (&CredentialsIn{}).FillFromCnf(filepath.Join(t.TempDir(), "none.cnf")); err == nil {
		t.Fatal("a missing option file gave no error")
	}
}

// TestShred: the file is gone, a symlink or directory is refused and
// left alone.
func TestShred(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "plain.cnf")
	os.WriteFile(p, make([]byte, 200<<10), 0o600)
	if err := Shred(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("still there: %v", err)
	}
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("password=x\n"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if err := Shred(link); err == nil {
		t.Fatal("a symlink was shredded")
	}
	if b, _ := os.ReadFile(target); string(b) != "password=x\n" {
		t.Fatalf("the symlink's target changed: %q", b)
	}
	if err := Shred(dir); err == nil {
		t.Fatal("a directory was shredded")
	}
}

// TestOverwrite: the passes succeed on a regular file and it ends
// empty.
func TestOverwrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("secret secret secret"), 0o600)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := overwrite(f, 20); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Size() != 0 {
		t.Fatalf("size %d after overwrite", fi.Size())
	}
}
