package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckFreshness(t *testing.T) {
	now := time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration, status string) Record {
		return Record{Job: "nightly", Status: status, Started: now.Add(-ago - time.Minute), Finished: now.Add(-ago)}
	}
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
		recs   []Record
		ok     bool
		reason string
		last   string
	}{
		{"no max age, never ran", 0, nil, true, "", ""},
		{"no max age, old failure", 0, []Record{at(72*time.Hour, StatusFailed)}, true, "", StatusFailed},
		{"never ran", 24 * time.Hour, nil, false, "never succeeded", ""},
		{"only failures", 24 * time.Hour, []Record{at(time.Hour, StatusFailed)}, false, "never succeeded", StatusFailed},
		{"recent success", 24 * time.Hour, []Record{at(2*time.Hour, StatusSuccess)}, true, "", StatusSuccess},
		{"success then failure", 24 * time.Hour, []Record{at(3*time.Hour, StatusSuccess), at(time.Hour, StatusFailed)}, true, "", StatusFailed},
		{"old success", 24 * time.Hour, []Record{at(25*time.Hour, StatusSuccess)}, false, "last success 25h0m0s ago, more than 24h0m0s", StatusSuccess},
		{"exactly max age", 24 * time.Hour, []Record{at(24*time.Hour, StatusSuccess)}, true, "", StatusSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := CheckFreshness("nightly", tc.maxAge, tc.recs, now)
			if f.Job != "nightly" || f.OK != tc.ok || f.Reason != tc.reason || f.LastStatus != tc.last {
				t.Fatalf("got %+v", f)
			}
			if (tc.maxAge > 0) != (f.MaxAge != "") {
				t.Fatalf("MaxAge %q for max age %v", f.MaxAge, tc.maxAge)
			}
			if f.LastSuccess != nil && f.AgeSeconds != now.Sub(*f.LastSuccess).Seconds() {
				t.Fatalf("AgeSeconds %v", f.AgeSeconds)
			}
		})
	}
}

func TestStale(t *testing.T) {
	if err := Stale([]Freshness{{Job: "a", OK: true}}); err != nil {
		t.Fatal(err)
	}
	if err := Stale(nil); err != nil {
		t.Fatal(err)
	}
	err := Stale([]Freshness{{Job: "a", OK: true}, {Job: "b"}, {Job: "c"}})
	if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "2 job(s)") {
		t.Fatalf("got %v", err)
	}
}
