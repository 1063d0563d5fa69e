package schedule

import "sync/atomic"

// JobList holds the daemon's current jobs: a reload (SIGHUP, or the job
// API after `schedule add`) replaces the list while scheduler goroutines
// read it. The list itself is never modified after Store.
type JobList struct{ p atomic.Pointer[[]Job] }

// Load returns the current jobs (nil before the first Store).
func (l *JobList) Load() []Job {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}

// Store replaces the jobs with a copy of jobs.
func (l *JobList) Store(jobs []Job) {
	c := append([]Job(nil), jobs...)
	l.p.Store(&c)
}
