package schedule

import (
	"sort"
	"time"
)

// JobView is a job with its next run and its last runs (`schedule list`).
type JobView struct {
	Job
	Next        *time.Time `json:"next,omitempty"`
	LastRun     *Record    `json:"last_run,omitempty"`
	LastSuccess *Record    `json:"last_success,omitempty"`
}

// Views returns a view of each job at now, from the history in h. A
// history that cannot be read shows no last run.
func Views(jobs []Job, h *History, now time.Time) []JobView {
	views := make([]JobView, 0, len(jobs))
	for _, j := range jobs {
		v := JobView{Job: j}
		if s, err := j.Parse(); err == nil {
			n := s.Next(now)
			v.Next = &n
		}
		recs, _ := h.Read(j.Name)
		sum := Summarize(j.Name, recs, now)
		v.LastRun, v.LastSuccess = sum.LastRun, sum.LastSuccess
		views = append(views, v)
	}
	return views
}

// Runs returns the recorded runs of job (of every job with a history
// when job is ""), oldest first, only the last limit of them when limit
// is positive. A job with no record that is not among jobs is Find's
// error.
func Runs(h *History, jobs []Job, job string, limit int) ([]Record, error) {
	names := []string{job}
	if job == "" {
		var err error
		if names, err = h.Jobs(); err != nil {
			return nil, err
		}
	}
	all := []Record{}
	for _, n := range names {
		recs, err := h.Read(n)
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
	}
	if job != "" && len(all) == 0 {
		if _, err := Find(jobs, job); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Started.Before(all[j].Started) })
	if limit > 0 && len(all) > limit {
		all = all[len(all)-limit:]
	}
	return all, nil
}

// CheckAll is the freshness of every job at now (`schedule status`);
// Stale says whether it fails.
func CheckAll(jobs []Job, h *History, now time.Time) ([]Freshness, error) {
	out := make([]Freshness, 0, len(jobs))
	for _, j := range jobs {
		recs, err := h.Read(j.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, CheckFreshness(j.Name, j.MaxAge, recs, now))
	}
	return out, nil
}
