package mycnf

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/testenv"
)

// trickyPasswords are passwords that need care in an option file.
var trickyPasswords = []string{
	`p"a'ss`, `a#b`, `x;y`, ` lead and trail `, `back\slash`, `=eq=`,
	"emoji 🔐", "tab\there", `tab\there`, `'quoted'`, `"dq"`, `\`, `\\`,
	`ends with \`, `#`, `;`, `'`, `"`, `""`, `''`, "à", "Š", "x\u00a0",
	" ", "   ", "new\nline", "cr\rx", "crlf\r\n", `\n\s\t literal`,
	"!include /etc/passwd", "[client]", `"a" "b"`, `a\"#b`, `a\'#b'`,
	"# whole", "; whole", "\v\f", "\b", "\x7f", "plain", "ü日本語",
	strings.Repeat("L", 3000), strings.Repeat(`\"#`, 500),
}

// oracle runs the real my_print_defaults on file in dir and returns its
// output and whether it succeeded.
func oracle(t *testing.T, dir, file string, groups ...string) ([]byte, bool) {
	t.Helper()
	testenv.RequireCommands(t, "my_print_defaults")
	cmd := exec.Command("my_print_defaults", append([]string{"--defaults-file=" + file}, groups...)...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MYSQL_GROUP_SUFFIX=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("my_print_defaults: %v", err)
	}
	return out, err == nil
}

// compare checks Load+Select against my_print_defaults for file.
func compare(t *testing.T, dir, file string, groups ...string) *Loaded {
	t.Helper()
	want, ok := oracle(t, dir, file, groups...)
	l, err := LoadAll(file)
	if ok != (err == nil) {
		t.Fatalf("my_print_defaults ok=%v, LoadAll err=%v", ok, err)
	}
	if err != nil {
		return nil
	}
	if got := render(Select(l.Options, groups...)); got != string(want) {
		t.Fatalf("mismatch for groups %v\n got %q\nwant %q", groups, got, want)
	}
	return l
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // despite the umask
		t.Fatal(err)
	}
}

// TestOracleSingleFile compares single files, written with every rule of
// the package comment in mind, with my_print_defaults.
func TestOracleSingleFile(t *testing.T) {
	testenv.RequireCommands(t, "my_print_defaults")
	files := map[string]string{
		"comments":     "# c\n; c\n[g]\n # c\n\t; c\nx=1 # c\ny=a;b\nz='#' # c\nw=\"a#b\"#c\n",
		"quotes":       "[g]\na='x' 'y'\nb='x'y'\nc='x'y\nd=\"x\" \"y\"\ne=x'y'\nf='a\\'b'\ng=\"x\"   \nh='x\"\ni=''\nj=\"\"\nk='\nl=\"\n",
		"escapes":      "[g]\na=\\b\\t\\n\\r\\\\\\s\\\"\\'\\q\nb=\"\\b\\t\\n\\r\\\\\\s\\\"\\'\\q\"\nc=x\\\nd=\"x\\\"\ne=\\\\\\\nf=\\\xc3\xa9\n",
		"whitespace":   "[g]\n  a  =  1  \n\tb\t=\t2\t\nc=\nd =   \ne\n  f  \ng = \\s x \\s \n",
		"groups":       "[ g ]\na=1\n[G]\nb=2\n[g ]junk\nc=3\n[g]x]\nd=4\n[h]\ne=5\n[]\nf=6\n[MySQLd]\ng=7\n",
		"names":        "[g]\nskip grant tables\n--user=x\nx==a=b\nit's=a#b\n\\\n\"#x\n",
		"crlf":         "[g]\r\na = \"q\" \r\nb\r\nc=1\r\n[h]\r\n",
		"unicode":      "[g]\na=emoji 🔐\nb=\u00e0\nc=\"\u00e0\"\nd=\xa0x\xa0\ne=\x85x\x85\nf=\vx\f\n\xa0\vg=1\n",
		"nul":          "[g]\na=x\x00y\nb=\x00\nc=1\x00# \n!include\x00/x\n",
		"no newline":   "[g]\na=1",
		"only quotes":  "[g]\na=\"\nb=''\nc=\"'\nd='\"'\n",
		"before group": "a=1\n[g]\n",
		"bom":          "\xef\xbb\xbf[g]\na=1\n",
		"bad group":    "[g]\na=1\n[g\nb=2\n",
		"empty":        "",
		"bad include":  "[g]\n!include\n",
		"directives":   "[g]\n!foo\n!INCLUDE /x\n!includex /x\n!include /nonexistent.cnf\na=1\n!include",
		"long 4092":    "[g]\nv=" + strings.Repeat("x", 4092) + "\nw=1\n",
		"long 4093":    "[g]\nv=" + strings.Repeat("x", 4093) + "\nw=1\n",
		"long 9000":    "[g]\nv=\"" + strings.Repeat("#", 9000) + "\"\nw=1\n",
		"long group":   "[" + strings.Repeat("g", 5000) + "]\nw=1\n",
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "my.cnf")
			write(t, f, content, 0o644)
			compare(t, dir, f, "g", "h", "", "mysqld")
		})
	}
}

// TestOraclePasswords writes each tricky password in several spellings
// and compares.
func TestOraclePasswords(t *testing.T) {
	testenv.RequireCommands(t, "my_print_defaults")
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("[client]\n")
	for _, pw := range trickyPasswords {
		b.WriteString("password=" + pw + "\n")
		b.WriteString("password = \"" + pw + "\" # c\n")
		b.WriteString("password='" + pw + "'\n")
	}
	f := filepath.Join(dir, "pw.cnf")
	write(t, f, b.String(), 0o600)
	compare(t, dir, f, "client")
}

// TestOracleRandom compares random files built from the characters that
// matter to the parser. Most are read through one main file that includes
// them all (an error in an included file ends only that file, so each is
// judged on its own) to spare a process per file; some are read alone.
func TestOracleRandom(t *testing.T) {
	testenv.RequireCommands(t, "my_print_defaults")
	tokens := []string{"a", "b", "=", " ", "\t", "#", ";", "'", "\"", "\\", "\\\\",
		"\\s", "\\n", "\\'", "\\\"", "[", "]", "\r", "\xa0", "é", "à", "🔐", "!", "\x00", "\v"}
	starts := []string{"x", "y", " x", "\tz", "#", ";", "[g]", "[h]", " [g", "[ g]", "[G]", "\xa0x"}
	r := rand.New(rand.NewPCG(1, 2))
	gen := func() string {
		var b strings.Builder
		b.WriteString("[g]\n")
		for range 1 + r.IntN(8) {
			b.WriteString(starts[r.IntN(len(starts))])
			for range r.IntN(12) {
				b.WriteString(tokens[r.IntN(len(tokens))])
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	// raw mixes bytes freely, newlines included. It leaves out lines that
	// start with '=' (the server reads outside its buffer for those) and
	// directives (they would name random files).
	raw := func() string {
		const alphabet = "ab=#;'\"\\ \t\r\n\n[]\xa0\x00!"
		var b strings.Builder
		for range r.IntN(200) {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		lines := strings.Split(b.String(), "\n")
		for i, l := range lines {
			j := 0
			for j < len(l) && isSpace(l[j]) {
				j++
			}
			if s := l[j:]; strings.HasPrefix(s, "=") || strings.HasPrefix(s, "!") {
				lines[i] = ""
			}
		}
		return "[g]\n" + strings.Join(lines, "\n")
	}
	dir := t.TempDir()
	var main strings.Builder
	for n := range 900 {
		f := filepath.Join(dir, fmt.Sprintf("r%03d.cnf", n))
		content := gen()
		if n%2 == 1 {
			content = raw()
		}
		write(t, f, content, 0o644)
		main.WriteString("!include " + f + "\n")
	}
	write(t, filepath.Join(dir, "main.cnf"), main.String(), 0o644)
	l := compare(t, dir, filepath.Join(dir, "main.cnf"), "g", "h")
	if len(l.Files) != 901 || len(l.Options) < 1000 {
		t.Errorf("read %d files, %d options", len(l.Files), len(l.Options))
	}
	for n := range 30 {
		content := gen()
		if n%2 == 1 {
			content = raw()
		}
		f := filepath.Join(dir, "alone.cnf")
		write(t, f, content, 0o644)
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			compare(t, dir, f, "g", "h")
		})
	}
}

// TestOracleIncludes checks !include and !includedir: paths, order,
// extensions, depth, errors in included files, world-writable files.
func TestOracleIncludes(t *testing.T) {
	testenv.RequireCommands(t, "my_print_defaults")
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	for _, n := range []string{"a.cnf", "b.CNF", "c.ini", "d.cnf.bak", "e.bak.cnf", ".cnf", "noext",
		"B.cnf", "_.cnf", "10.cnf", "9.cnf", "sp ace.cnf", "Z.cnf~", "x.cnf.cnf"} {
		write(t, filepath.Join(d, n), "[g]\nfrom="+n+"\n", 0o644)
	}
	write(t, filepath.Join(d, "sub.cnf", "z.cnf"), "[g]\nfrom=sub\n", 0o644)
	write(t, filepath.Join(d, "ww.cnf"), "[g]\nfrom=world-writable\n", 0o666)
	write(t, filepath.Join(dir, "rel.cnf"), "[g]\nfrom=rel\n", 0o644)
	if err := os.Symlink(filepath.Join(dir, "rel.cnf"), filepath.Join(d, "link.cnf")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "h.cnf"), "[h]\nhval=1\n", 0o644)
	write(t, filepath.Join(dir, "bad1.cnf"), "nogroup=1\n[g]\nafter=1\n", 0o644)
	write(t, filepath.Join(dir, "bad2.cnf"), "[g]\nok=1\n!include "+filepath.Join(dir, "h.cnf")+"\n[broken\nafter=1\n", 0o644)
	write(t, filepath.Join(dir, "nd.cnf"), "[g]\nn1=1\n!includedir /nonexistent-dir\nn2=1\n", 0o644)
	write(t, filepath.Join(dir, "self.cnf"), "[g]\nself=1\n!include "+filepath.Join(dir, "self.cnf")+"\n", 0o644)
	write(t, filepath.Join(dir, "ww.cnf"), "[g]\nww=1\n", 0o646)

	cases := map[string]string{
		"includedir order and extensions": "[g]\nx=1\n!includedir " + d + "\ny=2\n",
		"includedir trailing slash":       "[g]\n!includedir " + d + "/\n",
		"includedir relative":             "[g]\n!includedir d\n",
		"includedir missing is fatal":     "[g]\nx=1\n!includedir /nonexistent-dir\n",
		"include relative to cwd":         "[g]\n!include rel.cnf\n!include ./rel.cnf\n!include d/../rel.cnf\n",
		"include missing skipped":         "[g]\n!include /nonexistent.cnf\nz=1\n",
		"include no final newline":        "[g]\nz=1\n!include " + filepath.Join(dir, "rel.cnf"),
		"include no final newline 2":      "[g]\nz=1\n!include " + filepath.Join(dir, "rel.cnf") + "x",
		"include comment is path":         "[g]\n!include " + filepath.Join(dir, "rel.cnf") + " # c\nz=1\n",
		"include blanks":                  "[g]\n  !  include\t" + filepath.Join(dir, "rel.cnf") + " \t\r\n",
		"group does not carry over":       "[g]\n!include " + filepath.Join(dir, "h.cnf") + "\nz=1\n",
		"directive before group":          "!include " + filepath.Join(dir, "h.cnf") + "\n[g]\nz=1\n",
		"error in included file":          "[g]\n!include " + filepath.Join(dir, "bad1.cnf") + "\nz=1\n!include " + filepath.Join(dir, "bad2.cnf") + "\nw=1\n",
		"includedir error in included":    "[g]\n!include " + filepath.Join(dir, "nd.cnf") + "\nz=1\n",
		"self include depth":              "[g]\nm=1\n!include " + filepath.Join(dir, "self.cnf") + "\n",
		"main includes main":              "[g]\nm=1\n!include " + filepath.Join(dir, "main.cnf") + "\n",
		"world-writable include":          "[g]\n!include " + filepath.Join(dir, "ww.cnf") + "\nz=1\n",
		"include a directory":             "[g]\n!include " + d + "\nz=1\n",
		"include then error":              "[g]\n!include " + filepath.Join(dir, "h.cnf") + "\n[bad\n",
	}
	t.Chdir(dir)
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			main := filepath.Join(dir, "main.cnf")
			write(t, main, content, 0o644)
			compare(t, dir, main, "g", "h")
			compare(t, dir, "main.cnf", "g", "h")
		})
	}

	t.Run("warnings", func(t *testing.T) {
		main := filepath.Join(dir, "main.cnf")
		write(t, main, "[g]\n!include "+filepath.Join(dir, "bad1.cnf")+"\n!include "+filepath.Join(dir, "ww.cnf")+"\n", 0o644)
		l := compare(t, dir, main, "g")
		var se *SyntaxError
		if len(l.Warnings) != 2 || !errors.As(l.Warnings[0], &se) || se.Line != 1 ||
			!strings.Contains(l.Warnings[1].Error(), "world-writable") {
			t.Errorf("warnings = %v", l.Warnings)
		}
		if len(l.Files) != 2 {
			t.Errorf("files = %v", l.Files)
		}
	})
	t.Run("world-writable top file", func(t *testing.T) {
		write(t, filepath.Join(dir, "top.cnf"), "[g]\nx=1\n", 0o666)
		l := compare(t, dir, filepath.Join(dir, "top.cnf"), "g")
		if len(l.Options) != 0 || len(l.Warnings) != 1 {
			t.Errorf("options %v warnings %v", l.Options, l.Warnings)
		}
	})
	t.Run("missing top file", func(t *testing.T) {
		if _, err := Load(filepath.Join(dir, "none.cnf")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v", err)
		}
		compare(t, dir, filepath.Join(dir, "none.cnf"), "g")
	})
}

// TestOracleHome checks ~ expansion in !include.
func TestOracleHome(t *testing.T) {
	testenv.RequireCommands(t, "my_print_defaults")
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	write(t, filepath.Join(home, "x.cnf"), "[g]\nfromhome=1\n", 0o644)
	t.Setenv("HOME", home)
	main := filepath.Join(dir, "main.cnf")
	write(t, main, "[g]\n!include ~/x.cnf\nz=1\n", 0o644)
	l := compare(t, dir, main, "g")
	if len(l.Options) != 2 {
		t.Errorf("options = %v", l.Options)
	}
}

// TestOracleServerGroups checks ServerGroups and WithSuffix against the
// groups my_print_defaults --mysqld reads.
func TestOracleServerGroups(t *testing.T) {
	testenv.RequireCommands(t, "my_print_defaults")
	dir := t.TempDir()
	var b strings.Builder
	for _, g := range []string{"mysqld", "server", "mysqld-10.11", "mariadb", "mariadb-10.11", "mariadbd",
		"mariadbd-10.11", "client-server", "galera", "embedded", "client", "mysqld_safe", "mysqld-10.11.19",
		"MYSQLD", "mysqld.x", "galera.x", "mysqldx"} {
		b.WriteString("[" + g + "]\ng_" + g + "=1\n")
	}
	f := filepath.Join(dir, "g.cnf")
	write(t, f, b.String(), 0o644)
	opts, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", ".x"} {
		args := []string{"--defaults-file=" + f}
		if suffix != "" {
			args = append(args, "--defaults-group-suffix="+suffix)
		}
		out, err := exec.Command("my_print_defaults", append(args, "--mysqld")...).Output()
		if err != nil {
			t.Fatal(err)
		}
		got := render(Select(opts, WithSuffix(suffix, ServerGroups("10.11")...)...))
		if got != string(out) || !strings.Contains(got, "g_mariadbd-10.11") {
			t.Errorf("suffix %q:\n got %q\nwant %q", suffix, got, out)
		}
	}
}
