package mycnf

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mysecure/mysecure/internal/testenv"
)

func TestParseClient(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Client
		err  string
	}{
		{"basic", "[client]\nuser=u\npassword=p\nhost=h\nport=3307\nsocket=/s\n", Client{"u", "p", "h", "/s", 3307}, ""},
		{"last wins across groups", "[client]\nuser=a\n[mysqldump]\nuser=b\n[client]\nuser=c\n", Client{User: "c"}, ""},
		{"all client groups", "[client-server]\nhost=1\n[client-mariadb]\nport=2\n[mariadb-dump]\nsocket=3\n[mysql]\nuser=4\n[mariadb-client]\npassword=5\n",
			Client{User: "4", Password: "5", Host: "1", Socket: "3", Port: 2}, ""},
		{"other groups ignored", "[mysqld]\nuser=mysql\nport=1\n[Client]\npassword=x\n", Client{Password: "x"}, ""},
		{"names as the tools compare", "[client]\nUSER=a\nloose_password=b\nLoose-Host=c\n", Client{User: "a", Password: "b", Host: "c"}, ""},
		{"unknown ignored", "[client]\nuse=a\npass=b\nssl-ca=/x\nuser=u\n", Client{User: "u"}, ""},
		{"bare name unsets", "[client]\nuser=a\npassword=b\nuser\npassword\n", Client{}, ""},
		{"empty port unsets", "[client]\nport=1\nport=\n", Client{}, ""},
		{"bad port", "[client]\nport=3k\n", Client{}, "f:2: port"},
		{"port out of range", "[client]\nport=70000\n", Client{}, "f:2: port"},
		{"quoted password", "[client]\npassword = \" a#b \" # c\n", Client{Password: " a#b "}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(tc.in), "f")
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseClient(f.Options)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "3k") {
					t.Fatalf("err = %v, want one containing %q without the value", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c != tc.want {
				t.Errorf("got %+v, want %+v", c, tc.want)
			}
		})
	}
}

func TestRender(t *testing.T) {
	got, err := Client{User: "bob", Password: `a"b\c`, Host: "db", Port: 3306, Socket: "/run/s"}.Render()
	if err != nil {
		t.Fatal(err)
	}
	want := "[client]\nuser=\"bob\"\npassword=\"a\\\"b\\\\c\"\nhost=\"db\"\nsocket=\"/run/s\"\nport=3306\n"
	if string(got) != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got, _ := (Client{}).Render(); string(got) != "[client]\n" {
		t.Errorf("empty client = %q", got)
	}
	for _, c := range []Client{
		{Password: "a\x00b"},
		{User: strings.Repeat("u", MaxPiece)},
		{Port: 70000},
	} {
		out, err := c.Render()
		if !errors.Is(err, ErrUnrenderable) || out != nil {
			t.Errorf("Render(%.20q...) = %q, %v; want ErrUnrenderable", c.User+c.Password, out, err)
		}
		if strings.Contains(err.Error(), "a\x00b") {
			t.Errorf("error leaks the value: %v", err)
		}
	}
	// The longest value that fits: user="..." is 4094 bytes.
	if _, err := (Client{User: strings.Repeat("u", MaxPiece-len(`user=""`))}).Render(); err != nil {
		t.Errorf("longest value: %v", err)
	}
}

// TestOracleRender renders each tricky password and checks what the real
// my_print_defaults reads back, and that Load+ParseClient agree.
func TestOracleRender(t *testing.T) {
	testenv.RequireCommands(t, "my_print_defaults")
	dir := t.TempDir()
	pws := append([]string{strings.Repeat("p", MaxPiece-len(`password=""`)), strings.Repeat(`"`, (MaxPiece-len(`password=""`))/2)}, trickyPasswords...)
	for i, pw := range pws {
		c := Client{User: "u ser", Password: pw, Host: "h#1", Port: 3306, Socket: "/tmp/a b.sock"}
		data, err := c.Render()
		if err != nil {
			t.Fatalf("password %d: %v", i, err)
		}
		f := filepath.Join(dir, "c.cnf")
		write(t, f, string(data), 0o600)
		out, ok := oracle(t, dir, f, "client")
		want := "--user=u ser\n--password=" + pw + "\n--host=h#1\n--socket=/tmp/a b.sock\n--port=3306\n"
		if !ok || string(out) != want {
			t.Errorf("password %d %.40q: my_print_defaults read\n%.200q\nwant\n%.200q", i, pw, out, want)
		}
		opts, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ParseClient(opts); err != nil || back != c {
			t.Errorf("password %d: ParseClient = %+v, %v", i, back, err)
		}
	}
}

// FuzzParse checks that Parse never panics and that its options are
// sane, and that Render's output parses back to the same password for any
// string without NUL that fits in a line (newlines included).
func FuzzParse(f *testing.F) {
	f.Add([]byte("[client]\npassword=\"a#b\" # c\n!include x\n"), "p\"a'ss")
	f.Add([]byte("x=1\n"), "")
	f.Add([]byte("[g]\n!include\n"), "a\nb")
	f.Add([]byte("[g\n"), "\\")
	f.Add([]byte("[g]\n=\n  =x\n"), " lead ")
	f.Add([]byte("[g]\nv='\\\n"+strings.Repeat("y", 5000)), "à")
	for _, pw := range trickyPasswords {
		f.Add([]byte("[client]\npassword="+pw+"\n"), pw)
	}
	f.Fuzz(func(t *testing.T, data []byte, pw string) {
		file, err := Parse(bytes.NewReader(data), "fuzz")
		var se *SyntaxError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("Parse: non-syntax error %v", err)
		}
		last := 0
		for _, o := range file.Options {
			if o.Line < last || o.Line < 1 || o.File != "fuzz" {
				t.Fatalf("bad option position %+v after line %d", o, last)
			}
			last = o.Line
			if !o.HasValue && o.Value != "" {
				t.Fatalf("value without HasValue: %+v", o)
			}
		}

		rendered, err := Client{Password: pw}.Render()
		if err != nil {
			if !errors.Is(err, ErrUnrenderable) {
				t.Fatalf("Render: %v", err)
			}
			if !strings.Contains(pw, "\x00") && len(pw) < MaxPiece/2-len(`password=""`) {
				t.Fatalf("Render refused a short password without NUL: %v", err)
			}
			return
		}
		if !utf8.Valid(rendered) && utf8.ValidString(pw) {
			t.Fatalf("Render made invalid UTF-8 from valid input")
		}
		back, err := Parse(bytes.NewReader(rendered), "r")
		if err != nil {
			t.Fatalf("Parse(Render): %v", err)
		}
		c, err := ParseClient(back.Options)
		if err != nil || c.Password != pw {
			t.Fatalf("round trip: got %q, %v; want %q", c.Password, err, pw)
		}
	})
}
