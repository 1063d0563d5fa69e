package schedule

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteMetrics writes the Prometheus textfile of the jobs' summaries to
// path atomically (a temporary file renamed over it), for node_exporter's
// textfile collector.
func WriteMetrics(path string, sums []Summary) error {
	var b strings.Builder
	metric := func(name, typ, help string, value func(Summary) (float64, bool)) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, s := range sums {
			if v, ok := value(s); ok {
				fmt.Fprintf(&b, "%s{job=%q} %g\n", name, s.Job, v)
			}
		}
	}
	metric("mysecure_backup_last_success_timestamp_seconds", "gauge", "Unix time at which the job's last successful backup finished (0: never).",
		func(s Summary) (float64, bool) {
			if s.LastSuccess == nil {
				return 0, true
			}
			return float64(s.LastSuccess.Finished.UnixMilli()) / 1000, true
		})
	metric("mysecure_backup_last_duration_seconds", "gauge", "Duration of the job's last run.",
		func(s Summary) (float64, bool) {
			if s.LastRun == nil {
				return 0, false
			}
			return s.LastRun.Duration().Seconds(), true
		})
	metric("mysecure_backup_last_size_bytes", "gauge", "Stored size of the job's last successful backup.",
		func(s Summary) (float64, bool) {
			if s.LastSuccess == nil {
				return 0, false
			}
			return float64(s.LastSuccess.Stored), true
		})
	metric("mysecure_backup_last_run_success", "gauge", "1 if the job's last run succeeded, 0 if it failed or was skipped.",
		func(s Summary) (float64, bool) {
			if s.LastRun == nil {
				return 0, false
			}
			if s.LastRun.Status == StatusSuccess {
				return 1, true
			}
			return 0, true
		})
	metric("mysecure_backup_failures_total", "counter", "Failed runs of the job.",
		func(s Summary) (float64, bool) { return float64(s.Failures), true })
	metric("mysecure_backup_skipped_total", "counter", "Runs skipped because the previous run still held the job's lock.",
		func(s Summary) (float64, bool) { return float64(s.Skipped), true })
	metric("mysecure_backup_runs_total", "counter", "Runs of the job.",
		func(s Summary) (float64, bool) { return float64(s.Runs), true })

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
