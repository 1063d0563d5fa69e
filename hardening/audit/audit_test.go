package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/internal/mycnf"
)

// The cases follow what `mariadbd --no-defaults OPTION --verbose --help`
// of MariaDB 10.11.19 prints for skip-grant-tables.
func TestEnablesSkipGrantTables(t *testing.T) {
	for _, c := range []struct {
		name, value string
		hasValue    bool
		want        bool
	}{
		{"skip-grant-tables", "", false, true},
		{"skip_grant_tables", "", false, true},
		{"SKIP-GRANT-TABLES", "", false, true},
		{"Skip-Grant", "", false, true},
		{"skip-gr", "", false, true},
		{"skip_gr", "", false, true},
		{"skip-g", "", false, false},
		{"skip", "", false, false},
		{"loose-skip-gr", "", false, true},
		{"enable-skip-grant-tables", "", false, true},
		{"enable-skip-gr", "", false, true},
		{"loose-enable-skip-grant", "", false, true},
		{"loose_enable_skip_grant_tables", "", false, true},
		{"disable-skip-grant-tables", "", false, false},
		{"skip-skip-grant-tables", "", false, false},
		{"skip-grant-tables-x", "", false, false},
		{"skip-grant-tablesx", "", false, false},
		{"skip-grant-tables", "1", true, true},
		{"skip-grant-tables", "ON", true, true},
		{"skip-grant-tables", "on", true, true},
		{"skip-grant-tables", "TRUE", true, true},
		{"skip-gra", "True", true, true},
		{"enable-skip-grant-tables", "1", true, true},
		{"enable-skip-grant-tables", "0", true, false},
		{"skip-grant-tables", "0", true, false},
		{"skip-grant-tables", "OFF", true, false},
		{"skip-grant-tables", "", true, false},
		{"skip-grant-tables", "yes", true, false},
		{"skip-grant-tables", "2", true, false},
		{"skip-grant-tables", " 1", true, false},
	} {
		o := mycnf.Option{Group: "mysqld", Name: c.name, Value: c.value, HasValue: c.hasValue}
		if got := enablesSkipGrantTables(o, MariaDB); got != c.want {
			t.Errorf("%s (value %q, has %v): got %v, want %v", c.name, c.value, c.hasValue, got, c.want)
		}
	}
}

func TestIsPasswordOption(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "Password": true, "loose-password": true, "pass": true,
		"passw": true, "master_password": true, "wsrep_sst_auth": true,
		"pas": false, "user": false, "host": false, "passive": false,
	} {
		if got := isPasswordOption(mycnf.Option{Name: name}); got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}

func TestIsIPHost(t *testing.T) {
	for host, want := range map[string]bool{
		"%": true, "10.0.0.1": true, "10.0.%": true, "192.168.1._": true,
		"10.0.0.0/255.0.0.0": true, "::1": true, "fe80::%": true,
		"app.example.com": false, "%.example.com": false, "db1": false,
	} {
		if got := isIPHost(host); got != want {
			t.Errorf("%s: got %v, want %v", host, got, want)
		}
	}
}

func TestHasWildcard(t *testing.T) {
	for db, want := range map[string]bool{
		`test\_%`: true, "test_%": true, "test%": true, "test": false,
		`test\_x`: false, "testdb": false,
	} {
		if got := hasWildcard(db); got != want {
			t.Errorf("%s: got %v, want %v", db, got, want)
		}
	}
}

// Priv values as MariaDB 10.11 stores them in mysql.global_priv.
func TestParsePriv(t *testing.T) {
	for _, c := range []struct {
		priv   string
		locked bool
		role   bool
		auth   []authMethod
	}{
		{`{"access":18446744073709551615,"plugin":"mysql_native_password","authentication_string":"invalid","auth_or":[{},{"plugin":"unix_socket"}]}`,
			false, false, []authMethod{{"mysql_native_password", "invalid"}, {"unix_socket", ""}}},
		{`{"access":0,"plugin":"mysql_native_password","authentication_string":"","auth_or":[{"plugin":"unix_socket"},{}],"password_last_changed":1}`,
			false, false, []authMethod{{"unix_socket", ""}, {"mysql_native_password", ""}}},
		{`{"access":0,"plugin":"mysql_native_password","authentication_string":"","account_locked":true,"password_last_changed":0}`,
			true, false, []authMethod{{"mysql_native_password", ""}}},
		{`{"access":0,"version_id":101119,"is_role":true}`, false, true, nil},
		{`{"access":0}`, false, false, []authMethod{{"mysql_native_password", ""}}},
	} {
		acc, err := parsePriv("u", "h", c.priv)
		if err != nil {
			t.Fatal(err)
		}
		if acc.Locked != c.locked || acc.Role != c.role || len(acc.Auth) != len(c.auth) {
			t.Errorf("%s: got %+v", c.priv, acc)
			continue
		}
		for i := range c.auth {
			if acc.Auth[i] != c.auth[i] {
				t.Errorf("%s: auth %d: got %+v, want %+v", c.priv, i, acc.Auth[i], c.auth[i])
			}
		}
	}
	if _, err := parsePriv("u", "h", "{not json"); err == nil {
		t.Error("bad JSON: no error")
	}
}

func TestChecksCatalog(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Checks() {
		if seen[c.ID] {
			t.Errorf("duplicate ID %s", c.ID)
		}
		seen[c.ID] = true
		if c.Title == "" || c.Criteria == "" || c.Why == "" || c.Fix == "" {
			t.Errorf("%s: incomplete description", c.ID)
		}
	}
}

func TestNilQuery(t *testing.T) {
	if _, err := Run(context.Background(), Target{}); err == nil {
		t.Fatal("Run with a nil Query: no error")
	}
}

// A failing or misbehaving Query makes the checks that need it report
// Error, never panic, and leaves the others alone.
func TestQueryFailures(t *testing.T) {
	dir := t.TempDir()
	cnf := filepath.Join(dir, "my.cnf")
	if err := os.WriteFile(cnf, []byte("[mysqld]\nskip-grant-tables\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	queries := map[string]Query{
		"error": func(context.Context, string) ([][]string, error) {
			return nil, errors.New("boom")
		},
		"no rows": func(context.Context, string) ([][]string, error) {
			return nil, nil
		},
		"empty rows": func(context.Context, string) ([][]string, error) {
			return [][]string{{}, {}}, nil
		},
		"garbage": func(context.Context, string) ([][]string, error) {
			return [][]string{{"x"}}, nil
		},
	}
	for name, q := range queries {
		fs, err := Run(context.Background(), Target{Query: q, OptionFiles: []string{cnf}, ServerUser: "root", Host: Host{Proc: dir, Homes: []string{}, ProfileFiles: []string{}, SystemdDirs: []string{}, CredentialFiles: []string{}, LdPreload: filepath.Join(dir, "none"), MountInfo: filepath.Join(dir, "none")}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(fs) != len(Checks()) {
			t.Fatalf("%s: %d findings, want %d", name, len(fs), len(Checks()))
		}
		for _, f := range fs {
			switch {
			case strings.HasPrefix(f.ID, "files.option") || strings.HasPrefix(f.ID, "os.") || strings.HasPrefix(f.ID, "bypass.") || f.ID == "files.credential-files":
				// Independent of the server (or of the answers).
			case f.Result == NotApplicable:
				// MariaDB-only checks when the flavor is unknown are run; others may find nothing to inspect.
			case f.ID == "databases.test" && name == "no rows" && f.Result == Pass:
				// No test database and no grants is right.
			case f.ID == "files.skip-grant-tables":
				if f.Result != Fail {
					t.Errorf("%s: %s: got %s %q, want fail", name, f.ID, f.Result, f.Evidence)
				}
			case name != "error" && !isOriginal(f.ID):
				// Made-up answers: the newer checks judge them as values.
			case f.Result != Error:
				t.Errorf("%s: %s: got %s %q, want error", name, f.ID, f.Result, f.Evidence)
			case len(f.Evidence) == 0:
				t.Errorf("%s: %s: error without evidence", name, f.ID)
			}
		}
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q := func(context.Context, string) ([][]string, error) { return nil, nil }
	if _, err := Run(ctx, Target{Query: q}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestFailed(t *testing.T) {
	fs := []Finding{{Result: Fail}, {Result: Warn}, {Result: Error}, {Result: Fail}, {Result: Pass}}
	if n := Failed(fs); n != 2 {
		t.Errorf("Failed = %d, want 2", n)
	}
	if n := Count(fs, Error); n != 1 {
		t.Errorf("Count(Error) = %d, want 1", n)
	}
}

func isOriginal(id string) bool {
	for _, o := range original {
		if o == id {
			return true
		}
	}
	return false
}

func TestRoleGrantLines(t *testing.T) {
	for _, c := range []struct {
		line, role string
		ok         bool
		privs      string
	}{
		{"GRANT SUPER, FILE ON *.* TO `outer_r`", "outer_r", true, "SUPER, FILE"},
		{"GRANT FILE ON *.* TO `inner_r`", "outer_r", false, ""},
		{"GRANT FILE ON *.* TO PUBLIC", "PUBLIC", true, "FILE"},
		{"GRANT USAGE ON *.* TO `we``ird`", "we`ird", true, "USAGE"},
		{"GRANT SELECT ON `mysql`.* TO `outer_r`", "outer_r", false, ""},
		{"GRANT `inner_r` TO `outer_r`", "outer_r", false, ""},
	} {
		m := grantRe.FindStringSubmatch(c.line)
		ok := m != nil && unquoteName(m[2]) == c.role
		if ok != c.ok || ok && m[1] != c.privs {
			t.Errorf("%q for role %q: match %v %q, want %v %q", c.line, c.role, ok, m, c.ok, c.privs)
		}
	}
}
