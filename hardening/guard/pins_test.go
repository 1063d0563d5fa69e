package guard

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/mysecure/mysecure/internal/testenv"
)

// serverValue asks the real server for the value of a variable after the
// options args.
func serverValue(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command("mariadbd", append(args, "--help", "--verbose")...).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadbd %v: %v\n%s", args, err, out)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `[ \t]+([^\n]*)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no %s in the help of mariadbd %v", name, args)
	}
	v := strings.TrimSpace(string(m[1]))
	if strings.HasPrefix(v, "(No default") {
		return ""
	}
	return v
}

func testPins(dd string) *Pins {
	return &Pins{
		Options: []Pin{
			{Option: "datadir", Value: "/mnt/mysql" + dd, Accept: []string{dd}},
			{Option: "innodb-data-home-dir", Value: "/mnt/mysql" + dd, Accept: []string{dd}},
			{Option: "innodb-log-group-home-dir", Value: "/mnt/mysql" + dd, Accept: []string{dd, "./"}},
			{Option: "innodb-undo-directory", Value: "/mnt/mysql" + dd, Accept: []string{dd}},
			{Option: "aria-log-dir-path", Value: "/mnt/mysql" + dd, Accept: []string{dd}},
			{Option: "plugin-dir", Value: "/usr/lib/mysql/plugin"},
			{Option: "secure-file-priv", Value: "/usr/lib"},
			{Option: "symbolic-links", Value: "0"},
		},
		PluginLoad: []string{"auth_ed25519", "ha_x=ha_x.so"},
	}
}

// TestPinnedPrefixes: the shortest unique prefixes the guard recognizes
// are the server's own (a shorter one is ambiguous or another option),
// with the key plugin loaded (engine mode: its options exist then).
func TestPinnedPrefixes(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd")
	out, err := exec.Command("mariadbd", "--no-defaults", "--plugin-load-add=file_key_management", "--verbose", "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	re := regexp.MustCompile(`^  (?:-[a-zA-Z], )?--([a-z0-9_-]+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			opts = append(opts, m[1])
		}
	}
	for _, p := range pinnables {
		n := 0
		for l := 1; l <= len(p.name); l++ {
			var match []string
			for _, o := range opts {
				if strings.HasPrefix(o, p.name[:l]) {
					match = append(match, o)
				}
			}
			if len(match) == 1 && match[0] == p.name || l == len(p.name) {
				n = l
				break
			}
		}
		if n != p.minPrefix {
			t.Errorf("%s: shortest unique prefix is %d, the guard uses %d", p.name, n, p.minPrefix)
		}
	}
}

// TestPinsArgv: every form of a pinned option with another value is
// refused; the pinned place in another spelling is accepted, and the
// server ends up with the pinned values whatever came before.
func TestPinsArgv(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd")
	c := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}, Pins: testPins("/var/lib/mysql")}
	for _, bad := range [][]string{
		{"--datadir=/forged"}, {"--datadir", "/forged"}, {"-h", "/forged"}, {"-h/forged"}, {"--datad=/forged"}, {"--loose-datadir=/forged"},
		{"--DATADIR=/forged"}, {"--innodb-data-home-dir=/real"}, {"--innodb_data_home_d=/real"}, {"--innodb-log-group-home-dir", "/real"},
		{"--innodb-undo-directory=/u"}, {"--aria-log-dir-path=/a"}, {"--plugin-dir=/tmp/plugins"}, {"--plugin_d=/tmp"},
		{"--secure-file-priv="}, {"--secure-file-priv=/"}, {"--symbolic-links"}, {"-s"}, {"--symbolic-links=1"}, {"--enable-symbolic-links"},
		{"--plugin-load=evil.so"}, {"--plugin-load-add=evil=evil.so"}, {"--chroot=/tmp/root"}, {"-r", "/tmp/root"}, {"--chr=/x"},
		{"--datadir"},
	} {
		if _, fs, err := c.Filter(append([]string{"--no-defaults"}, bad...), ""); !errors.Is(err, ErrRefused) || len(fs) == 0 || fs[len(fs)-1].Action != "refused" {
			t.Errorf("%v: not refused: %v %+v", bad, err, fs)
		}
	}
	ok := []string{"--no-defaults", "--datadir=/var/lib/mysql/", "--innodb-log-group-home-dir=./", "--skip-symbolic-links",
		"--symbolic-links=0", "--plugin-dir=/usr/lib/mysql/plugin/", "--plugin-load-add=auth_ed25519", "--port=3307", "--init-connect"}
	out, fs, err := c.Filter(ok, "")
	if err != nil || len(fs) != 0 {
		t.Fatalf("the hardened values were refused: %v %+v", err, fs)
	}
	want := map[string]string{"datadir": "/mnt/mysql/var/lib/mysql/", "innodb-log-group-home-dir": "/mnt/mysql/var/lib/mysql", "symbolic-links": "FALSE",
		"plugin-dir": "/usr/lib/mysql/plugin/", "secure-file-priv": "/usr/lib/", "aria-log-dir-path": "/mnt/mysql/var/lib/mysql", "port": "3307"}
	for name, v := range want {
		if got := serverValue(t, name, out...); got != v {
			t.Errorf("%s: the server gets %q, want %q (args %v)", name, got, v, out)
		}
	}
	if !strings.Contains(strings.Join(out, " "), "--plugin-load=auth_ed25519 ") && out[len(out)-1] != "--plugin-load=auth_ed25519" {
		t.Errorf("plugin list not pinned: %v", out)
	}
}

// TestPinsOptionFiles: a pinned option set elsewhere in an option file
// is refused; the hardened values are not; and a file the guard cannot
// see is overridden by the pins.
func TestPinsOptionFiles(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd")
	dir := t.TempDir()
	c := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}, Pins: testPins("/var/lib/mysql")}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	for _, body := range []string{"datadir=/forged", "loose_datadir = /forged", "innodb_data_home_dir=/real", "plugin-load-add=evil.so",
		"symbolic-links", "secure_file_priv=/tmp", "aria-log-dir-path=/x", "chroot=/x", "datad=/forged"} {
		f := write("bad.cnf", "[mysqld]\n"+body+"\n")
		if _, _, err := c.Filter([]string{"--defaults-file=" + f}, ""); !errors.Is(err, ErrRefused) {
			t.Errorf("%q in an option file: %v", body, err)
		}
	}
	good := write("good.cnf", "[mysqld]\ndatadir=/var/lib/mysql\nskip-symbolic-links\nplugin_load_add = auth_ed25519\nsecure-file-priv=/usr/lib\n")
	out, _, err := c.Filter([]string{"--defaults-file=" + good}, "")
	if err != nil {
		t.Fatalf("hardened values in an option file: %v", err)
	}
	if got := serverValue(t, "datadir", out...); got != "/mnt/mysql/var/lib/mysql/" {
		t.Fatalf("datadir %q", got)
	}
	// A file the server reads and the guard does not see (here ~/.my.cnf,
	// with the guard given no home): the pins win anyway.
	mh := filepath.Join(dir, "mh")
	os.MkdirAll(mh, 0o755)
	os.WriteFile(filepath.Join(mh, ".my.cnf"), []byte("[mysqld]\ndatadir=/forged\nsymbolic-links=1\nplugin-dir=/tmp\n"), 0o644)
	t.Setenv("HOME", mh)
	if got := serverValue(t, "datadir"); got != "/forged/" {
		t.Fatalf("the server does not read %s/.my.cnf: the test proves nothing (%q)", mh, got)
	}
	out, _, err = c.Filter([]string{"--port=1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"datadir": "/mnt/mysql/var/lib/mysql/", "symbolic-links": "FALSE", "plugin-dir": "/usr/lib/mysql/plugin/"} {
		if got := serverValue(t, name, out...); got != v {
			t.Errorf("unseen ~/.my.cnf: %s is %q, want %q", name, got, v)
		}
	}
}

func TestConfigSlot(t *testing.T) {
	if ConfigPath() != DefaultConfigPath {
		t.Fatalf("unpatched: %s", ConfigPath())
	}
	prog := []byte("head" + unpatchedSlot + "tail")
	out, err := PatchConfigPath(prog, "/mnt/protected/etc/mysecure/mysqld-guard.json")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(out), slotMarker)
	if got := slotPath(string(out[i : i+len(unpatchedSlot)])); got != "/mnt/protected/etc/mysecure/mysqld-guard.json" {
		t.Fatalf("patched path %q", got)
	}
	if len(out) != len(prog) {
		t.Fatal("size changed")
	}
	if _, err := PatchConfigPath(out, "/x"); err == nil {
		t.Fatal("patched twice")
	}
	if _, err := PatchConfigPath([]byte(unpatchedSlot+unpatchedSlot), "/x"); err == nil {
		t.Fatal("two slots accepted")
	}
	if _, err := PatchConfigPath(prog, "relative"); err == nil {
		t.Fatal("relative path accepted")
	}
	if _, err := PatchConfigPath(prog, "/"+strings.Repeat("a", len(slotFill))); err == nil {
		t.Fatal("too long a path accepted")
	}
}

// TestLoadTrustedRefuses: a symlink (last or inner component), a FIFO and
// a file off a FUSE mount are refused before anything is read.
func TestLoadTrustedRefuses(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "guard.json")
	os.WriteFile(cfg, []byte(`{"real_binary":"/usr/sbin/mariadbd"}`), 0o644)
	if _, err := LoadTrusted(cfg); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "not on the encrypted mount") {
		t.Errorf("plain file: %v", err)
	}
	link := filepath.Join(dir, "link.json")
	os.Symlink(cfg, link)
	if _, err := LoadTrusted(link); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink: %v", err)
	}
	os.Symlink(dir, filepath.Join(dir, "d"))
	if _, err := LoadTrusted(filepath.Join(dir, "d", "guard.json")); !errors.Is(err, ErrUntrusted) {
		t.Errorf("symlink in a parent: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	syscall.Mkfifo(fifo, 0o600)
	if _, err := LoadTrusted(fifo); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "regular") {
		t.Errorf("FIFO: %v", err)
	}
	if _, err := LoadTrusted("rel.json"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("relative: %v", err)
	}
}

// enginePins are the pins of engine mode: the hardened pins plus the
// encryption settings and the key plugin.
func enginePins() *Pins {
	p := testPins("/var/lib/mysql")
	p.PluginLoad = append(p.PluginLoad, "file_key_management")
	p.RequirePlugins = []string{"file_key_management"}
	p.Values = []ValuePin{{"file-key-management", "FORCE_PLUS_PERMANENT"}, {"file-key-management-filename", "/mnt/protected/keys.txt"},
		{"file-key-management-encryption-algorithm", "AES_CTR"}, {"innodb-encrypt-tables", "FORCE"}, {"innodb-encrypt-log", "ON"},
		{"innodb-encrypt-temporary-tables", "ON"}, {"encrypt-tmp-files", "ON"}, {"encrypt-tmp-disk-tables", "ON"}, {"encrypt-binlog", "ON"},
		{"aria-encrypt-tables", "ON"}}
	return p
}

// TestEnginePins: with engine mode's values pinned, every form that
// would turn encryption off, drop the key plugin or point it at other
// keys is refused, in argv and in option files; the pinned values in
// other spellings are accepted, and the server ends up with the pinned
// values whatever came before. Without value pins the same options pass
// through untouched.
func TestEnginePins(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd")
	c := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}, Pins: enginePins()}
	key := "--plugin-load-add=file_key_management"
	for _, bad := range [][]string{
		{"--skip-innodb-encrypt-tables"}, {"--innodb-encrypt-tables=OFF"}, {"--innodb-encrypt-tables=ON"}, {"--innodb_encrypt_tab=0"},
		{"--loose-innodb-encrypt-tables=OFF"}, {"--disable-innodb-encrypt-tables"}, {"--innodb-encrypt-tables", "OFF"},
		{"--skip-innodb-encrypt-log"}, {"--innodb-encrypt-log=0"}, {"--innodb-encrypt-temporary-tables=OFF"},
		{"--encrypt-tmp-files=FALSE"}, {"--skip-encrypt-tmp-disk-tables"}, {"--encrypt-binlog=off"}, {"--skip-encrypt-b"},
		{"--aria-encrypt-tables=0"}, {"--skip-aria-e"}, {"--skip-file-key-management"}, {"--file-key-management=ON"}, {"--file-key-management"},
		{"--loose-file-key-management-filename=/tmp/forged.txt"}, {"--file_key_management_filen=/tmp/forged.txt"},
		{"--file-key-management-filename", "/tmp/forged.txt"}, {"--file-key-management-encryption-algorithm=AES_CBC"},
		{"--plugin-load=auth_ed25519"}, {"--plugin-load-add=evil=evil.so"},
	} {
		args := append([]string{"--no-defaults", key}, bad...)
		if _, fs, err := c.Filter(args, ""); !errors.Is(err, ErrRefused) || len(fs) == 0 || fs[len(fs)-1].Action != "refused" {
			t.Errorf("%v: not refused: %v %+v", bad, err, fs)
		}
	}
	// Without the key plugin in the list: refused.
	if _, _, err := c.Filter([]string{"--no-defaults"}, ""); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "file_key_management") {
		t.Errorf("a start without the key plugin: %v", err)
	}
	dir := t.TempDir()
	for _, body := range []string{"skip-innodb-encrypt-tables", "innodb_encrypt_tables = OFF", "loose-file-key-management-filename=/tmp/k",
		"encrypt_binlog=0", "aria-encrypt-tables=OFF", "skip_file_key_management", "plugin-load=auth_ed25519"} {
		f := filepath.Join(dir, "bad.cnf")
		os.WriteFile(f, []byte("[mariadb]\nplugin_load_add=file_key_management\n"+body+"\n"), 0o644)
		if _, _, err := c.Filter([]string{"--defaults-file=" + f}, ""); !errors.Is(err, ErrRefused) {
			t.Errorf("%q in an option file: %v", body, err)
		}
	}
	good := filepath.Join(dir, "good.cnf")
	os.WriteFile(good, []byte("[mariadb]\nplugin_load_add = file_key_management\nfile_key_management = FORCE_PLUS_PERMANENT\n"+
		"file_key_management_filename = /mnt/protected/keys.txt\ninnodb_encrypt_tables = FORCE\ninnodb_encrypt_log = ON\nencrypt_binlog=1\naria_encrypt_tables\n"), 0o644)
	out, fs, err := c.Filter([]string{"--defaults-file=" + good, "--innodb-encrypt-log=TRUE", "--file-key-management-filename=/mnt/protected/./keys.txt"}, "")
	if err != nil || len(fs) != 0 {
		t.Fatalf("engine mode's own values were refused: %v %+v", err, fs)
	}
	want := map[string]string{"innodb-encrypt-tables": "FORCE", "innodb-encrypt-log": "TRUE", "encrypt-binlog": "TRUE", "aria-encrypt-tables": "TRUE",
		"encrypt-tmp-files": "TRUE", "innodb-encrypt-temporary-tables": "TRUE", "file-key-management-filename": "/mnt/protected/keys.txt",
		"file-key-management-encryption-algorithm": "aes_ctr"}
	for name, v := range want {
		if got := serverValue(t, name, out...); got != v {
			t.Errorf("%s: the server gets %q, want %q (args %v)", name, got, v, out)
		}
	}
	// Without value pins (a hardened server without engine mode), the
	// encryption options are the server's business: kept as given.
	plain := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}, Pins: testPins("/var/lib/mysql")}
	out, _, err = plain.Filter([]string{"--no-defaults", "--innodb-encrypt-tables=OFF", "--innodb-encrypt-log"}, "")
	if err != nil || !slices.Contains(out, "--innodb-encrypt-tables=OFF") || !slices.Contains(out, "--innodb-encrypt-log") {
		t.Fatalf("unpinned options: %v %v", out, err)
	}
}

// TestShortOptionGroups: mariadbd reads a group of short options (-ar/x
// is -a then -r /x, the letters after one that takes no argument being
// options again), so a group must not carry --chroot or a pinned option
// past the guard, with or without pins.
func TestShortOptionGroups(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd")
	// The server reads a group so (-r itself is not tried here: the
	// server would chroot even for --help).
	if got := serverValue(t, "datadir", "--no-defaults", "-avh/tmp/forged"); got != "/tmp/forged/" {
		t.Fatalf("mariadbd -avh/tmp/forged: datadir %q", got)
	}
	// The short options without a value are the server's.
	help, err := exec.Command("mariadbd", "--no-defaults", "--verbose", "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	var noArg string
	for _, m := range regexp.MustCompile(`(?m)^  -(.), --[a-z0-9_-]+(.?)`).FindAllStringSubmatch(string(help), -1) {
		if m[2] != "=" && m[2] != "[" {
			noArg += m[1]
		}
	}
	if noArg != noArgShorts {
		t.Errorf("mariadbd's short options without a value are %q, the guard knows %q", noArg, noArgShorts)
	}
	for _, pins := range []*Pins{nil, testPins("/var/lib/mysql")} {
		c := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}, Pins: pins}
		for _, bad := range [][]string{{"-ar/tmp/root"}, {"-vr/tmp/root"}, {"-?r/tmp/root"}, {"-sr/tmp/root"}, {"-avr", "/tmp/root"}, {"-ar"}} {
			out, _, err := c.Filter(append([]string{"--no-defaults"}, bad...), "")
			if !errors.Is(err, ErrRefused) {
				t.Errorf("pins %v: %v: not refused: %v", pins != nil, bad, out)
			}
		}
		if pins == nil {
			continue
		}
		for _, bad := range [][]string{{"-ah/forged"}, {"-as"}, {"-vh", "/forged"}} {
			if out, _, err := c.Filter(append([]string{"--no-defaults"}, bad...), ""); !errors.Is(err, ErrRefused) {
				t.Errorf("%v: not refused: %v", bad, out)
			}
		}
	}
	// Groups without a pinned letter pass as they were.
	c := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}, Pins: testPins("/var/lib/mysql")}
	out, _, err := c.Filter([]string{"--no-defaults", "-av", "-uP3307", "-W2"}, "")
	if err != nil || !slices.Contains(out, "-av") || !slices.Contains(out, "-uP3307") || !slices.Contains(out, "-W2") {
		t.Fatalf("plain short groups: %v %v", out, err)
	}
}
