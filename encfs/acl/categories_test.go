package acl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCategoryRefs(t *testing.T) {
	var rs RuleSet
	for _, line := range []string{
		"ALLOW @mysql * /usr/bin/true",
		"DENY @* *.cnf /usr/bin/true",
		"ALLOW @appdata * /usr/bin/true",
		"ALLOW @appdata reports/* /usr/bin/true",
	} {
		r, err := ParseRule(line)
		if err != nil {
			t.Fatal(err)
		}
		r.Exe.SHA256 = strings.Repeat("a", 64)
		rs.Rules = append(rs.Rules, r)
	}
	refs := rs.CategoryRefs("appdata")
	if len(refs) != 2 || !strings.HasPrefix(refs[0], "rule 3 (ALLOW @appdata * ") || !strings.HasPrefix(refs[1], "rule 4 (") {
		t.Fatalf("refs of @appdata: %q", refs)
	}
	if refs := rs.CategoryRefs("mysqlbackup"); refs != nil {
		t.Fatalf("@* counted as naming @mysqlbackup: %q", refs)
	}
	var nilSet *RuleSet
	if nilSet.CategoryRefs("mysql") != nil {
		t.Fatal("nil rule set has references")
	}

	path := filepath.Join(t.TempDir(), "rules.json")
	counts, err := UnverifiedCategoryCounts(path)
	if err != nil || len(counts) != 0 {
		t.Fatalf("missing file: %v %v", counts, err)
	}
	rs.Generation = 3
	if err := SaveRules(path, &rs, []byte("k")); err != nil {
		t.Fatal(err)
	}
	counts, err = UnverifiedCategoryCounts(path)
	if err != nil {
		t.Fatal(err)
	}
	if counts["appdata"] != 2 || counts["mysql"] != 1 || counts["*"] != 1 || counts["mysqlbackup"] != 0 {
		t.Fatalf("counts %v", counts)
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := UnverifiedCategoryCounts(path); err == nil {
		t.Fatal("a broken rule file counted")
	}
}
