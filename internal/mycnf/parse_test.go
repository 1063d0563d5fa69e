package mycnf

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// render gives options in my_print_defaults' output form, one per line.
func render(opts []Option) string {
	var b strings.Builder
	for _, o := range opts {
		b.WriteString("--" + o.Name)
		if o.HasValue {
			b.WriteString("=" + o.Value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestParse(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name string
		in   string
		want string // options of every group, my_print_defaults style
		err  string // substring of the error, "" for none
	}{
		{"simple", "[client]\nuser=bob\npassword = s3cret \n", "--user=bob\n--password=s3cret\n", ""},
		{"comments at line start", "# a\n; b\n[g]\n  # c\n\t; d\nx=1\n", "--x=1\n", ""},
		{"hash after value", "[g]\nx=1 # c\ny=a#b\n", "--x=1\n--y=a\n", ""},
		{"semicolon mid-line is data", "[g]\nx=a;b ; c\n", "--x=a;b ; c\n", ""},
		{"hash inside quotes", "[g]\nx=\"a#b\" # c\ny='#'\n", "--x=a#b\n--y=#\n", ""},
		{"quote in name protects hash", "[g]\nit's=a#b\n", "--it's=a#b\n", ""},
		{"escaped quote inside quotes", "[g]\nx=\"a\\\"#b\"\n", "--x=a\"#b\n", ""},
		{"escaped quote outside quotes opens one", "[g]\nx=a\\\"#b\n", "--x=a\"#b\n", ""},
		{"only outer quotes stripped", "[g]\nx='x' 'y'\ny=\"a\" \"b\"\n", "--x=x' 'y\n--y=a\" \"b\n", ""},
		{"unmatched quotes kept", "[g]\nx='x\"\ny='x'y\nz=\"\n", "--x='x\"\n--y='x'y\n--z=\"\n", ""},
		{"value only quotes", "[g]\nx=''\ny=\"\"\nz='\n", "--x=\n--y=\n--z='\n", ""},
		{"escapes unquoted", `[g]` + "\n" + `x=a\sb\tc\nd\\e\'f\"g\bh\ri\qj` + "\n", "--x=a b\tc\nd\\e'f\"g\bh\ri\\qj\n", ""},
		{"escapes quoted", `[g]` + "\n" + `x="\s lead\s"` + "\n", "--x=  lead \n", ""},
		{"trailing backslash kept", "[g]\nx=a\\\ny=b\\ \n", "--x=a\\\n--y=b\\\n", ""},
		{"blanks around =", "[g]\n  x \t=\t 1 \t\n", "--x=1\n", ""},
		{"empty value", "[g]\nx=\ny =  \n", "--x=\n--y=\n", ""},
		{"no value", "[g]\nskip-grant-tables\n  quick  # c\n", "--skip-grant-tables\n--quick\n", ""},
		{"name with blanks", "[g]\nskip grant tables\n", "--skip grant tables\n", ""},
		{"dashes kept", "[g]\n--user=x\n", "----user=x\n", ""},
		{"second = is value", "[g]\nx==a=b=\n", "--x==a=b=\n", ""},
		{"crlf", "[g]\r\nx = \"q\" \r\ny\r\n", "--x=q\n--y\n", ""},
		{"0xA0 is blank", "[g]\nx=\xa0a\xa0\n\xa0y=1\n", "--x=a\n--y=1\n", ""},
		{"utf8 ending in 0xA0 loses a byte unquoted", "[g]\nx=\u00e0\ny=\"\u00e0\"\n", "--x=\xc3\n--y=\u00e0\n", ""},
		{"vertical tab and form feed", "[g]\nx=\va\f\n", "--x=a\n", ""},
		{"unicode", "[g]\nx=emoji 🔐 ü\n", "--x=emoji 🔐 ü\n", ""},
		{"nul ends the line", "[g]\nx=a\x00b\ny=1\n", "--x=a\n--y=1\n", ""},
		{"no final newline", "[g]\nx=1", "--x=1\n", ""},
		{"long line split", "[g]\nv=" + long + "\n", "--v=" + strings.Repeat("x", MaxPiece-2) + "\n--" + strings.Repeat("x", 5000-MaxPiece+2) + "\n", ""},
		// The server reads before its buffer for a line starting with '='
		// after blanks; without blanks it prints "--=val" as here.
		{"empty name", "[g]\n=val\n", "--=val\n", ""},
		{"option before group", "x=1\n[g]\n", "", "f.cnf:1: option without preceding group"},
		{"bom is not blank", "\xef\xbb\xbf[g]\nx=1\n", "", "f.cnf:1: option without preceding group"},
		{"missing bracket", "[g]\nx=1\n[h\ny=2\n", "--x=1\n", "f.cnf:3: wrong group definition"},
		{"include without argument", "[g]\n!include  \nx=1\n", "", "f.cnf:2: wrong '!include' directive"},
		{"unknown directive ignored", "[g]\n!foo bar\n!INCLUDE x\n!includex y\nx=1\n", "--x=1\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(tc.in), "f.cnf")
			if tc.err == "" && err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.err != "" {
				var se *SyntaxError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want *SyntaxError containing %q", err, tc.err)
				}
			}
			if got := render(f.Options); got != tc.want {
				t.Errorf("options:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParseGroups(t *testing.T) {
	f, err := Parse(strings.NewReader("[CLIENT]\na=1\n[ client ]\nb=2\n[client ]junk\nc=3\n[x]y]\nd=4\n[]\ne=5\n"), "f")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range f.Options {
		got = append(got, fmt.Sprintf("%q:%s@%d", o.Group, o.Name, o.Line))
	}
	want := `"client":a@2 " client":b@4 "client":c@6 "x":d@8 "":e@10`
	if g := strings.Join(got, " "); g != want {
		t.Errorf("got  %s\nwant %s", g, want)
	}
	if sel := render(Select(f.Options, "Client")); sel != "--a=1\n--c=3\n" {
		t.Errorf("Select(Client) = %q", sel)
	}
}

func TestParseIncludes(t *testing.T) {
	in := "!include /a.cnf\n[g]\nx=1\n ! include  rel/b.cnf  \n!includedir\t/etc/d # not a comment\ny=2\n!include /last.cnf"
	f, err := Parse(strings.NewReader(in), "f")
	if err != nil {
		t.Fatal(err)
	}
	want := []Include{
		{Path: "/a.cnf", Line: 1},
		{Path: "rel/b.cnf", Line: 4},
		{Dir: true, Path: "/etc/d # not a comment", Line: 5},
		// The server cuts the last byte of a final line without newline.
		{Path: "/last.cn", Line: 7},
	}
	if fmt.Sprint(f.Includes) != fmt.Sprint(want) {
		t.Errorf("includes\n got %v\nwant %v", f.Includes, want)
	}
	if render(f.Options) != "--x=1\n--y=2\n" {
		t.Errorf("options = %q", render(f.Options))
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"skip_grant_tables": "skip-grant-tables",
		"Skip-Grant_TABLES": "skip-grant-tables",
		"loose_user":        "loose-user",
		"Ü_x":               "Ü-x",
	} {
		if got := (Option{Name: in}).Canonical(); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGroupHelpers(t *testing.T) {
	got := WithSuffix(".x", ServerGroups("10.11")...)
	if len(got) != 18 || got[0] != "mysqld" || got[2] != "mysqld-10.11" || got[9] != "mysqld.x" || got[17] != "galera.x" {
		t.Errorf("WithSuffix(ServerGroups) = %v", got)
	}
	if g := WithSuffix("", "a", "b"); fmt.Sprint(g) != "[a b]" {
		t.Errorf("WithSuffix empty = %v", g)
	}
}

func TestSyntaxErrorHasNoValue(t *testing.T) {
	_, err := Parse(strings.NewReader("password=hunter2\n"), "f")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v: want an error without the value", err)
	}
}
