package schedule

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mysecure/mysecure/backup"
)

// history holds, for the job "nightly", a success two hours before now
// and a failure one hour before; "gone" (no longer configured) one
// skipped run three hours before.
func testHistory(t *testing.T, now time.Time) *History {
	t.Helper()
	h := &History{Dir: filepath.Join(t.TempDir(), "ms.jobs")}
	for _, r := range []Record{
		{Job: "nightly", Status: StatusSuccess, Started: now.Add(-2 * time.Hour), Finished: now.Add(-2*time.Hour + time.Minute), BackupID: "b1"},
		{Job: "nightly", Status: StatusFailed, Started: now.Add(-time.Hour), Finished: now.Add(-time.Hour + time.Second), Error: "boom"},
		{Job: "gone", Status: StatusSkipped, Started: now.Add(-3 * time.Hour), Finished: now.Add(-3 * time.Hour)},
	} {
		if err := h.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func TestViews(t *testing.T) {
	now := time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	h := testHistory(t, now)
	jobs := []Job{{Name: "nightly", Schedule: "30 2 * * *"}, {Name: "new", Schedule: "@hourly"}}
	views := Views(jobs, h, now)
	if len(views) != 2 {
		t.Fatalf("%d views, want 2", len(views))
	}
	v := views[0]
	if v.Name != "nightly" || v.Next == nil || !v.Next.Equal(time.Date(2026, 12, 11, 2, 30, 0, 0, time.UTC)) {
		t.Errorf("nightly: name %q next %v, want the next 02:30", v.Name, v.Next)
	}
	if v.LastRun == nil || v.LastRun.Status != StatusFailed || v.LastSuccess == nil || v.LastSuccess.BackupID != "b1" {
		t.Errorf("nightly: last run %+v, last success %+v", v.LastRun, v.LastSuccess)
	}
	if v := views[1]; v.LastRun != nil || v.LastSuccess != nil || v.Next == nil || !v.Next.Equal(now.Add(time.Hour)) {
		t.Errorf("new: %+v", v)
	}
	// The JSON of `schedule list --json`: the job's fields and the views'.
	b, _ := json.Marshal(views[0])
	for _, want := range []string{`"name":"nightly"`, `"next":"2026-12-11T02:30:00Z"`, `"last_run":{`, `"last_success":{`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	if b, _ := json.Marshal(Views(nil, h, now)); string(b) != "[]" {
		t.Errorf("no jobs: JSON %s, want []", b)
	}
}

func TestRuns(t *testing.T) {
	now := time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	h := testHistory(t, now)
	jobs := []Job{{Name: "nightly", Schedule: "30 2 * * *"}, {Name: "new", Schedule: "@hourly"}}
	statuses := func(recs []Record) string {
		var s []string
		for _, r := range recs {
			s = append(s, r.Job+":"+r.Status)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		job   string
		limit int
		want  string
	}{
		{"", 0, "gone:skipped,nightly:success,nightly:failed"}, // every job with a history, oldest first
		{"", 2, "nightly:success,nightly:failed"},
		{"", 5, "gone:skipped,nightly:success,nightly:failed"},
		{"nightly", 0, "nightly:success,nightly:failed"},
		{"nightly", 1, "nightly:failed"},
		{"gone", 0, "gone:skipped"}, // a history outlives its job
		{"new", 0, ""},              // configured, never ran
	} {
		recs, err := Runs(h, jobs, tc.job, tc.limit)
		if err != nil || statuses(recs) != tc.want || recs == nil {
			t.Errorf("Runs(%q, %d) = %s, %v; want %s", tc.job, tc.limit, statuses(recs), err, tc.want)
		}
	}
	if _, err := Runs(h, jobs, "typo", 0); !errors.Is(err, backup.ErrNotFound) {
		t.Errorf("unknown job: %v, want ErrNotFound", err)
	}
	if recs, err := Runs(&History{Dir: filepath.Join(t.TempDir(), "none")}, nil, "", 0); err != nil || recs == nil || len(recs) != 0 {
		t.Errorf("no history: %v, %v; want an empty list", recs, err)
	}
}

func TestCheckAll(t *testing.T) {
	now := time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	h := testHistory(t, now)
	jobs := []Job{{Name: "nightly", Schedule: "30 2 * * *", MaxAge: 3 * time.Hour}, {Name: "new", Schedule: "@hourly", MaxAge: time.Hour}, {Name: "free", Schedule: "@daily"}}
	out, err := CheckAll(jobs, h, now)
	if err != nil || len(out) != 3 {
		t.Fatalf("%+v, %v", out, err)
	}
	if !out[0].OK || out[0].LastStatus != StatusFailed || out[1].OK || out[1].Reason != "never succeeded" || !out[2].OK {
		t.Errorf("freshness: %+v", out)
	}
	if err := Stale(out); !errors.Is(err, ErrStale) {
		t.Errorf("Stale: %v", err)
	}
	if out, err := CheckAll(nil, h, now); err != nil || out == nil || Stale(out) != nil {
		t.Errorf("no jobs: %v, %v; want an empty, fresh list", out, err)
	}
	// A history that cannot be read (here a directory) fails the check:
	// monitoring must not see "ok".
	if err := os.Mkdir(filepath.Join(h.Dir, "free.jsonl"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckAll(jobs, h, now); err == nil {
		t.Error("an unreadable history passed")
	}
}
