package acl

import (
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
