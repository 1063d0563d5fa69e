package integration

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mountCategories lists the mount root.
func mountCategories(t *testing.T, mnt string) []string {
	t.Helper()
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

type categoryInfo struct {
	Name    string `json:"name"`
	Entries int    `json:"entries"`
	Empty   bool   `json:"empty"`
	Rules   int    `json:"rules"`
}

func (m *mountEnv) categoryList() map[string]categoryInfo {
	m.t.Helper()
	c := m.cmd("category", "list", "--json")
	out, err := c.Output()
	if err != nil {
		m.t.Fatalf("category list --json: %v", err)
	}
	var list []categoryInfo
	if err := json.Unmarshal(out, &list); err != nil {
		m.t.Fatalf("category list --json: %v\n%s", err, out)
	}
	res := map[string]categoryInfo{}
	for _, c := range list {
		res[c.Name] = c
	}
	return res
}

// TestCategoryLifecycle (issue #14 item 2): a category made after init on
// a live mount, with the master credential only, holds encrypted data
// that only its rule's program reads, survives a remount (also one with a
// key file), and can be removed only once empty and unnamed by rules.
func TestCategoryLifecycle(t *testing.T) {
	m := newMount(t)
	kf := filepath.Join(m.dir, "boot.key")
	m.ms(0, append([]string{"key", "add", "--type", "keyfile", "--create-keyfile", kf}, m.creds()...)...)

	bin := filepath.Join(m.dir, "bin")
	os.Mkdir(bin, 0o755)
	reader := filepath.Join(bin, "reader")
	copyFile(t, "/usr/bin/cat", reader, 0o755)
	data := filepath.Join(m.dir, "srv", "appdata")
	os.MkdirAll(data, 0o750)
	os.WriteFile(filepath.Join(data, "report.txt"), []byte("MARKER-appdata\n"), 0o640)

	// Unknown: encrypt and acl add say how to make it.
	out := m.ms(2, append([]string{"encrypt", "@appdata", data}, m.creds()...)...)
	if !strings.Contains(out, "mysecure: error: unknown category @appdata") || !strings.Contains(out, "mysecure: hint: create it with 'mysecure category add appdata'") {
		t.Fatalf("encrypt @appdata before add:\n%s", out)
	}
	out = m.ms(2, append([]string{"acl", "add", "ALLOW @appdata * " + reader}, m.creds()...)...)
	if !strings.Contains(out, "unknown category @appdata") || !strings.Contains(out, "'mysecure category add appdata'") {
		t.Fatalf("acl add @appdata before add:\n%s", out)
	}

	// A key file may not add it, not even through the daemon.
	if out := m.ms(2, "category", "add", "appdata", "--keyfile", kf); !strings.Contains(out, "not a master credential") {
		t.Fatalf("category add with a key file:\n%s", out)
	}
	if slices.Contains(mountCategories(t, m.mnt), "appdata") {
		t.Fatal("a key file added a category")
	}

	out = m.ms(0, append([]string{"category", "add", "appdata"}, m.creds()...)...)
	if !strings.Contains(out, "added category @appdata") {
		t.Fatalf("category add:\n%s", out)
	}
	// The mount shows it at once, and its store dir is made.
	if !slices.Contains(mountCategories(t, m.mnt), "appdata") {
		t.Fatalf("mount root after add: %v", mountCategories(t, m.mnt))
	}
	if _, err := os.Stat(filepath.Join(m.store, "appdata", "ms.diriv")); err != nil {
		t.Fatalf("store dir of the new category: %v", err)
	}
	m.ms(6, append([]string{"category", "add", "appdata"}, m.creds()...)...)

	m.ms(0, append([]string{"encrypt", "@appdata", data}, m.creds()...)...)
	if fi, err := os.Lstat(data); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s is not a symlink after encrypt: %v", data, err)
	}
	m.aclAdd("ALLOW @appdata * " + reader)
	file := filepath.Join(data, "report.txt")
	if out, err := read(reader, file); err != nil || !strings.Contains(out, "MARKER-appdata") {
		t.Fatalf("the allowed program: %q %v", out, err)
	}
	if out, err := read("/usr/bin/cat", file); err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("root's cat: %q %v", out, err)
	}
	// The store holds ciphertext only.
	if err := filepath.Walk(filepath.Join(m.store, "appdata"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), "MARKER-appdata") {
				t.Errorf("plaintext in the store: %s", p)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if c := m.categoryList()["appdata"]; c.Empty || c.Entries == 0 || c.Rules != 1 {
		t.Fatalf("category list: %+v", c)
	}

	// Remount, with the key file: the category persists and serves.
	m.ms(0, "umount")
	m.ms(0, "mount", "--keyfile", kf)
	if !slices.Contains(mountCategories(t, m.mnt), "appdata") {
		t.Fatalf("mount root after remount: %v", mountCategories(t, m.mnt))
	}
	if out, err := read(reader, file); err != nil || !strings.Contains(out, "MARKER-appdata") {
		t.Fatalf("after remount: %q %v", out, err)
	}
	if _, err := read("/usr/bin/cat", file); err == nil {
		t.Fatal("root's cat allowed after remount")
	}

	// Remove: refused while a rule names it, then while it holds data.
	out = m.ms(6, append([]string{"category", "remove", "appdata"}, m.creds()...)...)
	if !strings.Contains(out, "category is in use: @appdata is named by rule 1 (ALLOW @appdata * "+reader+")") {
		t.Fatalf("remove with a rule:\n%s", out)
	}
	m.ms(0, append([]string{"acl", "del", "1"}, m.creds()...)...)
	out = m.ms(6, append([]string{"category", "remove", "appdata"}, m.creds()...)...)
	if !strings.Contains(out, "@appdata is not empty") || !strings.Contains(out, "mysecure: hint: move its data out first") {
		t.Fatalf("remove of a full category:\n%s", out)
	}
	if !slices.Contains(mountCategories(t, m.mnt), "appdata") {
		t.Fatal("a refused remove left the category hidden")
	}
	// The daemon mounted with a key file; the change takes the master
	// credential all the same.
	m.ms(2, "category", "remove", "appdata", "--keyfile", kf)

	m.ms(0, append([]string{"decrypt", "@appdata", data}, m.creds()...)...)
	if b, err := os.ReadFile(file); err != nil || string(b) != "MARKER-appdata\n" {
		t.Fatalf("after decrypt: %q %v", b, err)
	}
	if c := m.categoryList()["appdata"]; !c.Empty || c.Rules != 0 {
		t.Fatalf("category list after decrypt: %+v", c)
	}
	out = m.ms(0, append([]string{"category", "remove", "appdata"}, m.creds()...)...)
	if !strings.Contains(out, "removed category @appdata") {
		t.Fatalf("category remove:\n%s", out)
	}
	if slices.Contains(mountCategories(t, m.mnt), "appdata") {
		t.Fatal("the mount still lists the removed category")
	}
	if _, err := os.Stat(filepath.Join(m.mnt, "appdata")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of the removed category: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.store, "appdata")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("store dir of the removed category: %v", err)
	}
	if _, ok := m.categoryList()["appdata"]; ok {
		t.Fatal("category list shows the removed category")
	}
	m.ms(0, "umount")
	m.ms(0, append([]string{"mount"}, m.creds()...)...)
	if slices.Contains(mountCategories(t, m.mnt), "appdata") {
		t.Fatal("the removed category came back at the next mount")
	}
	// The other categories were never touched.
	for _, c := range []string{"mysql", "mysqlbackup", "ndbdata", "protected"} {
		if !slices.Contains(mountCategories(t, m.mnt), c) {
			t.Fatalf("@%s is gone: %v", c, mountCategories(t, m.mnt))
		}
	}
}
