package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/hardening/audit"
	"github.com/mysecure/mysecure/internal/testenv"
)

func ruleInfos(t *testing.T, texts ...string) []daemon.RuleInfo {
	t.Helper()
	var out []daemon.RuleInfo
	for i, text := range texts {
		r, err := acl.ParseRule(text)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, daemon.RuleInfo{Index: i + 1, Text: text, Rule: r})
	}
	return out
}

func TestReachWarnings(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(base, 0o700) // blocks everyone but root
	mnt := filepath.Join(base, "mnt")
	os.MkdirAll(mnt, 0o755)
	rules := ruleInfos(t,
		"ALLOW @mysql * /usr/bin/cat",                             // no user to check
		"ALLOW @mysqlbackup * /usr/bin/mariadb-dump --user=65534", // blocked
	)
	ws := ReachWarnings(mnt, rules)
	if len(ws) != 1 {
		t.Fatalf("warnings: %+v", ws)
	}
	w := ws[0]
	if w.Kind != "mount-unreachable" || w.Rule != 2 || w.Program != "/usr/bin/mariadb-dump" ||
		!strings.Contains(w.Message, base+" is mode 0700") || w.Hint != "chmod o+x "+base+" (the mount's own rules still decide who reads what behind it)" {
		t.Fatalf("warning %+v", w)
	}
	os.Chmod(base, 0o755)
	if ws := ReachWarnings(mnt, rules); len(ws) != 0 {
		t.Fatalf("after chmod: %+v", ws)
	}
}

func TestFilePrivWarnings(t *testing.T) {
	const mnt = "/var/lib/mysecure/encrypted"
	rules := ruleInfos(t,
		"DENY @mysql * /usr/sbin/mysqld",
		"ALLOW @mysql * /usr/sbin/mariadbd --user=mysql",
	)
	servers := []audit.LocalServer{
		{Pid: 10, Exe: "/usr/sbin/mariadbd", Socket: "/run/unset.sock"},
		{Pid: 11, Exe: "/usr/sbin/mariadbd", Socket: "/run/outside.sock"},
		{Pid: 12, Exe: "/usr/sbin/mariadbd", Socket: "/run/down.sock"},
		{Pid: 13, Exe: "/usr/sbin/mysqld", Socket: "/run/denied.sock"}, // no ALLOW rule
	}
	var asked []string
	query := func(socket string) (audit.Query, error) {
		asked = append(asked, socket)
		if socket == "/run/down.sock" {
			return nil, errors.New("cannot connect")
		}
		return func(ctx context.Context, sql string) ([][]string, error) {
			if socket == "/run/outside.sock" {
				return [][]string{{"0", "/var/lib/mysql-files", "10.11.6-MariaDB"}}, nil
			}
			return [][]string{{"1", "", "10.11.6-MariaDB"}}, nil
		}, nil
	}
	ws := filePrivWarnings(context.Background(), mnt, rules, servers, query)
	if got := strings.Join(asked, " "); got != "/run/unset.sock /run/outside.sock /run/down.sock" {
		t.Errorf("asked %s", got)
	}
	if len(ws) != 1 {
		t.Fatalf("warnings: %+v", ws)
	}
	w := ws[0]
	if w.Kind != "secure-file-priv" || w.Rule != 2 || w.Program != "/usr/sbin/mariadbd" ||
		!strings.HasPrefix(w.Message, "server pid 10 (/run/unset.sock): secure_file_priv is unset") || !strings.Contains(w.Hint, "secure_file_priv") {
		t.Fatalf("warning %+v", w)
	}
}
