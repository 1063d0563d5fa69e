package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBatchRows(t *testing.T) {
	for out, want := range map[string][][]string{
		"":                  nil,
		"x\n\n":             {{"x"}, {""}},
		"\n":                {{""}},
		"1\n":               {{"1"}},
		"a\tb\n\tc\n":       {{"a", "b"}, {"", "c"}},
		"x\n\ny\n":          {{"x"}, {""}, {"y"}},
		"/var/log/e.err\n":  {{"/var/log/e.err"}},
		"tab\\there\tz\n":   {{"tab\\there", "z"}},
		"no trailing line":  {{"no trailing line"}},
		"one\ttwo\tthree\n": {{"one", "two", "three"}},
	} {
		if got := batchRows(out); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %q, want %q", out, got, want)
		}
	}
}

func TestClientError(t *testing.T) {
	for stderr, want := range map[string]string{
		"--------------\nSELECT * FROM mysql.user\n--------------\n\nERROR 1142 (42000) at line 1: SELECT command denied\n": "ERROR 1142 (42000) at line 1: SELECT command denied",
		"ERROR 2002 (HY000): Can't connect\n": "ERROR 2002 (HY000): Can't connect",
		"  something else\n":                  "something else",
		"":                                    "",
	} {
		if got := clientError(stderr); got != want {
			t.Errorf("%q: %q, want %q", stderr, got, want)
		}
	}
}

// TestClientQuery: the query runs the named program with the credentials'
// file and batch flags, the SQL on stdin, and returns its rows; a failing
// client's ERROR line makes the error.
func TestClientQuery(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "client")
	args := filepath.Join(dir, "args")
	os.WriteFile(prog, []byte("#!/bin/sh\necho \"$@\" > "+args+"\nsql=$(cat)\nif [ \"$sql\" = fail ]; then echo 'ERROR 1045 (28000): Access denied' >&2; exit 1; fi\nprintf '%s\\t2\\n' \"$sql\"\n"), 0o755)
	q, err := Client{Program: prog, DefaultsFile: "/etc/mysql/debian.cnf", Socket: "/run/mysqld/mysqld.sock", User: "root"}.Query()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := q(context.Background(), "SELECT 1")
	if err != nil || !reflect.DeepEqual(rows, [][]string{{"SELECT 1", "2"}}) {
		t.Fatalf("%q %v", rows, err)
	}
	a, _ := os.ReadFile(args)
	if strings.TrimSpace(string(a)) != "--defaults-file=/etc/mysql/debian.cnf --socket=/run/mysqld/mysqld.sock --user=root --batch --skip-column-names --raw" {
		t.Fatalf("argv %q", a)
	}
	if _, err := q(context.Background(), "fail"); err == nil || !strings.HasSuffix(err.Error(), ": ERROR 1045 (28000): Access denied") {
		t.Fatalf("failing client: %v", err)
	}
	t.Setenv("PATH", dir)
	if _, err := (Client{}).Query(); !errors.Is(err, ErrNoClient) {
		t.Fatalf("no client on PATH: %v", err)
	}
}

// TestServerIDs: the server user's uid and primary gid, or an error
// naming a user that does not exist.
func TestServerIDs(t *testing.T) {
	a := &auditor{t: Target{ServerUser: "root"}}
	uid, uerr := a.serverUID()
	gid, gerr := a.serverGID()
	if uid != 0 || gid != 0 || uerr != nil || gerr != nil {
		t.Fatalf("root: uid %d %v, gid %d %v", uid, uerr, gid, gerr)
	}
	a = &auditor{t: Target{ServerUser: "no-such-user-mysecure"}}
	if _, err := a.serverUID(); err == nil || !strings.Contains(err.Error(), "server user") {
		t.Fatalf("unknown user: %v", err)
	}
}
