package schedule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Scheduler runs jobs on their cron schedules (robfig/cron) inside the
// daemon.
type Scheduler struct {
	r   *Runner
	ctx context.Context

	// loadMu serializes Load and Stop as a whole: the swap of the cron,
	// the stop of the old one and the start of the new one. Two loads
	// interleaved there could leave a cron running that nothing refers to
	// (and so nothing stops), firing jobs twice.
	loadMu  sync.Mutex
	stopped bool

	mu      sync.Mutex // guards c and entries for readers (Next)
	c       *cron.Cron
	entries map[string]cron.EntryID
	wg      sync.WaitGroup
}

// NewScheduler returns a stopped scheduler; runs use ctx (cancelling it
// interrupts running backups, which remove their partial data).
func NewScheduler(ctx context.Context, r *Runner) *Scheduler {
	return &Scheduler{r: r, ctx: ctx}
}

// Start validates jobs, schedules them, and runs once at start each
// catch-up job whose last run is older than its latest scheduled time.
func (s *Scheduler) Start(jobs []Job) error {
	if err := s.Load(jobs); err != nil {
		return err
	}
	now := s.r.now()
	for _, j := range jobs {
		if !j.CatchUp || j.System {
			continue
		}
		recs, err := s.r.History.Read(j.Name)
		if err != nil || len(recs) == 0 {
			continue
		}
		sched, err := j.Parse()
		if err != nil {
			continue
		}
		last := recs[len(recs)-1].Started
		if due := sched.Next(last); !due.IsZero() && due.Before(now) {
			s.r.log().Info("catching up a run missed while the daemon was down", "job", j.Name, "was_due", due)
			s.launch(j, "catch-up", 0)
		}
	}
	return nil
}

// Load replaces the scheduled jobs (a config reload).
func (s *Scheduler) Load(jobs []Job) error {
	if err := ValidateAll(jobs); err != nil {
		return err
	}
	c := cron.New(cron.WithParser(parser))
	entries := map[string]cron.EntryID{}
	for _, j := range jobs {
		j := j
		if j.System {
			s.r.log().Info("job left to system cron or systemd", "job", j.Name)
			continue
		}
		id, err := c.AddFunc(j.Spec(), func() { s.launch(j, "schedule", j.Delay()) })
		if err != nil {
			return err
		}
		entries[j.Name] = id
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.stopped {
		return errors.New("scheduler stopped")
	}
	s.mu.Lock()
	old := s.c
	s.c, s.entries = c, entries
	s.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	c.Start()
	s.r.log().Info("schedules loaded", "jobs", len(jobs))
	return nil
}

// running reports how many crons run (for tests: one at most).
func (s *Scheduler) running() *cron.Cron {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

func (s *Scheduler) launch(j Job, trigger string, delay time.Duration) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return
			}
		}
		s.r.Run(s.ctx, j, trigger)
	}()
}

// Next returns each job's next scheduled run.
func (s *Scheduler) Next() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Time{}
	if s.c == nil {
		return out
	}
	for name, id := range s.entries {
		out[name] = s.c.Entry(id).Next
	}
	return out
}

// Stop stops scheduling and waits for running jobs (cancel the context
// given to NewScheduler to interrupt them).
func (s *Scheduler) Stop() {
	s.loadMu.Lock()
	s.stopped = true
	s.mu.Lock()
	c := s.c
	s.mu.Unlock()
	s.loadMu.Unlock()
	if c != nil {
		<-c.Stop().Done()
	}
	s.wg.Wait()
}
