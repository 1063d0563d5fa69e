package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/internal/testenv"
)

func TestValidate(t *testing.T) {
	good := Job{Name: "nightly", Schedule: "30 2 * * *"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, j := range map[string]Job{
		"bad name":      {Name: "a b", Schedule: "@daily"},
		"empty":         {Name: "x"},
		"61 minutes":    {Name: "x", Schedule: "61 * * * *"},
		"6 fields":      {Name: "x", Schedule: "0 0 2 * * *"},
		"tz inside":     {Name: "x", Schedule: "CRON_TZ=UTC 0 2 * * *"},
		"unknown tz":    {Name: "x", Schedule: "@daily", Timezone: "Mars/Olympus"},
		"overlap":       {Name: "x", Schedule: "@daily", Overlap: "parallel"},
		"type":          {Name: "x", Schedule: "@daily", Type: "incremental"},
		"physical+dbs":  {Name: "x", Schedule: "@daily", Type: "physical", Databases: []string{"a"}},
		"credentials":   {Name: "x", Schedule: "@daily", Credentials: "../x"},
		"negative":      {Name: "x", Schedule: "@daily", Jitter: -time.Second},
		"webhook":       {Name: "x", Schedule: "@daily", Webhook: "ftp://x"},
		"bad retention": {Name: "x", Schedule: "@daily", Retention: Retention{KeepLast: -1}},
	} {
		if err := j.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := ValidateAll([]Job{good, good}); err == nil {
		t.Error("two jobs with one name were accepted")
	}
	if _, err := Find([]Job{good}, "other"); !errors.Is(err, backup.ErrNotFound) || !strings.Contains(err.Error(), "nightly") {
		t.Errorf("Find: %v", err)
	}
}

// The cron.d lines parse as standard cron and name existing jobs.
func TestCronD(t *testing.T) {
	jobs := []Job{{Name: "nightly", Schedule: "30 2 * * 1-5"}, {Name: "weekly", Schedule: "@weekly"}}
	b, err := CronD(jobs, Invocation{Binary: "/usr/bin/mysecure", Config: "/etc/my secure.yaml", Log: "/var/log/mysecure/cron.log"})
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") || regexp.MustCompile(`^[A-Z]+=`).MatchString(l) {
			continue
		}
		f := strings.Fields(l)
		spec := strings.Join(f[:5], " ")
		rest := f[5:]
		if strings.HasPrefix(f[0], "@") {
			spec, rest = f[0], f[1:]
		}
		if _, err := cron.ParseStandard(spec); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		m := regexp.MustCompile(`backup --job (\S+) --scheduled`).FindStringSubmatch(l)
		if rest[0] != "root" || m == nil {
			t.Fatalf("line %q", l)
		}
		if _, err := Find(jobs, m[1]); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(l, "'/etc/my secure.yaml'") {
			t.Fatalf("config path not quoted: %q", l)
		}
		lines++
	}
	if lines != 2 {
		t.Fatalf("%d job lines:\n%s", lines, b)
	}
	for _, j := range []Job{{Name: "x", Schedule: "@every 1h"}, {Name: "x", Schedule: "@daily", Timezone: "Pacific/Auckland"}} {
		if _, err := CronD([]Job{j}, Invocation{Binary: "/x"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", j, err)
		}
	}
}

// OnCalendar gives systemd the same times as the cron library: checked
// with the real systemd-analyze.
func TestOnCalendarMatchesSystemd(t *testing.T) {
	testenv.RequireCommands(t, "systemd-analyze")
	for _, j := range []Job{
		{Name: "a", Schedule: "30 2 * * *"},
		{Name: "b", Schedule: "*/15 * * * *"},
		{Name: "c", Schedule: "0 9-17/2 * * 1-5"},
		{Name: "d", Schedule: "5 4 1,15 * *"},
		{Name: "e", Schedule: "@weekly"},
		{Name: "f", Schedule: "@monthly"},
		{Name: "g", Schedule: "0 3 * 2 0,6"},
		{Name: "h", Schedule: "45 23 * * *", Timezone: "Europe/Berlin"},
		{Name: "i", Schedule: "@hourly"},
	} {
		cal, err := OnCalendar(j)
		if err != nil {
			t.Fatalf("%s: %v", j.Schedule, err)
		}
		cmd := exec.Command("systemd-analyze", "calendar", "--iterations=3", cal)
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze calendar %q: %v\n%s", cal, err, out)
		}
		sched, _ := j.Parse()
		re := regexp.MustCompile(`(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC`)
		got := re.FindAllStringSubmatch(string(out), -1)
		if len(got) != 3 {
			t.Fatalf("%q: cannot read the next elapses:\n%s", cal, out)
		}
		// systemd counts from now; so does the cron library.
		next := time.Now()
		for i := 0; i < 3; i++ {
			next = sched.Next(next)
			if want := next.UTC().Format("2006-01-02 15:04:05"); got[i][1] != want {
				t.Fatalf("%s -> %q: systemd elapse %d is %s, cron says %s\n%s", j.Schedule, cal, i, got[i][1], want, out)
			}
		}
	}
	if _, err := OnCalendar(Job{Name: "x", Schedule: "0 0 1 * 1"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("day of month and day of week together: %v", err)
	}
}

func TestSystemdUnitsVerify(t *testing.T) {
	testenv.RequireCommands(t, "systemd-analyze")
	dir := t.TempDir()
	units, err := SystemdUnits([]Job{{Name: "nightly", Schedule: "30 2 * * *", Jitter: 10 * time.Minute, CatchUp: true}},
		Invocation{Binary: "/bin/true", Config: "/etc/mysecure/mysecure.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for name, b := range units {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		paths = append(paths, p)
	}
	if len(paths) != 2 || !strings.Contains(string(units["mysecure-backup-nightly.timer"]), "RandomizedDelaySec=600") ||
		!strings.Contains(string(units["mysecure-backup-nightly.timer"]), "Persistent=true") {
		t.Fatalf("units: %v", units)
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// fakeBackup stands in for the backup function in runner unit tests (the
// integration tests run real backups).
type fakeBackup struct {
	running atomic.Int32
	maxRun  atomic.Int32
	calls   atomic.Int32
	delay   time.Duration
	fail    error
}

func (f *fakeBackup) run(ctx context.Context, o backup.Options) (*backup.Manifest, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		m := f.maxRun.Load()
		if n <= m || f.maxRun.CompareAndSwap(m, n) {
			break
		}
	}
	c := f.calls.Add(1)
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.fail != nil {
		return nil, f.fail
	}
	return &backup.Manifest{ID: "20261128T000000Z-000" + string(rune('0'+c%10)), StoredBytes: 100 * int64(c), Job: o.Job}, nil
}

func newRunner(t *testing.T, f *fakeBackup) (*Runner, string) {
	dir := t.TempDir()
	return &Runner{Backup: f.run, History: &History{Dir: filepath.Join(dir, "jobs")}, LockDir: filepath.Join(dir, "locks"),
		Metrics: filepath.Join(dir, "metrics", "mysecure.prom")}, dir
}

func TestRunnerOverlap(t *testing.T) {
	f := &fakeBackup{delay: 300 * time.Millisecond}
	r, _ := newRunner(t, f)
	ctx := context.Background()
	job := Job{Name: "slow", Schedule: "@daily"}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = r.Run(ctx, job, "schedule") }()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	busy := 0
	for _, err := range errs {
		if errors.Is(err, backup.ErrBusy) {
			busy++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if busy != 3 || f.calls.Load() != 1 || f.maxRun.Load() != 1 {
		t.Fatalf("skip: busy %d, calls %d, max concurrent %d", busy, f.calls.Load(), f.maxRun.Load())
	}
	recs, _ := r.History.Read("slow")
	st := map[string]int{}
	for _, rec := range recs {
		st[rec.Status]++
	}
	if st[StatusSkipped] != 3 || st[StatusSuccess] != 1 {
		t.Fatalf("history: %v", st)
	}
	// queue: all run, one after the other.
	job.Overlap = "queue"
	f2 := &fakeBackup{delay: 100 * time.Millisecond}
	r.Backup = f2.run
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = r.Run(ctx, job, "schedule") }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if f2.calls.Load() != 4 || f2.maxRun.Load() != 1 {
		t.Fatalf("queue: calls %d, max concurrent %d", f2.calls.Load(), f2.maxRun.Load())
	}
}

func TestRunnerFailureWebhookMetricsRetention(t *testing.T) {
	var hooks []WebhookPayload
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p WebhookPayload
		json.Unmarshal(b, &p)
		mu.Lock()
		hooks = append(hooks, p)
		mu.Unlock()
	}))
	defer srv.Close()
	f := &fakeBackup{fail: errors.New("mariadb-dump failed (exit status 2): Access denied")}
	r, dir := newRunner(t, f)
	pruned := 0
	r.Prune = func(ctx context.Context, o backup.PruneOptions) ([]backup.PruneDecision, error) {
		pruned++
		if o.Job != "j" || o.Policy.Last != 2 {
			t.Errorf("prune options %+v", o)
		}
		return []backup.PruneDecision{{ID: "old", Deleted: true}}, nil
	}
	marker := filepath.Join(dir, "post")
	job := Job{Name: "j", Schedule: "@daily", Webhook: srv.URL, Retention: Retention{KeepLast: 2},
		PostHook: "echo $MYSECURE_STATUS $MYSECURE_BACKUP_ID >> " + marker}
	if _, err := r.Run(context.Background(), job, "schedule"); err == nil {
		t.Fatal("a failing backup succeeded")
	}
	if pruned != 0 {
		t.Fatal("retention ran after a failed run")
	}
	if len(hooks) != 1 || hooks[0].Event != "backup.failed" || !strings.Contains(hooks[0].Error, "Access denied") || hooks[0].Job != "j" {
		t.Fatalf("webhook: %+v", hooks)
	}
	m, _ := os.ReadFile(r.Metrics)
	for _, want := range []string{`mysecure_backup_failures_total{job="j"} 1`, `mysecure_backup_last_success_timestamp_seconds{job="j"} 0`, `mysecure_backup_last_run_success{job="j"} 0`} {
		if !strings.Contains(string(m), want) {
			t.Fatalf("metrics lack %q:\n%s", want, m)
		}
	}
	// Success: retention, no webhook (not asked for), metrics updated.
	f.fail = nil
	rec, err := r.Run(context.Background(), job, "schedule")
	if err != nil || pruned != 1 || len(rec.Pruned) != 1 || len(hooks) != 1 {
		t.Fatalf("success: %v pruned %d hooks %d", err, pruned, len(hooks))
	}
	m, _ = os.ReadFile(r.Metrics)
	if !regexp.MustCompile(`mysecure_backup_last_success_timestamp_seconds\{job="j"\} 1\.\d+e\+09`).Match(m) || !strings.Contains(string(m), `mysecure_backup_last_size_bytes{job="j"} 200`) {
		t.Fatalf("metrics after success:\n%s", m)
	}
	post, _ := os.ReadFile(marker)
	if string(post) != "failed\nsuccess "+rec.BackupID+"\n" {
		t.Fatalf("post-hook saw %q", post)
	}
	// A failing pre-hook fails the run before any backup.
	job.PreHook = "echo not today >&2; exit 3"
	calls := f.calls.Load()
	if _, err := r.Run(context.Background(), job, "schedule"); err == nil || !strings.Contains(err.Error(), "not today") || f.calls.Load() != calls {
		t.Fatalf("pre-hook: %v", err)
	}
	// History survives a new runner (a daemon restart).
	r2 := &Runner{History: &History{Dir: r.History.Dir}}
	recs, _ := r2.History.Read("j")
	if len(recs) != 3 || recs[1].Status != StatusSuccess {
		t.Fatalf("history: %+v", recs)
	}
}

func TestHistoryTornLine(t *testing.T) {
	h := &History{Dir: t.TempDir()}
	h.Append(Record{Job: "a", Status: StatusSuccess})
	f, _ := os.OpenFile(filepath.Join(h.Dir, "a.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"job":"a","sta`)
	f.Close()
	h.Append(Record{Job: "a", Status: StatusFailed})
	recs, err := h.Read("a")
	if err != nil || len(recs) != 2 || recs[0].Status != StatusSuccess || recs[1].Status != StatusFailed {
		t.Fatalf("records after a torn line: %+v %v", recs, err)
	}
}

// fakeClock is a Clock that moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	changed chan struct{} // closed and replaced when a waiter is added
}

type fakeWaiter struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// waitFor blocks until n timers are pending (the scheduler's loop and the
// runs' jitter waits are parked on the clock).
func (c *fakeClock) waitFor(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		have, ch := len(c.waiters), c.changed
		c.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("%d timers pending, waited for %d", have, n)
		}
	}
}

// advance moves the clock by d and fires the timers that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.c <- c.now
	}
	c.waiters = kept
}

// waitRuns waits until job has n records in the history and its lock is
// free (the run is over: the next one will not find its lock held).
func waitRuns(t *testing.T, r *Runner, job string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, _ := r.History.Read(job)
		if len(recs) >= n {
			if unlock, err := r.lockJob(context.Background(), job, false); err == nil {
				unlock()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %d runs recorded, want %d", job, len(recs), n)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// clockScheduler is a scheduler on a fake clock and backup.
func clockScheduler(t *testing.T) (*fakeBackup, *Runner, *fakeClock, *Scheduler) {
	f := &fakeBackup{}
	r, _ := newRunner(t, f)
	clk := newFakeClock()
	r.Now = clk.Now
	s := NewScheduler(context.Background(), r)
	s.Clock = clk
	return f, r, clk, s
}

func TestSchedulerRunsAndCatchesUp(t *testing.T) {
	f := &fakeBackup{}
	r, _ := newRunner(t, f)
	clk := newFakeClock()
	r.Now = clk.Now
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewScheduler(ctx, r)
	s.Clock = clk
	if err := s.Start([]Job{{Name: "fast", Schedule: "@every 1m"}}); err != nil {
		t.Fatal(err)
	}
	if nx := s.Next()["fast"]; !nx.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("next run %v, want a minute after %v", nx, clk.Now())
	}
	for i := int32(1); i <= 3; i++ {
		clk.waitFor(t, 1)
		clk.advance(59 * time.Second)
		if f.calls.Load() != i-1 {
			t.Fatalf("run %d fired a second early", i)
		}
		clk.advance(time.Second)
		waitRuns(t, r, "fast", int(i))
	}
	s.Stop()
	if n := f.calls.Load(); n != 3 {
		t.Fatalf("%d runs in three minutes of a job every minute", n)
	}
	// A daily job last run two days ago is caught up once at start.
	r.History.Append(Record{Job: "daily", Status: StatusSuccess, Started: clk.Now().Add(-48 * time.Hour)})
	before := f.calls.Load()
	s2 := NewScheduler(ctx, r)
	s2.Clock = clk
	if err := s2.Start([]Job{{Name: "daily", Schedule: "@daily", CatchUp: true}, {Name: "nocatch", Schedule: "@daily"}}); err != nil {
		t.Fatal(err)
	}
	s2.Stop() // waits for the catch-up run
	recs, _ := r.History.Read("daily")
	if f.calls.Load() != before+1 || len(recs) != 2 || recs[1].Trigger != "catch-up" {
		t.Fatalf("catch-up: calls %d->%d, records %+v", before, f.calls.Load(), recs)
	}
}

// TestSchedulerJitter: a job with jitter waits up to that long after its
// time, on the scheduler's clock.
func TestSchedulerJitter(t *testing.T) {
	f, r, clk, s := clockScheduler(t)
	job := Job{Name: "jittery", Schedule: "@hourly", Jitter: 10 * time.Minute}
	if err := s.Load([]Job{job}); err != nil {
		t.Fatal(err)
	}
	clk.waitFor(t, 1)
	clk.advance(time.Hour)
	clk.waitFor(t, 2) // the next hour, and the run's delay (0 < delay < 10 min)
	if f.calls.Load() != 0 {
		t.Fatal("the run did not wait for its jitter")
	}
	clk.advance(10 * time.Minute)
	waitRuns(t, r, "jittery", 1)
	s.Stop()
}

func TestSchedulerLeavesSystemJobs(t *testing.T) {
	f, _, clk, s := clockScheduler(t)
	if err := s.Start([]Job{{Name: "cron", Schedule: "@every 1m", System: true}, {Name: "mine", Schedule: "@every 1h"}}); err != nil {
		t.Fatal(err)
	}
	clk.waitFor(t, 1)
	clk.advance(59 * time.Minute)
	s.Stop()
	if f.calls.Load() != 0 {
		t.Fatalf("the daemon ran a job that system cron owns %d times", f.calls.Load())
	}
	if _, ok := s.Next()["cron"]; ok {
		t.Fatal("a system job has a next run in the daemon")
	}
}

// TestSchedulerConcurrentLoads: config reloads that race (SIGHUP and a
// job API call) leave exactly one loop running, and after Stop no job
// fires (before the fix an interleaved load could leave a cron that
// nothing stopped, firing every job twice and after Stop).
func TestSchedulerConcurrentLoads(t *testing.T) {
	f, r, clk, s := clockScheduler(t)
	jobs := []Job{{Name: "often", Schedule: "@every 1m"}}
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Load(jobs); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Each load's loop parked one timer; only the last loop is alive.
	clk.waitFor(t, 64)
	clk.advance(time.Minute)
	waitRuns(t, r, "often", 1)
	clk.waitFor(t, 1)
	clk.advance(time.Minute)
	waitRuns(t, r, "often", 2)
	s.Stop()
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d runs in two minutes of a job every minute: more than one loop ran", n)
	}
	clk.advance(time.Hour)
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d runs after Stop: a loop kept running", n-2)
	}
	if err := s.Load(jobs); err == nil {
		t.Fatal("Load after Stop started a loop")
	}
}

// TestJobListConcurrent: reloads and readers at once (run with -race).
func TestJobListConcurrent(t *testing.T) {
	var l JobList
	l.Store([]Job{{Name: "a", Schedule: "@daily"}})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			for k := 0; k < 200; k++ {
				l.Store([]Job{{Name: "a", Schedule: "@daily"}, {Name: "b", Schedule: "@hourly"}}[:1+k%2])
			}
		}(i)
		go func() {
			defer wg.Done()
			for k := 0; k < 200; k++ {
				if js := l.Load(); len(js) == 0 || js[0].Name != "a" {
					t.Errorf("read %v", js)
					return
				}
			}
		}()
	}
	wg.Wait()
	src := []Job{{Name: "x"}}
	l.Store(src)
	src[0].Name = "changed"
	if l.Load()[0].Name != "x" {
		t.Fatal("Store kept the caller's slice")
	}
}

// TestHookSource: hooks run as root only from a config file (and
// directory) root owns and nobody else can write (a hook from a file
// others can change is code execution next to the keys).
func TestHookSource(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	cfg := filepath.Join(dir, "mysecure.yaml")
	os.WriteFile(cfg, []byte("schedules: []\n"), 0o600)
	if err := CheckHookSource(cfg); err != nil {
		t.Fatalf("root's 0600 file: %v", err)
	}
	marker := filepath.Join(dir, "ran")
	f := &fakeBackup{}
	r, _ := newRunner(t, f)
	r.HookSource = cfg
	job := Job{Name: "hooked", Schedule: "@daily", PreHook: "touch " + marker}
	if _, err := r.Run(context.Background(), job, "manual"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the hook of a safe config did not run")
	}
	os.Remove(marker)
	for name, loosen := range map[string]func(){
		"group-writable file": func() { os.Chmod(cfg, 0o620) },
		"world-writable dir":  func() { os.Chmod(cfg, 0o600); os.Chmod(dir, 0o777) },
		"file of another uid": func() { os.Chmod(dir, 0o755); os.Chown(cfg, 65534, 65534) },
	} {
		loosen()
		if err := CheckHookSource(cfg); !errors.Is(err, ErrUnsafeHookSource) {
			t.Errorf("%s: %v", name, err)
		}
		rec, _ := r.Run(context.Background(), job, "manual")
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s: the hook ran", name)
		}
		if rec.Status == "success" {
			t.Errorf("%s: the job succeeded without its pre-hook", name)
		}
	}
}

// Two runners of one store (the daemon's and `backup --job`'s) share the
// job's lock and its history.
func TestRunnerInStore(t *testing.T) {
	store := t.TempDir()
	slow := &fakeBackup{delay: 300 * time.Millisecond}
	daemonSide := Runner{Backup: slow.run}.InStore(store)
	cronSide := Runner{Backup: (&fakeBackup{}).run}.InStore(store)
	job := Job{Name: "nightly", Schedule: "@daily"}
	done := make(chan error, 1)
	go func() { _, err := daemonSide.Run(context.Background(), job, "schedule"); done <- err }()
	time.Sleep(50 * time.Millisecond)
	if _, err := cronSide.Run(context.Background(), job, "cron"); !errors.Is(err, backup.ErrBusy) {
		t.Fatalf("second runner of the store: %v, want ErrBusy", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs, err := StoreHistory(store).Read("nightly")
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]int{}
	for _, rec := range recs {
		st[rec.Status]++
	}
	if st[StatusSuccess] != 1 || st[StatusSkipped] != 1 {
		t.Fatalf("store history: %v", st)
	}
	if _, err := os.Stat(filepath.Join(store, "ms.jobs")); err != nil {
		t.Fatalf("history not in STORE/ms.jobs: %v", err)
	}
}
