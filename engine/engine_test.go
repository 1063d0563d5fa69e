package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/plan"
)

func TestKeyFileRoundTrip(t *testing.T) {
	k, err := NewKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.AddKey(0)
	if err != nil || id != 3 {
		t.Fatalf("AddKey: %d %v", id, err)
	}
	b := k.Marshal()
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "1;") || len(lines[0]) != 2+64 {
		t.Fatalf("key file: %d lines, first %d chars", len(lines), len(lines[0]))
	}
	k2, err := ParseKeyFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k2.Marshal(), b) {
		t.Fatal("round trip changed the keys")
	}
	other, _ := NewKeyFile()
	if bytes.Equal(other.Marshal(), b[:len(other.Marshal())]) {
		t.Fatal("two key files have the same keys")
	}
	k.Wipe()
	if len(k.IDs()) != 0 {
		t.Fatal("Wipe left keys")
	}
}

func TestParseKeyFileErrors(t *testing.T) {
	key := strings.Repeat("ab", 32)
	for name, in := range map[string]string{
		"no separator": "1" + key + "\n2;" + key,
		"id zero":      "0;" + key + "\n2;" + key,
		"short key":    "1;abcd\n2;" + key,
		"not hex":      "1;" + strings.Repeat("zz", 32) + "\n2;" + key,
		"duplicate":    "1;" + key + "\n1;" + key + "\n2;" + key,
		"no key 2":     "1;" + key,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseKeyFile([]byte(in))
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "abab") {
				t.Fatalf("the error quotes key material: %v", err)
			}
		})
	}
	if _, err := ParseKeyFile([]byte("# comment\n\n1;" + key + "\n2;" + key + "\n")); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add([]byte("1;" + strings.Repeat("00", 32) + "\n2;" + strings.Repeat("11", 16)))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKeyFile(b)
		if err == nil {
			if _, err := ParseKeyFile(k.Marshal()); err != nil {
				t.Fatalf("re-parse: %v", err)
			}
		}
	})
}

// MySQL is not packaged on this machine: its configuration is checked
// here, as generated.
func TestServerConfig(t *testing.T) {
	maria := Options{Binary: "/usr/sbin/mariadbd", CnfDir: "/etc/mysql/mariadb.conf.d", Mount: "/var/lib/mysecure/encrypted"}
	if err := maria.Fill(); err != nil {
		t.Fatal(err)
	}
	c := maria.ServerConfig()
	for _, want := range []string{Marker, "plugin_load_add = file_key_management", "file_key_management = FORCE_PLUS_PERMANENT",
		"file_key_management_filename = /var/lib/mysecure/encrypted/protected/etc/mysql/mysecure-engine/keys.txt",
		"innodb_encrypt_tables = FORCE", "innodb_encrypt_log = ON", "encrypt_tmp_files = ON", "encrypt_binlog = ON",
		"aria_encrypt_tables = ON", "innodb_encryption_threads = 4", "innodb_encrypt_temporary_tables = ON"} {
		if !strings.Contains(c, want) {
			t.Errorf("MariaDB config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "loose") {
		t.Error("a loose- option would let the server start without encryption")
	}
	if maria.KeyPattern() != "etc/mysql/mysecure-engine/keys.txt" {
		t.Errorf("pattern %q", maria.KeyPattern())
	}

	my := Options{Flavor: MySQL, Binary: "/usr/sbin/mysqld", CnfDir: "/etc/mysql/mysql.conf.d", Mount: "/m"}
	if err := my.Fill(); err != nil {
		t.Fatal(err)
	}
	c = my.ServerConfig()
	for _, want := range []string{"default_table_encryption = ON", "innodb_redo_log_encrypt = ON", "innodb_undo_log_encrypt = ON", "binlog_encryption = ON"} {
		if !strings.Contains(c, want) {
			t.Errorf("MySQL config lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "file_key_management") {
		t.Error("MySQL config names a MariaDB plugin")
	}
	mf := my.ManifestFiles("/usr/lib/mysql/plugin")
	if len(mf) != 2 || mf[0].Path != "/usr/sbin/mysqld.my" || !strings.Contains(mf[0].Content, "file://component_keyring_file") ||
		mf[1].Path != "/usr/lib/mysql/plugin/component_keyring_file.cnf" || !strings.Contains(mf[1].Content, `"/m/protected/etc/mysql/mysecure-engine/component_keyring_file"`) {
		t.Fatalf("MySQL manifest: %+v", mf)
	}
	s := &Setup{Opts: my}
	if r := s.Rules(); len(r) != 1 || r[0] != "ALLOW @protected etc/mysql/mysecure-engine/* /usr/sbin/mysqld --user=mysql" {
		t.Fatalf("MySQL rules: %v", r)
	}
	if err := (&Options{Flavor: "oracle", Binary: "/x", Mount: "/m"}).Fill(); err == nil {
		t.Fatal("unknown flavor accepted")
	}
}

// TestMySQLFiles: for MySQL, enable writes the component manifest next to
// the binary, the keyring component's configuration into the plugin
// directory and the option file, all under configurable paths; the JSON
// files parse; a second run finds them in place; a foreign manifest is
// refused and left alone; undo removes only engine mode's files. MySQL is
// not packaged here: the files are checked as generated, never loaded by
// a real server.
func TestMySQLFiles(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	o := Options{Flavor: MySQL, Binary: filepath.Join(root, "usr/sbin/mysqld"), CnfDir: filepath.Join(root, "etc/mysql/mysql.conf.d"),
		PluginDir: filepath.Join(root, "usr/lib/mysql/plugin"), Mount: "/var/lib/mysecure/encrypted", StatePath: filepath.Join(root, "engine.json")}
	if err := o.Fill(); err != nil {
		t.Fatal(err)
	}
	s := &Setup{Opts: o}
	var files []plan.Step
	for _, st := range s.Steps() {
		switch st.(type) {
		case *ManifestStep, *CnfStep:
			files = append(files, st)
		}
	}
	if len(files) != 3 {
		t.Fatalf("MySQL file steps: %d", len(files))
	}
	r := &plan.Runner{StatePath: o.StatePath}
	if _, err := r.Apply(ctx, "engine", files); err != nil {
		t.Fatal(err)
	}
	var manifest struct{ Components string }
	b, err := os.ReadFile(filepath.Join(root, "usr/sbin/mysqld.my"))
	if err != nil || json.Unmarshal(b, &manifest) != nil || manifest.Components != "file://component_keyring_file" {
		t.Fatalf("manifest %q: %v", b, err)
	}
	var kc struct {
		Path     string `json:"path"`
		ReadOnly *bool  `json:"read_only"`
	}
	b, err = os.ReadFile(filepath.Join(root, "usr/lib/mysql/plugin/component_keyring_file.cnf"))
	if err != nil || json.Unmarshal(b, &kc) != nil || kc.Path != "/var/lib/mysecure/encrypted/protected/etc/mysql/mysecure-engine/component_keyring_file" || kc.ReadOnly == nil || *kc.ReadOnly {
		t.Fatalf("keyring config %q: %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/mysql/mysql.conf.d", DefaultCnfName)); err != nil || !strings.Contains(string(b), "default_table_encryption = ON") {
		t.Fatalf("option file %q: %v", b, err)
	}
	fs, err := plan.Check(ctx, files)
	if err != nil || len(plan.Drifted(fs)) != 0 {
		t.Fatalf("second check: %+v %v", fs, err)
	}
	// Undo removes engine mode's files only.
	for _, st := range files {
		if err := st.Undo(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/mysqld.my")); !os.IsNotExist(err) {
		t.Fatal("undo left the manifest")
	}
	// A manifest that loads other components: refused, left alone.
	other := `{"components": "file://component_validate_password"}`
	os.WriteFile(filepath.Join(root, "usr/sbin/mysqld.my"), []byte(other), 0o644)
	if _, err := r.Apply(ctx, "engine", files); !errors.Is(err, ErrForeignFile) {
		t.Fatalf("foreign manifest: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/sbin/mysqld.my")); string(b) != other {
		t.Fatal("the foreign manifest was changed")
	}
	if err := files[0].Undo(ctx); !errors.Is(err, ErrForeignFile) {
		t.Fatalf("undo of a foreign manifest: %v", err)
	}
	// MariaDB needs none of them.
	maria := testOptions(t)
	if m := maria.ManifestFiles(""); m != nil {
		t.Fatalf("MariaDB manifest: %v", m)
	}
}
