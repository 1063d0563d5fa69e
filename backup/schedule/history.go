package schedule

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Run statuses.
const (
	StatusSuccess = "success"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
)

// Record is one run of a job.
type Record struct {
	Job        string    `json:"job"`
	Trigger    string    `json:"trigger"` // schedule, catch-up, manual, cron
	Status     string    `json:"status"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	BackupID   string    `json:"backup_id,omitempty"`
	PlainBytes int64     `json:"plain_bytes,omitempty"`
	Stored     int64     `json:"stored_bytes,omitempty"`
	Pruned     []string  `json:"pruned,omitempty"`
	Error      string    `json:"error,omitempty"`
	Host       string    `json:"host,omitempty"`
}

// Duration of the run.
func (r Record) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// History keeps run records as JSON lines, one file per job
// (DIR/NAME.jsonl), appended and synced after every run. It is operational
// metadata (no secrets) and not authenticated.
type History struct{ Dir string }

func (h *History) path(job string) string { return filepath.Join(h.Dir, job+".jsonl") }

// Append records r.
func (h *History) Append(r Record) error {
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(h.path(r.Job), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// After a crash in the middle of a line, start a new one.
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			b = append([]byte{'\n'}, b...)
		}
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read returns the records of job, oldest first. A torn last line (a crash
// while appending) is skipped.
func (h *History) Read(job string) ([]Record, error) {
	f, err := os.Open(h.path(job))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Job == job {
			out = append(out, r)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("failed to read the history of %s: %w", job, err)
	}
	return out, nil
}

// Jobs lists the jobs that have a history.
func (h *History) Jobs() ([]string, error) {
	ents, err := os.ReadDir(h.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Summary is what monitoring wants to know about a job.
type Summary struct {
	Job         string    `json:"job"`
	Runs        int       `json:"runs"`
	Failures    int       `json:"failures"`
	Skipped     int       `json:"skipped"`
	LastRun     *Record   `json:"last_run,omitempty"`
	LastSuccess *Record   `json:"last_success,omitempty"`
	Checked     time.Time `json:"checked"`
}

// Summarize reduces a job's records.
func Summarize(job string, recs []Record, now time.Time) Summary {
	s := Summary{Job: job, Checked: now}
	for i := range recs {
		r := recs[i]
		switch r.Status {
		case StatusSuccess:
			s.LastSuccess = &r
		case StatusFailed:
			s.Failures++
		case StatusSkipped:
			s.Skipped++
		}
		s.Runs++
		s.LastRun = &r
	}
	return s
}
