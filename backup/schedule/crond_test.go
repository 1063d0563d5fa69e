package schedule

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFindCron(t *testing.T) {
	dir := t.TempDir()
	bin, proc := filepath.Join(dir, "sbin"), filepath.Join(dir, "proc")
	for _, d := range []string{bin, filepath.Join(proc, "1"), filepath.Join(proc, "42"), filepath.Join(proc, "self")} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(proc, "1", "comm"), []byte("init\n"), 0o644)
	if st := FindCron(proc, []string{bin}); st.Installed != "" || st.Running != "" {
		t.Fatalf("nothing installed or running: %+v", st)
	}
	os.WriteFile(filepath.Join(bin, "cron"), []byte("#!/bin/sh\n"), 0o755)
	if st := FindCron(proc, []string{bin}); st.Installed != filepath.Join(bin, "cron") || st.Running != "" {
		t.Fatalf("installed, not running: %+v", st)
	}
	os.WriteFile(filepath.Join(proc, "42", "comm"), []byte("crond\n"), 0o644)
	if st := FindCron(proc, []string{bin}); st.Running != "crond" {
		t.Fatalf("running: %+v", st)
	}
}
