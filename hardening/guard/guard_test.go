package guard

import (
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

// effective asks the real server what its options amount to.
func effective(t *testing.T, args ...string) (skipGrant bool, initFile string) {
	t.Helper()
	out, err := exec.Command("mariadbd", append(args, "--help", "--verbose")...).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadbd %v: %v\n%s", args, err, out)
	}
	m := regexp.MustCompile(`(?m)^skip-grant-tables\s+(\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no skip-grant-tables in the help of mariadbd %v", args)
	}
	im := regexp.MustCompile(`(?m)^init-file[ \t]*([^\n]*)$`).FindSubmatch(out)
	if im != nil {
		initFile = strings.TrimSpace(string(im[1]))
		if strings.HasPrefix(initFile, "(No default") {
			initFile = ""
		}
	}
	return string(m[1]) == "TRUE", initFile
}

var forms = []string{
	"--skip-grant-tables", "--skip_grant_tables", "--SKIP-GRANT-TABLES", "--Skip_Grant-Tables",
	"--skip-grant-tables=1", "--skip-grant-tables=ON", "--skip-grant-tables=on", "--skip-grant-tables=TRUE", "--skip-grant-tables=true",
	"--skip-grant", "--skip-grant-t", "--skip-gr", "--skip_gr",
	"--loose-skip-grant-tables", "--loose_skip_grant", "--loose-skip-gr=1",
	"--enable-skip-grant-tables", "--enable-skip-grant", "--enable_skip_gr", "--loose-enable-skip-grant-tables=ON",
}

func TestArgvForms(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd")
	c := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}}
	for _, f := range forms {
		t.Run(f, func(t *testing.T) {
			if on, _ := effective(t, "--no-defaults", f); !on {
				t.Fatalf("the server does not take %q as skip-grant-tables: the test proves nothing", f)
			}
			out, fs, err := c.Filter([]string{"--no-defaults", "--port=3307", f, "--user=mysql"}, "")
			if err != nil {
				t.Fatal(err)
			}
			if on, _ := effective(t, out...); on {
				t.Fatalf("after the guard %v still disables the grant tables", out)
			}
			if len(fs) != 1 || fs[0].Action != "removed" || fs[0].Option != f {
				t.Fatalf("findings %+v", fs)
			}
			if got := strings.Join(withoutPins(out), " "); got != "--no-defaults --port=3307 --user=mysql" {
				t.Fatalf("other arguments changed: %v", out)
			}
		})
	}
	// Not the option: left alone.
	for _, f := range []string{"--skip-g", "--skip-grant-tables=0", "--skip-skip-grant-tables", "--disable-skip-grant-tables", "--skip-name-resolve"} {
		if strings.HasPrefix(f, "--skip-g") && f != "--skip-g" {
			continue
		}
		out, fs, _ := c.Filter([]string{f}, "")
		if len(fs) != 0 || strings.Join(withoutPins(out), " ") != f {
			t.Errorf("%s: %v %+v", f, out, fs)
		}
	}
}

func TestOptionFileForms(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inc := write("inc/extra.cnf", "[mysqld]\nloose_skip_grant\n")
	incdir := filepath.Join(dir, "conf.d")
	write("conf.d/50-x.cnf", "[mariadb]\nenable-skip-grant-tables=ON\n")
	cases := []struct {
		name string
		args func() []string
		home string
	}{
		{"defaults-file", func() []string {
			return []string{"--defaults-file=" + write("a.cnf", "[mysqld]\nskip-grant-tables\n")}
		}, ""},
		{"defaults-file server group", func() []string {
			return []string{"--defaults-file=" + write("b.cnf", "[server]\nskip_grant_tables = 1\n")}
		}, ""},
		{"defaults-extra-file", func() []string {
			return []string{"--defaults-extra-file=" + write("c.cnf", "[mysqld-10.11]\nSkip-Grant\n")}
		}, ""},
		{"group suffix", func() []string {
			return []string{"--defaults-file=" + write("d.cnf", "[mysqld]\nport=3307\n[mysqld_evil]\nskip-grant-tables\n"), "--defaults-group-suffix=_evil"}
		}, ""},
		{"include", func() []string {
			return []string{"--defaults-file=" + write("e.cnf", "[mysqld]\n!include "+inc+"\n")}
		}, ""},
		{"includedir", func() []string {
			return []string{"--defaults-file=" + write("f.cnf", "!includedir "+incdir+"\n")}
		}, ""},
		{"home my.cnf", func() []string {
			write("home/.my.cnf", "[mariadbd]\nskip-grant-tables=TRUE\n")
			return nil
		}, filepath.Join(dir, "home")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args()
			c := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent/my.cnf", "~/.my.cnf"}}
			env := os.Getenv("HOME")
			if tc.home != "" {
				os.Setenv("HOME", tc.home)
				defer os.Setenv("HOME", env)
			}
			if on, _ := effective(t, args...); !on && tc.home == "" {
				t.Fatalf("the server does not see skip-grant-tables in %v: the test proves nothing", args)
			}
			out, fs, err := c.Filter(args, tc.home)
			if err != nil {
				t.Fatal(err)
			}
			if on, _ := effective(t, out...); on {
				t.Fatalf("after the guard %v still disables the grant tables", out)
			}
			if len(fs) == 0 || fs[0].Action != "overridden" || !strings.Contains(fs[0].Source, ".cnf:") {
				t.Fatalf("findings %+v", fs)
			}
		})
	}
}

func TestInitFileAndBootstrap(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd")
	dir := t.TempDir()
	c := &Config{RealBinary: "/x", InitFileAllow: []string{"/etc/mysql/init.sql", "/run/mysecure/init/"}, GlobalFiles: []string{"/nonexistent"}}
	out, fs, _ := c.Filter([]string{"--no-defaults", "--init-file=/tmp/evil.sql"}, "")
	if _, init := effective(t, out...); init != "" || len(fs) != 1 {
		t.Fatalf("a foreign init file survived: %v %q %+v", out, init, fs)
	}
	out, fs, _ = c.Filter([]string{"--no-defaults", "--init_f=/etc/mysql/init.sql"}, "")
	if _, init := effective(t, out...); init != "/etc/mysql/init.sql" || len(fs) != 0 {
		t.Fatalf("an allowed init file was removed: %v %q", out, init)
	}
	for _, bad := range []string{"/run/mysecure/init/../../../tmp/x", "/run/mysecure/init", "/etc/mysql/init.sql.bak"} {
		if c.initAllowed(bad) {
			t.Errorf("%s allowed", bad)
		}
	}
	f := filepath.Join(dir, "i.cnf")
	os.WriteFile(f, []byte("[mysqld]\ninit-file=/tmp/evil.sql\n"), 0o644)
	out, fs, _ = c.Filter([]string{"--defaults-file=" + f}, "")
	if _, init := effective(t, out...); init != "" || len(fs) != 1 {
		t.Fatalf("an init file from an option file survived: %v %q %+v", out, init, fs)
	}
	for _, b := range []string{"--bootstrap", "--bo", "--boot", "--loose-bootstr"} {
		if _, _, err := c.Filter([]string{b}, ""); !errors.Is(err, ErrRefused) {
			t.Fatalf("%s: %v", b, err)
		}
	}
	// A dangling option that takes a value must not swallow the pins.
	sg := filepath.Join(dir, "sg.cnf")
	os.WriteFile(sg, []byte("[mysqld]\nskip-grant-tables\ninit-file=/tmp/evil.sql\n"), 0o644)
	out, _, _ = c.Filter([]string{"--defaults-extra-file=" + sg, "--init-connect"}, "")
	if on, init := effective(t, out...); on || init != "" {
		t.Fatalf("a trailing --init-connect swallowed the override: %v -> skip-grant %v, init %q", out, on, init)
	}
	// Files the guard does not read ($MYSQL_HOME/my.cnf) cannot win either.
	mh := filepath.Join(dir, "mysqlhome")
	os.MkdirAll(mh, 0o755)
	os.WriteFile(filepath.Join(mh, "my.cnf"), []byte("[mysqld]\ninit-file=/tmp/evil.sql\nskip-grant-tables\n"), 0o644)
	t.Setenv("MYSQL_HOME", mh)
	c2 := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}}
	out, fs, _ = c2.Filter([]string{"--port=1"}, "")
	if on, init := effective(t, out...); on || init != "" || len(fs) != 2 {
		t.Fatalf("$MYSQL_HOME/my.cnf: %v -> skip-grant %v, init %q, findings %+v", out, on, init, fs)
	}
	// An option file that is a FIFO is refused (it could show the guard
	// and the server different contents).
	fifo := filepath.Join(dir, "fifo.cnf")
	syscall.Mkfifo(fifo, 0o600)
	if _, _, err := c.Filter([]string{"--defaults-extra-file=" + fifo}, ""); !errors.Is(err, ErrRefused) {
		t.Fatalf("FIFO option file: %v", err)
	}
}

func FuzzFilter(f *testing.F) {
	f.Add("--skip-grant-tables", "--init-file=/x")
	f.Add("--skip-innodb-encrypt-tables", "--loose-file-key-management-filename=/k")
	f.Add("--innodb-encrypt-log", "OFF")
	f.Fuzz(func(t *testing.T, a, b string) {
		// Engine mode's pins: whatever is accepted, the last word on each
		// pinned value is the pin's.
		ce := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}, Pins: enginePins()}
		if out, _, err := ce.Filter([]string{"--no-defaults", "--plugin-load-add=file_key_management", a, b}, ""); err == nil {
			last := map[string]string{}
			for _, o := range out {
				if name, _, ok := strings.Cut(strings.TrimPrefix(o, "--"), "="); ok || strings.HasPrefix(o, "--") {
					if c, _ := pinnedName(name); c != "" {
						last[c] = o
					}
				}
			}
			for _, v := range ce.Pins.Values {
				if last[v.Option] != "--"+v.Option+"="+v.Value {
					t.Fatalf("%s: the last word is %q: %v", v.Option, last[v.Option], out)
				}
			}
		}
		c := &Config{RealBinary: "/x", GlobalFiles: []string{"/nonexistent"}}
		out, _, err := c.Filter([]string{"--no-defaults", a, b}, "")
		if err != nil {
			return
		}
		if out[len(out)-2] != "--skip-grant-tables=0" || !strings.HasPrefix(out[len(out)-1], "--init-file=") {
			t.Fatalf("the pins are not last: %v", out)
		}
		for _, o := range withoutPins(out) {
			if strings.HasPrefix(o, "--") {
				name, _, _ := strings.Cut(o[2:], "=")
				if IsSkipGrant(name) {
					t.Fatalf("%q kept", o)
				}
			}
		}
	})
}

// withoutPins drops the guard's own --skip-grant-tables=0 and --init-file=.
func withoutPins(out []string) []string {
	var r []string
	for _, o := range out {
		if o == "--skip-grant-tables=0" || strings.HasPrefix(o, "--init-file=") {
			continue
		}
		r = append(r, o)
	}
	return r
}

// FuzzParseGuardConfig: a guard configuration is refused or has an
// absolute real binary and a clean absolute mount (or none).
func FuzzParseGuardConfig(f *testing.F) {
	for _, s := range []string{`{"real_binary":"/usr/sbin/mariadbd","mount":"/var/lib/mysecure/mnt"}`,
		`{"real_binary":"/x","pins":{"options":[],"values":[{"option":"innodb-encrypt-tables","value":"FORCE"},{"option":"datadir","value":"/forged"}]}}`, `{"real_binary":"rel"}`, `{"real_binary":"/x","mount":"/a/../b"}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseConfig("fuzz.json", b)
		if err != nil {
			return
		}
		if c.Pins != nil {
			for _, v := range c.Pins.Values {
				if !slices.Contains(ValueOptions(), v.Option) || v.Value == "" {
					t.Fatalf("accepted the value pin %+v", v)
				}
			}
		}
		if !filepath.IsAbs(c.RealBinary) || (c.Mount != "" && filepath.Clean(c.Mount) != c.Mount) {
			t.Fatalf("accepted %+v", c)
		}
	})
}
