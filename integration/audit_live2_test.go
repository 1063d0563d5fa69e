package integration

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/hardening/audit"
	"github.com/mysecure/mysecure/internal/sandbox"
)

// auditQuery is an audit.Query over the sandbox's client (root over the
// socket): rows are lines, columns tab-separated, a row of one empty
// column an empty line.
func auditQuery(s *sandbox.Server) audit.Query {
	return func(ctx context.Context, sql string) ([][]string, error) {
		out, err := s.Client(ctx, sql)
		if err != nil || out == "" {
			return nil, err
		}
		var rows [][]string
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			rows = append(rows, strings.Split(l, "\t"))
		}
		return rows, nil
	}
}

// TestAuditHardenGuard: on a host-like layout (newHardenEnv), the server
// started from its own binary with its datadir in the clear fails
// harden.guard and config.encryption-at-rest; after 'harden mysqld', the
// same server started through the guard (its binary in @protected, its
// datadir in @mysql on the mount) passes both; 'harden audit' takes the
// mount and audit.accounts from its configuration.
func TestAuditHardenGuard(t *testing.T) {
	h := newHardenEnv(t)
	run := func(s *sandbox.Server) map[string]audit.Finding {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r, err := audit.RunReport(ctx, audit.Target{Query: auditQuery(s),
			Only: []string{"harden.guard", "config.encryption-at-rest"},
			Host: audit.Host{Mount: h.mnt, HardenState: h.state}})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]audit.Finding{}
		for _, f := range r.Findings {
			m[f.ID] = f
		}
		return m
	}
	check := func(fs map[string]audit.Finding, id string, want audit.Result, texts ...string) {
		t.Helper()
		f := fs[id]
		var ev []string
		for _, e := range f.Evidence {
			ev = append(ev, e.Text)
		}
		all := strings.Join(ev, "\n")
		if f.Result != want {
			t.Errorf("%s: got %s, want %s:\n%s", id, f.Result, want, all)
			return
		}
		for _, s := range texts {
			if !strings.Contains(all, s) {
				t.Errorf("%s: evidence lacks %q:\n%s", id, s, all)
			}
		}
	}

	s, err := h.start(h.bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	fs := run(s)
	check(fs, "harden.guard", audit.Fail, "'mysecure harden mysqld' has not been run (no "+h.state+")",
		"is "+h.bin+", not the binary in @protected under "+h.mnt, "the datadir "+h.datadir+"/ is not in @mysql under "+h.mnt)
	check(fs, "config.encryption-at-rest", audit.Fail, "is not in mysecure's @mysql")
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	h.harden(0)
	s, err = h.start(h.bin+"-guard", nil)
	if err != nil {
		t.Fatalf("start through the guard: %v", err)
	}
	fs = run(s)
	check(fs, "harden.guard", audit.Pass, h.state+" records the hardening",
		"is "+filepath.Join(h.mnt, "protected"))
	check(fs, "config.encryption-at-rest", audit.Pass, "is in mysecure's @mysql category ("+filepath.Join(h.mnt, "mysql"))

	// The CLI: the mount comes from the configuration (MYSECURE_MOUNT
	// here), the accounts in use from audit.accounts.
	cfg := filepath.Join(h.dir, "audit.yaml")
	writeCfg := func(accounts string) {
		if err := os.WriteFile(cfg, []byte("audit:\n  accounts: ["+accounts+"]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cli := func(want int) string {
		return h.ms(want, "--config", cfg, "harden", "audit", "--mysql-socket", s.Socket, "--only", "config.encryption-at-rest,accounts.unused")
	}
	writeCfg(`"'other'@'10.0.0.9'"`)
	out := cli(14)
	for _, re := range []string{`(?m)^PASS\s+config\.encryption-at-rest\s`, `(?m)^FAIL\s+accounts\.unused\s.*'app'@'127\.0\.0\.1' is neither an administrator`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("audit output does not match %s:\n%s", re, out)
		}
	}
	writeCfg(`"app@127.0.0.1"`)
	if out := cli(0); !regexp.MustCompile(`(?m)^PASS\s+accounts\.unused\s`).MatchString(out) {
		t.Errorf("accounts.unused with app listed:\n%s", out)
	}
}
