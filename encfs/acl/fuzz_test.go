package acl

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseRule: ParseRule never panics, and every rule it accepts is
// valid and reads back from its String form to the very same rule.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"ALLOW @mysqlbackup * /usr/bin/mysqldump",
		"DENY @* *.cnf /usr/bin/cat",
		"ALLOW @mysql * /opt/scripts/report.sh --shell=/bin/bash --children=/bin/df,/bin/ls --user=root",
		`"allow @ndbdata * /opt/bin/ndbd"`,
		"ALLOW @mysql * /x --user 0 --children /a --children=/b,/a --shell /bin/sh",
		"ALLOW @protected /usr/sbin/mysqld /usr/sbin/wrapper",
		"ALLOW @mysql ?/*/x /bin/x --user=0,1,2",
		"\u201cDENY @a-b_c * /\u201d",
		"ALLOW @m \u00a0* /x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRule(line)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRule(%q) accepted an invalid rule: %v", line, err)
		}
		s := r.String()
		again, err := ParseRule(s)
		if err != nil {
			t.Fatalf("ParseRule(%q) = %q, which does not parse: %v", line, s, err)
		}
		if !again.Equal(r) || !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip of %q changed the rule:\n%#v\n%#v", line, r, again)
		}
		if again.String() != s {
			t.Fatalf("String is not stable: %q then %q", s, again.String())
		}
	})
}

// FuzzParseRules: a rules file is refused or parsed without a panic; under
// the seed key a parsed file's rules are all valid.
func FuzzParseRules(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	rs := &RuleSet{}
	for _, line := range []string{"ALLOW @mysql * /usr/bin/cat", "DENY @* *.cnf /usr/bin/head --user=0"} {
		r, err := ParseRule(line)
		if err != nil {
			f.Fatal(err)
		}
		rs.Rules = append(rs.Rules, r)
	}
	dir := f.TempDir()
	p := filepath.Join(dir, "rules.json")
	if err := SaveRules(p, rs, key); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bytes.Replace(good, []byte("cat"), []byte("cad"), 1))
	f.Add([]byte(`{"format":"mysecure-rules","version":1,"rules":[],"mac":""}`))
	f.Add([]byte(`{"format":"mysecure-rules","version":99}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := parseRules(data, key)
		if err != nil {
			return
		}
		for _, r := range rs.Rules {
			if err := r.Validate(); err != nil {
				t.Fatalf("accepted an invalid rule %+v: %v", r, err)
			}
		}
	})
}
