package daemon

import (
	"slices"
	"testing"
	"time"

	"github.com/mysecure/mysecure/encfs/acl"
)

// TestDenialRingBounded: the ring keeps the newest denialRingSize
// denials, oldest first, and filters by time and process group.
func TestDenialRingBounded(t *testing.T) {
	d := &Daemon{}
	r := &d.denied
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < denialRingSize+10; i++ {
		r.add(Denial{Time: t0.Add(time.Duration(i) * time.Second), Pgid: i % 2, Path: "f"})
	}
	all := r.list(func(*Denial) bool { return true })
	if len(all) != denialRingSize {
		t.Fatalf("ring holds %d, want %d", len(all), denialRingSize)
	}
	if !all[0].Time.Equal(t0.Add(10*time.Second)) || !all[len(all)-1].Time.Equal(t0.Add(time.Duration(denialRingSize+9)*time.Second)) {
		t.Fatalf("ring order: first %v last %v", all[0].Time, all[len(all)-1].Time)
	}
	since := t0.Add(time.Duration(denialRingSize) * time.Second)
	got := d.Denials(DenialQuery{Since: since, Pgid: 1})
	if len(got) != 5 {
		t.Fatalf("since+pgid selected %d, want 5", len(got))
	}
	for _, x := range got {
		if x.Pgid != 1 || x.Time.Before(since) {
			t.Fatalf("selected %+v", x)
		}
	}
	if got := d.Denials(DenialQuery{Limit: 3}); len(got) != 3 || !got[2].Time.Equal(all[len(all)-1].Time) {
		t.Fatalf("limit: %+v", got)
	}
}

// TestGroupDenialsSuggestsNarrowRule: the suggested rule takes the
// pattern of the server's datadir rule when it covers every denied file,
// else the files' common directory, and --user of the callers.
func TestGroupDenialsSuggestsNarrowRule(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	srv := acl.Rule{Action: acl.Allow, Category: "mysql", Pattern: "var/lib/mysql/*", Exe: acl.Program{Path: "/m/protected/usr/sbin/mariadbd"}}
	ds := []Denial{
		{Time: t0, Program: "/usr/bin/mariadb-backup", Category: "mysql", Path: "var/lib/mysql/ib_logfile0", Reason: "no rule allows /usr/bin/mariadb-backup"},
		{Time: t0.Add(time.Second), Program: "/usr/bin/mariadb-backup", Category: "mysql", Path: "var/lib/mysql/shop/t.ibd", Reason: "no rule allows /usr/bin/mariadb-backup"},
		{Time: t0.Add(2 * time.Second), Program: "/usr/bin/cat", Uid: 0, Category: "mysql", Path: "other/a/x.cnf"},
		{Time: t0.Add(3 * time.Second), Program: "/usr/bin/cat", Uid: 0, Category: "mysql", Path: "other/b/y.cnf"},
		{Time: t0.Add(4 * time.Second), Program: "/usr/bin/mysqldump", Category: "mysqlbackup", Path: "x", Reason: "fingerprint mismatch for /usr/bin/mysqldump"},
	}
	gs := GroupDenials(ds, "/m", []acl.Rule{srv})
	if len(gs) != 3 {
		t.Fatalf("groups: %+v", gs)
	}
	byProg := map[string]DenialGroup{}
	for _, g := range gs {
		byProg[g.Program] = g
	}
	if gs[0].Program != "/usr/bin/mysqldump" {
		t.Fatalf("newest group first: %s", gs[0].Program)
	}
	mb := byProg["/usr/bin/mariadb-backup"]
	if mb.Count != 2 || mb.Rule != "ALLOW @mysql var/lib/mysql/* /usr/bin/mariadb-backup --user=0" || len(mb.Files) != 2 || mb.Files[0] != "/m/mysql/var/lib/mysql/shop/t.ibd" {
		t.Fatalf("mariadb-backup group: %+v", mb)
	}
	if c := byProg["/usr/bin/cat"]; c.Rule != "ALLOW @mysql other/* /usr/bin/cat --user=0" {
		t.Fatalf("common directory: %+v", c)
	}
	if md := byProg["/usr/bin/mysqldump"]; md.Rule != "" || md.Hint == "" {
		t.Fatalf("a changed binary needs acl update, not a rule: %+v", md)
	}
	for in, want := range map[string]string{"a/b/c": "a/b", "x": ""} {
		if got := commonDir([]string{in}); got != want {
			t.Errorf("commonDir(%q) = %q, want %q", in, got, want)
		}
	}
	if got := commonDir([]string{"a/b/c", "a/bc/d"}); got != "a" {
		t.Errorf("commonDir: %q", got)
	}
}

func TestExplainDenials(t *testing.T) {
	seen, hints := ExplainDenials([]DenialGroup{
		{Program: "/usr/sbin/mariadbd", Files: []string{"/m/a", "/m/b"}, Hint: "mysecure acl add 'X'"},
		{Files: []string{"/m/c"}},
		{Program: "/bin/cat", Files: []string{"/m/d"}, Hint: "mysecure acl add 'X'"},
		{Program: "/bin/dd", Files: []string{"/m/e"}, Hint: "other"},
	})
	wantSeen := []string{"/usr/sbin/mariadbd opening /m/a, /m/b", "an unidentified process opening /m/c", "/bin/cat opening /m/d", "/bin/dd opening /m/e"}
	if !slices.Equal(seen, wantSeen) {
		t.Errorf("seen %q, want %q", seen, wantSeen)
	}
	if want := []string{"mysecure acl add 'X'", "other"}; !slices.Equal(hints, want) {
		t.Errorf("hints %q, want %q", hints, want)
	}
	if seen, hints := ExplainDenials(nil); seen != nil || hints != nil {
		t.Errorf("no groups: %q %q", seen, hints)
	}
}
