package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/daemon/daemontest"
	"github.com/mysecure/mysecure/internal/hint"
	"github.com/mysecure/mysecure/internal/plan"
	"github.com/mysecure/mysecure/internal/testenv"
)

func TestClientConn(t *testing.T) {
	if c := ClientConn("", ""); c != nil {
		t.Errorf("no file, no socket: %+v, want nil", c)
	}
	for _, tc := range []struct {
		file, sock string
		want       []string
	}{
		{"/etc/mysql/debian.cnf", "", []string{"--defaults-file=/etc/mysql/debian.cnf"}},
		{"", "/run/mysqld/mysqld.sock", []string{"--socket=/run/mysqld/mysqld.sock"}},
		// --defaults-file must come first.
		{"/root/.my.cnf", "/s", []string{"--defaults-file=/root/.my.cnf", "--socket=/s"}},
	} {
		if c := ClientConn(tc.file, tc.sock); c == nil || !reflect.DeepEqual(c.Args, tc.want) {
			t.Errorf("%q %q: %+v, want %v", tc.file, tc.sock, c, tc.want)
		}
	}
}

func TestForeignRulesError(t *testing.T) {
	if err := ForeignRulesError(nil); err != nil {
		t.Errorf("no rules: %v", err)
	}
	err := ForeignRulesError([]string{"3: ALLOW @protected * /bin/cat", "4: ALLOW @* * /bin/sh"})
	if !errors.Is(err, ErrForeignRules) || err.Error() != "other rules open the engine key file: 3: ALLOW @protected * /bin/cat; 4: ALLOW @* * /bin/sh" {
		t.Errorf("error %v", err)
	}
	if h, _ := hint.Of(err); !strings.Contains(h, "--keep-existing-rules") {
		t.Errorf("hint %q", h)
	}
}

// TestAriaPlan: without the server, or on MySQL, no step and what to do
// later.
func TestAriaPlan(t *testing.T) {
	s := &Setup{Opts: testOptions(t)}
	steps, later, err := s.AriaPlan(context.Background(), nil)
	if err != nil || steps != nil || !strings.Contains(later, "engine enable --mysql-socket SOCKET") {
		t.Errorf("no server: %v %q %v", steps, later, err)
	}
	s.Opts.Flavor = MySQL
	steps, later, err = s.AriaPlan(context.Background(), ClientConn("", "/nonexistent.sock"))
	if err != nil || steps != nil || later == "" {
		t.Errorf("mysql: %v %q %v", steps, later, err)
	}
	s.Opts.Flavor = MariaDB
	c := &Conn{Client: "false"}
	if _, _, err := s.AriaPlan(context.Background(), c); err == nil {
		t.Error("a server that cannot be reached: no error")
	}
}

func TestUseRecordedOrAuto(t *testing.T) {
	o := testOptions(t)
	o.StatePath = filepath.Join(t.TempDir(), "engine.json")
	dir := t.TempDir()
	tool := filepath.Join(dir, "mariadb-backup")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	// Nothing recorded: enable's default (auto).
	if err := o.UseRecordedOrAuto(""); err != nil || o.BackupTool != tool {
		t.Fatalf("nothing recorded: %v %q, want %q", err, o.BackupTool, tool)
	}
	// Recorded none: none, even with a tool installed.
	enabled := o
	enabled.BackupTool = ""
	if _, err := (&plan.Runner{StatePath: o.StatePath, Params: enabled.Params()}).Apply(context.Background(), "engine", nil); err != nil {
		t.Fatal(err)
	}
	if err := o.UseRecordedOrAuto(""); err != nil || o.BackupTool != "" {
		t.Fatalf("recorded none: %v %q", err, o.BackupTool)
	}
}

func TestReportErr(t *testing.T) {
	if err := (&Report{OK: true}).Err(); err != nil {
		t.Errorf("ok: %v", err)
	}
	err := (&Report{}).Err()
	if !errors.Is(err, plan.ErrDrift) || err.Error() != "drift: engine mode is not complete" {
		t.Errorf("not ok: %v", err)
	}
	if h, _ := hint.Of(err); !strings.Contains(h, "'mysecure engine enable' puts missing steps back") {
		t.Errorf("hint %q", h)
	}
}

// TestReport: the steps compared with a real daemon's rules and the
// host's files; run 1 of a disable shows; a rule that opens the key file
// to another program is found.
func TestReport(t *testing.T) {
	testenv.RequireRoot(t)
	c, _ := daemontest.Serve(t, nil, nil)
	o := testOptions(t)
	o.StatePath = filepath.Join(t.TempDir(), "engine.json")
	s, err := NewSetup(o, admin.Conn{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := s.Report(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || len(r.Steps) != len(s.Steps()) || len(plan.Drifted(r.Steps)) == 0 || r.Disabling || r.Server != nil || r.Error != "" {
		t.Fatalf("nothing in place: %+v", r)
	}
	if err := os.WriteFile(o.CnfPath(), []byte(o.PhaseConfig(Decrypting)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A server that cannot be reached is not OK, and says why.
	if r, err = s.Report(ctx, &Conn{Client: "false"}); err != nil || !r.Disabling || r.OK || r.Error == "" {
		t.Fatalf("disabling, server unreachable: %+v %v", r, err)
	}
	if f, err := s.ForeignRules(ctx); err != nil || len(f) != 0 {
		t.Fatalf("no rules: %v %v", f, err)
	}
	if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @protected * /bin/cat", Credential: daemontest.Master()}); err != nil {
		t.Fatal(err)
	}
	f, err := s.ForeignRules(ctx)
	if err != nil || len(f) != 1 || !strings.Contains(f[0], "/bin/cat") || !errors.Is(ForeignRulesError(f), ErrForeignRules) {
		t.Fatalf("a rule for cat: %v %v", f, err)
	}
}

func TestStageRun(t *testing.T) {
	for st, want := range map[Stage]string{StageOff: "", StageDecrypt: "run 1 of 2: decrypt", StageFinish: "run 2 of 2: turn the key plugin off"} {
		if got := st.Run(); got != want {
			t.Errorf("stage %d: %q, want %q", st, got, want)
		}
	}
}
