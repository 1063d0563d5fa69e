package service

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/encfs/daemon"
)

func TestDeniedOf(t *testing.T) {
	gs := []daemon.DenialGroup{
		{Program: "/usr/bin/mariadb-dump", Category: "mysql", Count: 3, Files: []string{"/m/a", "/m/b"}, Rule: "ALLOW @mysql * /usr/bin/mariadb-dump", Hint: "add the rule"},
		{Count: 1, Files: []string{"/m/c"}, Reason: "unidentified"},
	}
	want := []backup.Denied{
		{Program: "/usr/bin/mariadb-dump", Files: []string{"/m/a", "/m/b"}, Count: 3, Rule: "ALLOW @mysql * /usr/bin/mariadb-dump", Hint: "add the rule"},
		{Files: []string{"/m/c"}, Count: 1},
	}
	if got := DeniedOf(gs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := DeniedOf(nil); got != nil {
		t.Errorf("no groups: %+v", got)
	}
}

// TestClientDenialsNoDaemon: a backup run beside no daemon gets no
// denials, and no error that would hide the tool's own.
func TestClientDenialsNoDaemon(t *testing.T) {
	src := ClientDenials(daemon.NewClient(filepath.Join(t.TempDir(), "none.sock")))
	if got := src(context.Background(), time.Now(), 1); got != nil {
		t.Errorf("denials from no daemon: %+v", got)
	}
}
