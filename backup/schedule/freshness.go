package schedule

import (
	"errors"
	"fmt"
	"time"
)

// ErrStale is wrapped by Stale's error when a job with a max age has not
// succeeded within it (or never): `schedule status` exits 13 on it, and
// monitoring reads that.
var ErrStale = errors.New("stale backups")

// Freshness is the staleness check of one job (`schedule status`).
type Freshness struct {
	Job         string     `json:"job"`
	OK          bool       `json:"ok"`
	Reason      string     `json:"reason,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	AgeSeconds  float64    `json:"age_seconds,omitempty"`
	MaxAge      string     `json:"max_age,omitempty"`
	LastStatus  string     `json:"last_status,omitempty"`
}

// CheckFreshness judges a job from its run records at now: it is stale
// (OK false, with a Reason) when maxAge is set and the job never
// succeeded, or its last success is older than maxAge. A job without a
// max age is never stale.
func CheckFreshness(job string, maxAge time.Duration, recs []Record, now time.Time) Freshness {
	sum := Summarize(job, recs, now)
	st := Freshness{Job: job, OK: true}
	if maxAge > 0 {
		st.MaxAge = maxAge.String()
	}
	if sum.LastRun != nil {
		st.LastStatus = sum.LastRun.Status
	}
	if sum.LastSuccess != nil {
		t := sum.LastSuccess.Finished
		st.LastSuccess = &t
		st.AgeSeconds = now.Sub(t).Seconds()
	}
	switch {
	case maxAge == 0:
	case sum.LastSuccess == nil:
		st.OK, st.Reason = false, "never succeeded"
	case now.Sub(*st.LastSuccess) > maxAge:
		st.OK, st.Reason = false, fmt.Sprintf("last success %s ago, more than %s", now.Sub(*st.LastSuccess).Round(time.Second), maxAge)
	}
	return st
}

// Stale returns an error wrapping ErrStale when any check is not OK, nil
// otherwise.
func Stale(checks []Freshness) error {
	n := 0
	for _, c := range checks {
		if !c.OK {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("%w: %d job(s) without a recent successful backup", ErrStale, n)
	}
	return nil
}
