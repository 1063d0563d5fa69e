package acl

import (
	"os/user"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/testenv"
)

// lookupTestUID returns the uid of a user every Debian system has.
func lookupTestUID(t testing.TB, name string) uint32 {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		testenv.Missing(t, "user "+name, err.Error())
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		t.Fatalf("uid of %s: %v", name, err)
	}
	return uint32(n)
}

func TestParseRule(t *testing.T) {
	nobody := lookupTestUID(t, "nobody")
	tests := []struct {
		name string
		line string
		want Rule
		text string // String(); "" means the line itself
	}{
		{
			name: "plain",
			line: "ALLOW @mysqlbackup * /usr/bin/mysqldump",
			want: Rule{Action: Allow, Category: "mysqlbackup", Pattern: "*", Exe: Program{Path: "/usr/bin/mysqldump"}},
		},
		{
			name: "deny all categories",
			line: "DENY @* *.cnf /usr/bin/cat",
			want: Rule{Action: Deny, Category: "*", Pattern: "*.cnf", Exe: Program{Path: "/usr/bin/cat"}},
		},
		{
			name: "lower-case action and extra space",
			line: "  allow\t@mysql   dir/*  /usr/sbin/mysqld  ",
			want: Rule{Action: Allow, Category: "mysql", Pattern: "dir/*", Exe: Program{Path: "/usr/sbin/mysqld"}},
			text: "ALLOW @mysql dir/* /usr/sbin/mysqld",
		},
		{
			name: "quoted as pasted from the seed",
			line: `"ALLOW @ndbdata * /opt/mysql/bin/ndbd"`,
			want: Rule{Action: Allow, Category: "ndbdata", Pattern: "*", Exe: Program{Path: "/opt/mysql/bin/ndbd"}},
			text: "ALLOW @ndbdata * /opt/mysql/bin/ndbd",
		},
		{
			name: "typographic quotes",
			line: "\u201cALLOW @mysqlbackup * /usr/bin/mysqldump\u201d",
			want: Rule{Action: Allow, Category: "mysqlbackup", Pattern: "*", Exe: Program{Path: "/usr/bin/mysqldump"}},
			text: "ALLOW @mysqlbackup * /usr/bin/mysqldump",
		},
		{
			name: "shell children user",
			line: "ALLOW @mysql * /opt/scripts/report.sh --shell=/bin/bash --children=/bin/ls,/bin/df --user=nobody",
			want: Rule{
				Action: Allow, Category: "mysql", Pattern: "*",
				Exe:      Program{Path: "/opt/scripts/report.sh"},
				Shell:    &Program{Path: "/bin/bash"},
				Children: []Program{{Path: "/bin/df"}, {Path: "/bin/ls"}},
				Users:    []uint32{nobody},
			},
			text: "ALLOW @mysql * /opt/scripts/report.sh --shell=/bin/bash --children=/bin/df,/bin/ls --user=" + strconv.Itoa(int(nobody)),
		},
		{
			name: "options as separate fields, repeated, duplicates",
			line: "ALLOW @mysql * /x/s.sh --user 27 --children /bin/ls --children=/bin/ls,/bin/cat --user=0,27 --shell /bin/sh",
			want: Rule{
				Action: Allow, Category: "mysql", Pattern: "*",
				Exe:      Program{Path: "/x/s.sh"},
				Shell:    &Program{Path: "/bin/sh"},
				Children: []Program{{Path: "/bin/cat"}, {Path: "/bin/ls"}},
				Users:    []uint32{0, 27},
			},
			text: "ALLOW @mysql * /x/s.sh --shell=/bin/sh --children=/bin/cat,/bin/ls --user=0,27",
		},
		{
			name: "question mark and deep pattern",
			line: "ALLOW @mysql var/lib/?/ib* /usr/sbin/mysqld",
			want: Rule{Action: Allow, Category: "mysql", Pattern: "var/lib/?/ib*", Exe: Program{Path: "/usr/sbin/mysqld"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRule(tt.line)
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tt.line, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseRule(%q)\n got %#v\nwant %#v", tt.line, got, tt.want)
			}
			text := tt.text
			if text == "" {
				text = tt.line
			}
			if s := got.String(); s != text {
				t.Errorf("String() = %q, want %q", s, text)
			}
			again, err := ParseRule(got.String())
			if err != nil {
				t.Fatalf("ParseRule(String()): %v", err)
			}
			if !reflect.DeepEqual(again, got) || !again.Equal(got) {
				t.Errorf("round trip changed the rule: %#v", again)
			}
		})
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		line string
		want string // substring of the error
	}{
		{"", "empty rule"},
		{`""`, "empty rule"},
		{"ALLOW @mysql *", "got 3 field(s)"},
		{"PERMIT @mysql * /bin/x", "action must be ALLOW or DENY"},
		{"ALLOW mysql * /bin/x", `category must start with '@': "mysql"`},
		{"ALLOW @ * /bin/x", "category must be"},
		{"ALLOW @MySQL * /bin/x", "category must be"},
		{"ALLOW @1abc * /bin/x", "category must be"},
		{"ALLOW @" + strings.Repeat("a", 33) + " * /bin/x", "category must be"},
		{"ALLOW @protected /usr/sbin/mysqld /usr/sbin/wrapper", "pattern must be relative"},
		{"ALLOW @mysql ../etc/* /bin/x", "'..' component"},
		{"ALLOW @mysql a/../b /bin/x", "'..' component"},
		{"ALLOW @mysql * bin/x", "absolute path"},
		{"ALLOW @mysql * /usr/bin/../bin/x", "clean path"},
		{"ALLOW @mysql * /usr/bin/", "clean path"},
		{"ALLOW @mysql * /bin/x extra", "unexpected field 5"},
		{"ALLOW @mysql * /bin/x --sell=/bin/sh", "unknown option"},
		{"ALLOW @mysql * /bin/x -shell=/bin/sh", "unexpected field"},
		{"ALLOW @mysql * /bin/x \u2013shell=/bin/sh", "typographic dash"},
		{"ALLOW @mysql * /bin/x --shell", "needs a value"},
		{"ALLOW @mysql * /bin/x --shell=", "needs a value"},
		{"ALLOW @mysql * /bin/x --shell=sh", "--shell must be an absolute path"},
		{"ALLOW @mysql * /bin/x --shell=/bin/sh --shell=/bin/bash", "--shell given twice"},
		{"ALLOW @mysql * /bin/x --children=/bin/ls,", "empty path in --children"},
		{"ALLOW @mysql * /bin/x --children=ls", "--children must be an absolute path"},
		{"ALLOW @mysql * /bin/x --user=no-such-user-mysecure", `unknown user in --user: "no-such-user-mysecure"`},
		{"ALLOW @mysql * /bin/x --user=0,", "empty user"},
		{"ALLOW @mysql * /bin/x --user=4294967295", "bad uid"},
		{"ALLOW @mysql * /bin/x --user=99999999999", "bad uid"},
		{`"ALLOW @mysql * /bin/x`, "quote"},
		{`ALLOW @mysql * /bin/"x"`, "quote"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			_, err := ParseRule(tt.line)
			if err == nil {
				t.Fatalf("ParseRule(%q) succeeded, want an error with %q", tt.line, tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
			if !strings.HasPrefix(msg, "rule: ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line starting with \"rule: \"", msg)
			}
		})
	}
}

func TestRuleEqual(t *testing.T) {
	base := "ALLOW @mysql * /x/s.sh --shell=/bin/sh --children=/bin/ls,/bin/df --user=0,27"
	tests := []struct {
		other string
		equal bool
	}{
		{base, true},
		{"allow @mysql * /x/s.sh --user=27 --user=0 --children=/bin/df --children=/bin/ls --shell=/bin/sh", true},
		{"DENY @mysql * /x/s.sh --shell=/bin/sh --children=/bin/ls,/bin/df --user=0,27", false},
		{"ALLOW @* * /x/s.sh --shell=/bin/sh --children=/bin/ls,/bin/df --user=0,27", false},
		{"ALLOW @mysql *.cnf /x/s.sh --shell=/bin/sh --children=/bin/ls,/bin/df --user=0,27", false},
		{"ALLOW @mysql * /x/t.sh --shell=/bin/sh --children=/bin/ls,/bin/df --user=0,27", false},
		{"ALLOW @mysql * /x/s.sh --shell=/bin/bash --children=/bin/ls,/bin/df --user=0,27", false},
		{"ALLOW @mysql * /x/s.sh --children=/bin/ls,/bin/df --user=0,27", false},
		{"ALLOW @mysql * /x/s.sh --shell=/bin/sh --children=/bin/ls --user=0,27", false},
		{"ALLOW @mysql * /x/s.sh --shell=/bin/sh --children=/bin/ls,/bin/df --user=0", false},
		{"ALLOW @mysql * /x/s.sh --shell=/bin/sh --children=/bin/ls,/bin/df", false},
	}
	a, err := ParseRule(base)
	if err != nil {
		t.Fatal(err)
	}
	// Fingerprints do not count.
	a.Exe.SHA256 = strings.Repeat("ab", 32)
	a.Shell.SHA256 = strings.Repeat("cd", 32)
	for _, tt := range tests {
		t.Run(tt.other, func(t *testing.T) {
			b, err := ParseRule(tt.other)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Equal(b); got != tt.equal {
				t.Errorf("Equal = %v, want %v", got, tt.equal)
			}
			if got := b.Equal(a); got != tt.equal {
				t.Errorf("Equal is not symmetric")
			}
		})
	}
	// Hand-built rules in another order compare by set, too.
	x := Rule{Action: Allow, Category: "mysql", Pattern: "*", Exe: Program{Path: "/a"}, Users: []uint32{2, 1}}
	y := Rule{Action: Allow, Category: "mysql", Pattern: "*", Exe: Program{Path: "/a"}, Users: []uint32{1, 2, 2}}
	if !x.Equal(y) {
		t.Error("Equal depends on the order of users")
	}
	if x.Users[0] != 2 {
		t.Error("Equal modified its receiver")
	}
}

func TestRuleValidate(t *testing.T) {
	good := Rule{Action: Allow, Category: "mysql", Pattern: "*", Exe: Program{Path: "/usr/bin/x", SHA256: strings.Repeat("0a", 32)}}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid rule: %v", err)
	}
	tests := []struct {
		name   string
		change func(r *Rule)
	}{
		{"upper-case fingerprint", func(r *Rule) { r.Exe.SHA256 = strings.Repeat("0A", 32) }},
		{"short fingerprint", func(r *Rule) { r.Exe.SHA256 = "abc" }},
		{"space in path", func(r *Rule) { r.Exe.Path = "/usr/bin/a b" }},
		{"newline in pattern", func(r *Rule) { r.Pattern = "a\nb" }},
		{"comma in child", func(r *Rule) { r.Children = []Program{{Path: "/bin/a,b"}} }},
		{"bad action", func(r *Rule) { r.Action = "allow" }},
		{"empty category", func(r *Rule) { r.Category = "" }},
		{"relative shell", func(r *Rule) { r.Shell = &Program{Path: "bash"} }},
		{"uid -1", func(r *Rule) { r.Users = []uint32{1<<32 - 1} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good.clone()
			tt.change(&r)
			if err := r.Validate(); err == nil {
				t.Errorf("Validate accepted %#v", r)
			}
		})
	}
}
