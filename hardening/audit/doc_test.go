package audit

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/audit.md from the catalog")

const docPath = "../../docs/audit.md"

// TestDocsUpToDate fails when docs/audit.md differs from what the
// catalog generates (go generate ./hardening/audit rewrites it).
func TestDocsUpToDate(t *testing.T) {
	want := Markdown()
	if *update {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("docs/audit.md differs from the catalog: run 'go generate ./hardening/audit'")
	}
}

func TestCoverageCounts(t *testing.T) {
	m := coverage(MariaDB)
	total := 0
	for s := 1; s <= 9; s++ {
		if m[s] == 0 {
			t.Errorf("section %d: no MariaDB item covered", s)
		}
		total += m[s]
	}
	if total < 50 {
		t.Errorf("%d MariaDB CIS items covered, want at least 50: %v", total, cisIDs(MariaDB))
	}
}
