package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/internal/trust"
)

// BackupFunc runs one backup.
type BackupFunc func(ctx context.Context, o backup.Options) (*backup.Manifest, error)

// PruneFunc applies a retention policy to one job's backups.
type PruneFunc func(ctx context.Context, o backup.PruneOptions) ([]backup.PruneDecision, error)

// Runner runs jobs: lock, hooks, backup, retention, history, metrics,
// webhook. The daemon's scheduler and `mysecure backup --job` share it
// (and, through the store, the locks and the history).
type Runner struct {
	Backup  BackupFunc
	Prune   PruneFunc
	History *History
	LockDir string
	// Metrics is the textfile to rewrite after each run ("" for none);
	// Jobs lists the jobs it reports.
	Metrics string
	Jobs    func() []Job
	Log     *slog.Logger
	HTTP    *http.Client
	Now     func() time.Time
	// HookSource is the config file the jobs' pre- and post-hooks come
	// from: hooks run as root through /bin/sh, so they run only while that
	// file (and its directory) is root's and nobody else can write it. ""
	// means the jobs did not come from a file (tests, flags).
	HookSource string
}

// StoreHistory is the history of the jobs of the volume in store
// (STORE/ms.jobs), the one the daemon and `backup --job` share.
func StoreHistory(store string) *History {
	return &History{Dir: filepath.Join(store, "ms.jobs")}
}

// InStore returns a copy of r with the history and the job locks of the
// volume in store (StoreHistory, STORE/ms.locks): the daemon's scheduler
// and `backup --job` share them, so that one lock and one history hold
// whichever of them runs a job.
func (r Runner) InStore(store string) *Runner {
	r.History = StoreHistory(store)
	r.LockDir = filepath.Join(store, "ms.locks")
	return &r
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

// lockJob takes the job's lock (a flock the kernel releases when its
// holder dies). With wait it waits for it, else it fails with
// backup.ErrBusy.
func (r *Runner) lockJob(ctx context.Context, name string, wait bool) (func(), error) {
	if err := os.MkdirAll(r.LockDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(r.LockDir, "job-"+name+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			// Who holds it, for people looking.
			f.Truncate(0)
			fmt.Fprintf(f, "%d\n", os.Getpid())
			return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if !wait {
			f.Close()
			return nil, fmt.Errorf("%w: job %s is already running", backup.ErrBusy, name)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Run runs job once. trigger says why (schedule, catch-up, manual, cron).
// The returned record is also in the history; err is set unless the run
// succeeded.
func (r *Runner) Run(ctx context.Context, job Job, trigger string) (Record, error) {
	log := r.log().With("job", job.Name, "trigger", trigger)
	host, _ := os.Hostname()
	rec := Record{Job: job.Name, Trigger: trigger, Started: r.now(), Host: host}
	unlock, err := r.lockJob(ctx, job.Name, job.Overlap == "queue")
	if err != nil {
		rec.Finished = r.now()
		if errors.Is(err, backup.ErrBusy) {
			rec.Status, rec.Error = StatusSkipped, err.Error()
			log.Warn("run skipped: the previous run still holds the job's lock")
		} else {
			rec.Status, rec.Error = StatusFailed, err.Error()
		}
		r.finish(ctx, job, rec, log)
		return rec, err
	}
	defer unlock()
	rec.Started = r.now()
	log.Info("job started")

	runErr := r.hook(ctx, job, "pre-hook", job.PreHook, rec)
	var m *backup.Manifest
	if runErr == nil {
		m, runErr = r.Backup(ctx, job.Options())
	}
	if runErr == nil {
		rec.BackupID, rec.PlainBytes, rec.Stored = m.ID, m.PlainBytes, m.StoredBytes
		// Retention only after a successful run: a failing job never
		// deletes the backups that are left.
		if p, ok := job.Retention.Policy(); ok && r.Prune != nil {
			targets := job.Targets
			if len(targets) == 0 {
				targets = []string{""}
			}
			// Each target keeps what the policy says of its own catalog
			// (an object lock may keep more there).
			for _, t := range targets {
				decs, err := r.Prune(ctx, backup.PruneOptions{Policy: p, Job: job.Name, Location: job.Timezone, Target: t})
				for _, d := range decs {
					if d.Deleted {
						rec.Pruned = append(rec.Pruned, d.ID)
					}
				}
				if err != nil {
					log.Error("retention failed", "target", t, "err", err)
				}
			}
		}
	}
	rec.Finished = r.now()
	if runErr != nil {
		rec.Status, rec.Error = StatusFailed, oneLine(runErr.Error())
	} else {
		rec.Status = StatusSuccess
	}
	if err := r.hook(ctx, job, "post-hook", job.PostHook, rec); err != nil {
		log.Error("post-hook failed", "err", err)
	}
	r.finish(ctx, job, rec, log)
	return rec, runErr
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// finish records the run, rewrites the metrics and calls the webhook.
func (r *Runner) finish(ctx context.Context, job Job, rec Record, log *slog.Logger) {
	if err := r.History.Append(rec); err != nil {
		log.Error("failed to record the run", "err", err)
	}
	switch rec.Status {
	case StatusSuccess:
		log.Info("job succeeded", "backup", rec.BackupID, "stored_bytes", rec.Stored, "seconds", rec.Duration().Seconds())
	case StatusFailed:
		log.Error("job failed", "err", rec.Error)
	}
	if r.Metrics != "" {
		if err := r.WriteMetrics(); err != nil {
			log.Error("failed to write the metrics textfile", "path", r.Metrics, "err", err)
		}
	}
	if job.Webhook != "" && (rec.Status != StatusSuccess || job.WebhookOnSuccess) {
		if err := r.webhook(ctx, job.Webhook, rec); err != nil {
			log.Error("webhook failed", "url", job.Webhook, "err", err)
		}
	}
}

// WriteMetrics rewrites the textfile from the history of every job.
func (r *Runner) WriteMetrics() error {
	names := map[string]bool{}
	if r.Jobs != nil {
		for _, j := range r.Jobs() {
			names[j.Name] = true
		}
	}
	hist, _ := r.History.Jobs()
	for _, n := range hist {
		names[n] = true
	}
	var sums []Summary
	for _, n := range sortedKeys(names) {
		recs, err := r.History.Read(n)
		if err != nil {
			return err
		}
		sums = append(sums, Summarize(n, recs, r.now()))
	}
	return WriteMetrics(r.Metrics, sums)
}

// WebhookPayload is what a webhook receives.
type WebhookPayload struct {
	Event string `json:"event"` // "backup.failed", "backup.succeeded", "backup.skipped"
	Record
}

func (r *Runner) webhook(ctx context.Context, url string, rec Record) error {
	ev := "backup." + map[string]string{StatusSuccess: "succeeded", StatusFailed: "failed", StatusSkipped: "skipped"}[rec.Status]
	b, err := json.Marshal(WebhookPayload{Event: ev, Record: rec})
	if err != nil {
		return err
	}
	hc := r.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "mysecure")
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return nil
			}
			err = fmt.Errorf("answered %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
	return last
}

// hook runs a shell command with the run's facts in its environment.
func (r *Runner) hook(ctx context.Context, job Job, what, command string, rec Record) error {
	if command == "" {
		return nil
	}
	if err := CheckHookSource(r.HookSource); err != nil {
		return fmt.Errorf("%s of job %s not run: %w", what, job.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	// umask 022: the daemon itself runs with umask 0.
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "umask 022\n"+command)
	cmd.Env = append(os.Environ(),
		"MYSECURE_JOB="+job.Name, "MYSECURE_HOOK="+what, "MYSECURE_STATUS="+rec.Status,
		"MYSECURE_BACKUP_ID="+rec.BackupID, "MYSECURE_ERROR="+rec.Error)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 400 {
			msg = msg[len(msg)-400:]
		}
		return fmt.Errorf("%s %q failed (%v): %s", what, command, err, msg)
	}
	return nil
}

// Delay is the random jitter before a scheduled run.
func (j *Job) Delay() time.Duration {
	if j.Jitter <= 0 {
		return 0
	}
	return rand.N(j.Jitter)
}

// ErrUnsafeHookSource: hooks from a file others can change are not run.
var ErrUnsafeHookSource = errors.New("unsafe hook source")

// CheckHookSource refuses a config file that another user can change
// (trust.CheckFile: owner, mode, directories, links): whoever can change
// it could make the root daemon run any command through a hook.
func CheckHookSource(path string) error {
	if path == "" {
		return nil
	}
	if err := trust.CheckFile(path); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsafeHookSource, err)
	}
	return nil
}
