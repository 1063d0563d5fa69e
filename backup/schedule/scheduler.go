package schedule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Clock is the scheduler's time source: the system clock, or a fake that
// tests advance by hand (no test waits for real seconds to pass).
type Clock interface {
	Now() time.Time
	// After delivers once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Scheduler runs jobs on their cron schedules inside the daemon. The
// schedules are parsed by robfig/cron; the waiting between runs is done
// here, on the Clock, as cron.Cron does it: each job's next time is
// computed from the time it last fired (or the load).
type Scheduler struct {
	r   *Runner
	ctx context.Context
	// Clock is the time source; the system clock when nil. Set it before
	// Start.
	Clock Clock

	// loadMu serializes Load and Stop as a whole: the swap of the loop,
	// the stop of the old one and the start of the new one. Two loads
	// interleaved there could leave a loop running that nothing refers
	// to (and so nothing stops), firing jobs twice.
	loadMu  sync.Mutex
	stopped bool
	loop    *loop // the running loop, or nil

	mu sync.Mutex // guards the next times of the loop's entries (Next)
	wg sync.WaitGroup
}

// entry is one scheduled job.
type entry struct {
	job   Job
	sched cron.Schedule
	next  time.Time
}

// loop fires one set of entries until stopped.
type loop struct {
	entries []*entry
	stop    chan struct{}
	done    chan struct{}
}

// NewScheduler returns a stopped scheduler; runs use ctx (cancelling it
// interrupts running backups, which remove their partial data).
func NewScheduler(ctx context.Context, r *Runner) *Scheduler {
	return &Scheduler{r: r, ctx: ctx}
}

func (s *Scheduler) clock() Clock {
	if s.Clock != nil {
		return s.Clock
	}
	return systemClock{}
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
	l := &loop{stop: make(chan struct{}), done: make(chan struct{})}
	for _, j := range jobs {
		if j.System {
			s.r.log().Info("job left to system cron or systemd", "job", j.Name)
			continue
		}
		sched, err := j.Parse()
		if err != nil {
			return err
		}
		l.entries = append(l.entries, &entry{job: j, sched: sched})
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.stopped {
		return errors.New("scheduler stopped")
	}
	if s.loop != nil {
		s.loop.halt()
	}
	now := s.clock().Now()
	s.mu.Lock()
	for _, e := range l.entries {
		e.next = e.sched.Next(now)
	}
	s.mu.Unlock()
	s.loop = l
	go s.run(l)
	s.r.log().Info("schedules loaded", "jobs", len(jobs))
	return nil
}

// halt stops l and waits until it fires no more.
func (l *loop) halt() {
	close(l.stop)
	<-l.done
}

// run waits for the earliest entry, launches every entry that is due and
// computes their next times, until l is stopped.
func (s *Scheduler) run(l *loop) {
	defer close(l.done)
	clk := s.clock()
	for {
		var wake <-chan time.Time
		s.mu.Lock()
		var first time.Time
		for _, e := range l.entries {
			if !e.next.IsZero() && (first.IsZero() || e.next.Before(first)) {
				first = e.next
			}
		}
		s.mu.Unlock()
		if !first.IsZero() {
			wake = clk.After(first.Sub(clk.Now()))
		}
		select {
		case <-l.stop:
			return
		case <-wake:
		}
		now := clk.Now()
		s.mu.Lock()
		var due []Job
		for _, e := range l.entries {
			if !e.next.IsZero() && !e.next.After(now) {
				due = append(due, e.job)
				e.next = e.sched.Next(now)
			}
		}
		s.mu.Unlock()
		for _, j := range due {
			s.launch(j, "schedule", j.Delay())
		}
	}
}

func (s *Scheduler) launch(j Job, trigger string, delay time.Duration) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if delay > 0 {
			select {
			case <-s.clock().After(delay):
			case <-s.ctx.Done():
				return
			}
		}
		s.r.Run(s.ctx, j, trigger)
	}()
}

// Next returns each job's next scheduled run.
func (s *Scheduler) Next() map[string]time.Time {
	s.loadMu.Lock()
	l := s.loop
	s.loadMu.Unlock()
	out := map[string]time.Time{}
	if l == nil {
		return out
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range l.entries {
		out[e.job.Name] = e.next
	}
	return out
}

// Stop stops scheduling and waits for running jobs (cancel the context
// given to NewScheduler to interrupt them).
func (s *Scheduler) Stop() {
	s.loadMu.Lock()
	s.stopped = true
	if s.loop != nil {
		s.loop.halt()
	}
	s.loadMu.Unlock()
	s.wg.Wait()
}
