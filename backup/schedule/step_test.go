package schedule

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStepApplyCheckUndo(t *testing.T) {
	ctx := context.Background()
	cfg := filepath.Join(t.TempDir(), "mysecure.yaml")
	os.WriteFile(cfg, []byte("# keep me\nmount: /x\nschedules:\n  - name: other\n    schedule: '@daily'\n"), 0o600)
	s := &Step{ConfigFile: cfg, Job: Job{Name: "nightly", Schedule: "30 2 * * *", MaxAge: 26 * time.Hour, Retention: Retention{KeepDaily: 7}}}
	done, drift, err := s.Check(ctx)
	if err != nil || done || !strings.Contains(drift, "schedule missing: nightly") {
		t.Fatalf("check before: %v %q %v", done, drift, err)
	}
	if err := s.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if done, drift, err = s.Check(ctx); err != nil || !done || drift != "" {
		t.Fatalf("check after: %v %q %v", done, drift, err)
	}
	jobs, err := ConfigJobs(cfg)
	if err != nil || len(jobs) != 2 || jobs[1].MaxAge != 26*time.Hour || jobs[1].Retention.KeepDaily != 7 {
		t.Fatalf("jobs: %+v %v", jobs, err)
	}
	if err := s.Apply(ctx); err == nil {
		t.Fatal("a second add of the same job succeeded")
	}
	if err := s.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	if strings.Contains(string(b), "nightly") || !strings.Contains(string(b), "# keep me") || !strings.Contains(string(b), "name: other") {
		t.Fatalf("after undo:\n%s", b)
	}
	bad := &Step{ConfigFile: cfg, Job: Job{Name: "x", Schedule: "61 * * * *"}}
	if _, _, err := bad.Check(ctx); err == nil {
		t.Fatal("an invalid schedule checked")
	}
}
