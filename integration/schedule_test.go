package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mysecure/mysecure/internal/sandbox"
	"github.com/mysecure/mysecure/internal/testenv"
)

type historyRec struct {
	Job      string `json:"job"`
	Trigger  string `json:"trigger"`
	Status   string `json:"status"`
	BackupID string `json:"backup_id"`
	Error    string `json:"error"`
}

func (m *mountEnv) history(job string) []historyRec {
	m.t.Helper()
	out := m.ms(0, "schedule", "history", job, "--json")
	var recs []historyRec
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &recs); err != nil {
		m.t.Fatalf("history: %v\n%s", err, out)
	}
	return recs
}

func count(recs []historyRec, status string) int {
	n := 0
	for _, r := range recs {
		if r.Status == status {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestScheduledBackups: the daemon runs jobs on their schedules against a
// real MariaDB; runs land in the catalog and the history, retention keeps
// what the job says, the history survives a daemon restart, a slow job is
// never started twice, and a failing job calls the webhook and updates the
// metrics without touching the catalog.
func TestScheduledBackups(t *testing.T) {
	testenv.RequireCommands(t, "mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump")
	cfgDir := t.TempDir()
	cfg := filepath.Join(cfgDir, "mysecure.yaml")
	os.WriteFile(cfg, []byte("# test config: the rest comes from MYSECURE_*\naudit-allows: false # keep this comment\n"), 0o600)
	metrics := filepath.Join(cfgDir, "textfile", "mysecure.prom")
	slow := filepath.Join(cfgDir, "slow-dump")
	overlap := filepath.Join(cfgDir, "overlap")
	running := filepath.Join(cfgDir, "running")
	dumpBin := lookPath(t, "mariadb-dump")
	os.WriteFile(slow, []byte(`#!/bin/sh
[ "$1" = --version ] && exec `+dumpBin+` --version
if ! mkdir `+running+` 2>/dev/null; then echo overlap >> `+overlap+`; fi
sleep 3
rmdir `+running+`
exec `+dumpBin+` "$@"
`), 0o755)
	vars := []string{"MYSECURE_CONFIG=" + cfg, "MYSECURE_METRICS_TEXTFILE=" + metrics}
	m := newMount(t, vars...)

	s := startSandbox(t, sandbox.Options{Dir: filepath.Join(m.dir, "srv")})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := s.Client(ctx, "CREATE DATABASE shop; CREATE TABLE shop.t (i INT); INSERT INTO shop.t VALUES (1),(2); SET sql_log_bin=0; CREATE USER 'bk'@'localhost' IDENTIFIED BY 'Sched-Pw-1'; GRANT ALL ON *.* TO 'bk'@'localhost';"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for name, pw := range map[string]string{"default": "Sched-Pw-1", "wrong": "not-it"} {
		p := filepath.Join(m.dir, "pw-"+name)
		os.WriteFile(p, []byte(pw), 0o600)
		m.ms(0, "backup", "credentials", "set", "--name", name, "--user", "bk", "--mysql-socket", s.Socket, "--password-file", p)
		os.Remove(p)
	}

	// A clear error at `schedule add`, not at 2 a.m.
	out := m.ms(2, "schedule", "add", "bad", "--schedule", "61 25 * * *")
	if !strings.Contains(out, "above maximum") {
		t.Fatalf("bad expression: %s", out)
	}
	m.ms(6, "schedule", "remove", "nosuch")
	m.ms(6, "schedule", "run-now", "nosuch")

	// Every 2 s, keep the last 2: the daemon reloads on add.
	out = m.ms(0, "schedule", "add", "fast", "--schedule", "@every 2s", "--databases", "shop", "--keep-last", "2", "--max-age", "1h")
	if !strings.Contains(out, "reloaded its schedules (1 jobs)") {
		t.Fatalf("schedule add did not reach the daemon: %s", out)
	}
	b, _ := os.ReadFile(cfg)
	if !strings.Contains(string(b), "# keep this comment") || !strings.Contains(string(b), "name: fast") {
		t.Fatalf("config after schedule add:\n%s", b)
	}
	waitFor(t, "3 successful scheduled runs", 60*time.Second, func() bool { return count(m.history("fast"), "success") >= 3 })
	m.ms(0, "schedule", "remove", "fast")
	time.Sleep(3 * time.Second) // a run in flight finishes
	recs := m.history("fast")
	var catalog struct {
		Backups []struct {
			ID  string `json:"id"`
			Job string `json:"job"`
		} `json:"backups"`
	}
	out = m.ms(0, "backup", "list", "--json")
	json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &catalog)
	if len(catalog.Backups) != 2 {
		t.Fatalf("retention keep-last 2 left %d backups (history %+v)", len(catalog.Backups), recs)
	}
	last := recs[len(recs)-1]
	if last.Status != "success" || last.Trigger != "schedule" || catalog.Backups[1].ID != last.BackupID || catalog.Backups[1].Job != "fast" {
		t.Fatalf("last run %+v, catalog %+v", last, catalog.Backups)
	}
	mt, _ := os.ReadFile(metrics)
	if !regexp.MustCompile(`mysecure_backup_last_success_timestamp_seconds\{job="fast"\} 1\.\d+e\+09`).Match(mt) || !strings.Contains(string(mt), `mysecure_backup_failures_total{job="fast"} 0`) {
		t.Fatalf("metrics:\n%s", mt)
	}
	m.ms(0, "schedule", "status")

	// Restart the daemon: the history stays; the slow tool from now on.
	m.ms(0, "umount")
	m.vars = append(m.vars, "MYSECURE_DUMP_TOOL="+slow)
	m.ms(0, append([]string{"mount"}, m.creds()...)...)
	if got := m.history("fast"); len(got) != len(recs) {
		t.Fatalf("history after a restart: %d records, was %d", len(got), len(recs))
	}

	// Ctrl-C on a backup the daemon runs stops it there too: nothing is
	// added, nothing partial is left.
	before := m.ms(0, "backup", "list", "--json")
	c := m.cmd("backup", "--databases", "shop")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	c.Process.Signal(syscall.SIGINT)
	err := c.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 9 {
		t.Fatalf("interrupted backup: %v, want exit 9", err)
	}
	time.Sleep(5 * time.Second) // the slow tool would have finished by now
	if after := m.ms(0, "backup", "list", "--json"); after != before {
		t.Fatalf("an interrupted backup reached the catalog:\n%s", after)
	}
	// The killed tool could not remove its marker.
	os.Remove(running)

	// A 3-second job every second: never two at once; skips are recorded.
	m.ms(0, "schedule", "add", "slow", "--schedule", "@every 1s", "--databases", "shop")
	waitFor(t, "a slow run and skipped runs", 40*time.Second, func() bool {
		h := m.history("slow")
		return count(h, "success") >= 1 && count(h, "skipped") >= 2
	})
	m.ms(0, "schedule", "remove", "slow")
	time.Sleep(4 * time.Second)
	if b, err := os.ReadFile(overlap); err == nil {
		t.Fatalf("two runs of one job overlapped: %s", b)
	}
	dl, _ := os.ReadFile(m.log)
	if !strings.Contains(string(dl), "run skipped") {
		t.Fatal("the daemon log does not record the skipped runs")
	}

	// A failing job calls the webhook, counts in the metrics, leaves the
	// catalog alone.
	var mu sync.Mutex
	var hooks []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var v map[string]any
		json.Unmarshal(b, &v)
		mu.Lock()
		hooks = append(hooks, v)
		mu.Unlock()
	}))
	defer hook.Close()
	before = m.ms(0, "backup", "list", "--json")
	m.ms(0, "schedule", "add", "failing", "--schedule", "@every 2s", "--credentials", "wrong", "--webhook", hook.URL, "--max-age", "1h")
	waitFor(t, "the webhook", 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(hooks) > 0 })
	m.ms(0, "schedule", "remove", "failing")
	mu.Lock()
	h := hooks[0]
	mu.Unlock()
	if h["event"] != "backup.failed" || h["job"] != "failing" || !strings.Contains(h["error"].(string), "Access denied") {
		t.Fatalf("webhook payload: %v", h)
	}
	time.Sleep(3 * time.Second)
	if after := m.ms(0, "backup", "list", "--json"); after != before {
		t.Fatalf("a failing job changed the catalog:\n%s\n%s", before, after)
	}
	mt, _ = os.ReadFile(metrics)
	if !regexp.MustCompile(`mysecure_backup_failures_total\{job="failing"\} [1-9]`).Match(mt) {
		t.Fatalf("metrics after failures:\n%s", mt)
	}
	// A job that has never succeeded is stale for monitoring (exit 13).
	m.ms(0, "schedule", "add", "never", "--schedule", "@yearly", "--max-age", "1h")
	out = m.ms(13, "schedule", "status")
	if !strings.Contains(out, "never succeeded") {
		t.Fatalf("status: %s", out)
	}
	// run-now runs it with the same lock, history and retention.
	m.ms(0, "schedule", "run-now", "never")
	m.ms(0, "schedule", "status")
	if recs := m.history("never"); len(recs) != 1 || recs[0].Trigger != "manual" {
		t.Fatalf("run-now history: %+v", recs)
	}
}

// TestScheduleSystemCron: the generated cron.d line and systemd units name
// existing jobs, parse, and the command they run works (run here as cron
// would, with a key file and no daemon).
func TestScheduleSystemCron(t *testing.T) {
	b := newBackupEnv(t)
	cfg := filepath.Join(b.dir, "mysecure.yaml")
	os.WriteFile(cfg, nil, 0o600)
	b.vars = append(b.vars, "MYSECURE_CONFIG="+cfg)
	b.ms(t, 0, "key", "add", "--type", "keyfile", "--create-keyfile", filepath.Join(b.dir, "boot.key"))
	b.msPlain(t, 0, "schedule", "add", "nightly", "--schedule", "30 2 * * *", "--databases", "shop", "--keep-daily", "7")
	b.msPlain(t, 0, "schedule", "add", "weekly", "--schedule", "@weekly", "--type", "physical", "--jitter", "10m")
	cronFile := filepath.Join(b.dir, "cron.d", "mysecure")
	_, errOut := b.msPlain(t, 0, "schedule", "install", "--cron", "--cron-file", cronFile, "--keyfile", filepath.Join(b.dir, "boot.key"))
	// Is a cron daemon running? Asked independently with pgrep.
	cronRunning := exec.Command("pgrep", "-x", "cron|crond|cronie").Run() == nil
	if warned := strings.Contains(errOut, "mysecure: warning: ") && strings.Contains(errOut, "the jobs in "+cronFile); warned == cronRunning {
		t.Fatalf("cron running: %v, but install warned: %v\n%s", cronRunning, warned, errOut)
	}
	data, err := os.ReadFile(cronFile)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := os.ReadFile(cfg); strings.Count(string(c), "system: true") != 2 {
		t.Fatalf("install did not hand the jobs to cron in the config:\n%s", c)
	}
	var line string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "--job nightly") {
			line = l
		}
	}
	f := strings.Fields(line)
	if len(f) < 8 || strings.Join(f[:5], " ") != "30 2 * * *" || f[5] != "root" || f[6] != binaryPath(t) {
		t.Fatalf("cron line %q", line)
	}
	// Run the line's command as cron would (without the log redirection).
	cmdline := strings.Join(f[6:], " ")
	cmdline = cmdline[:strings.Index(cmdline, " >>")]
	out, err := runShell(b.vars, cmdline)
	if err != nil || !strings.Contains(out, "job nightly: backup") {
		t.Fatalf("running the cron command %q: %v\n%s", cmdline, err, out)
	}
	if c := b.catalog(t); len(c) != 1 {
		t.Fatalf("catalog after the cron run: %v", ids(c))
	}
	units := filepath.Join(b.dir, "units")
	b.msPlain(t, 0, "schedule", "install", "--systemd", "--systemd-dir", units)
	timer, err := os.ReadFile(filepath.Join(units, "mysecure-backup-weekly.timer"))
	if err != nil || !strings.Contains(string(timer), "OnCalendar=Sun *-*-* 00:00:00") || !strings.Contains(string(timer), "RandomizedDelaySec=600") {
		t.Fatalf("timer: %s %v", timer, err)
	}
	t.Run("systemd-analyze verify", func(t *testing.T) {
		testenv.RequireCommands(t, "systemd-analyze")
		paths, _ := filepath.Glob(filepath.Join(units, "*"))
		if out, err := runShell(nil, "systemd-analyze verify --man=no "+strings.Join(paths, " ")); err != nil {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
	// A file mysecure did not write is never replaced; uninstall removes
	// only its own.
	os.WriteFile(filepath.Join(units, "mysecure-backup-foreign.timer"), []byte("[Timer]\n"), 0o644)
	b.msPlain(t, 0, "schedule", "uninstall", "--cron-file", cronFile, "--systemd-dir", units)
	left, _ := filepath.Glob(filepath.Join(units, "*"))
	if _, err := os.Stat(cronFile); err == nil || len(left) != 1 {
		t.Fatalf("after uninstall: cron file %v, units %v", err, left)
	}
	if c, _ := os.ReadFile(cfg); strings.Contains(string(c), "system:") {
		t.Fatalf("uninstall did not give the jobs back to the daemon:\n%s", c)
	}
	// A broken schedule in the file is a usage error for every command.
	os.WriteFile(cfg, []byte("schedules:\n  - name: x\n    schedule: \"99 * * * *\"\n"), 0o600)
	_, errOut = b.msPlain(t, 2, "backup", "list")
	if !strings.Contains(errOut, "job x") {
		t.Fatalf("broken schedule: %s", errOut)
	}
	os.WriteFile(cfg, []byte("schedules:\n  - name: x\n    schedule: \"@daily\"\n    keep-lsat: 3\n"), 0o600)
	_, errOut = b.msPlain(t, 2, "backup", "list")
	if !strings.Contains(errOut, "keep-lsat") {
		t.Fatalf("typo in a schedule: %s", errOut)
	}
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := execLookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
