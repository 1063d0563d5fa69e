package schedule

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/backup"
)

func TestAddRemoveJob(t *testing.T) {
	file := filepath.Join(t.TempDir(), "etc", "mysecure.yaml")
	nightly := Job{Name: "nightly", Schedule: "30 2 * * *"}
	if err := AddJob(file, nightly, false, nil); err != nil {
		t.Fatalf("add to a missing file: %v", err)
	}
	if err := os.WriteFile(file, []byte("# kept\nstore: /srv/store\n"+mustRead(t, file)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := AddJob(file, Job{Name: "hourly", Schedule: "@hourly"}, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := AddJob(file, Job{Name: "nightly", Schedule: "0 3 * * *"}, false, nil); !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "a job named nightly exists in "+file) {
		t.Fatalf("add of an existing name: %v", err)
	}
	// Replace: a job handed to system cron (system: true in the
	// configuration in force) stays there.
	existing := []Job{{Name: "nightly", Schedule: "30 2 * * *", System: true}}
	if err := AddJob(file, Job{Name: "nightly", Schedule: "0 3 * * *"}, true, existing); err != nil {
		t.Fatal(err)
	}
	jobs, err := ConfigJobs(file)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("after the edits: %+v, %v", jobs, err)
	}
	if jobs[0].Name != "nightly" || jobs[0].Schedule != "0 3 * * *" || !jobs[0].System || jobs[1].Name != "hourly" || jobs[1].System {
		t.Fatalf("after the replace: %+v", jobs)
	}
	if body := mustRead(t, file); !strings.HasPrefix(body, "# kept\nstore: /srv/store\n") {
		t.Fatalf("the rest of the file was not kept:\n%s", body)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode after the edits: %v %v", fi.Mode(), err)
	}

	if err := RemoveJob(file, "nightly"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveJob(file, "nightly"); !errors.Is(err, backup.ErrNotFound) || !strings.Contains(err.Error(), "job nightly is not in "+file) {
		t.Fatalf("remove of a missing job: %v", err)
	}
	if jobs, err := ConfigJobs(file); err != nil || len(jobs) != 1 || jobs[0].Name != "hourly" {
		t.Fatalf("after the remove: %+v, %v", jobs, err)
	}
}

func TestMarkSystem(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mysecure.yaml")
	for _, n := range []string{"a", "b", "c"} {
		if err := AddJob(file, Job{Name: n, Schedule: "@daily"}, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	system := func() string {
		jobs, err := ConfigJobs(file)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, j := range jobs {
			if j.System {
				s = append(s, j.Name)
			}
		}
		return strings.Join(s, ",")
	}
	if err := MarkSystem(file, map[string]bool{"a": true, "c": true}, true); err != nil || system() != "a,c" {
		t.Fatalf("mark a and c: %q, %v", system(), err)
	}
	if err := MarkSystem(file, nil, true); err != nil || system() != "a,b,c" {
		t.Fatalf("mark all: %q, %v", system(), err)
	}
	if err := MarkSystem(file, nil, false); err != nil || system() != "" {
		t.Fatalf("clear all: %q, %v", system(), err)
	}
}

func TestNewInvocation(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	if _, err := NewInvocation("", "/var/log/cron.log", ""); !errors.Is(err, ErrNoConfigFile) {
		t.Fatalf("no config file: %v", err)
	}
	inv, err := NewInvocation("/etc/mysecure/mysecure.yaml", "/var/log/cron.log", "")
	if err != nil || inv.Binary != exe || inv.Config != "/etc/mysecure/mysecure.yaml" || inv.Log != "/var/log/cron.log" || inv.Extra != nil {
		t.Fatalf("%+v, %v; want binary %s", inv, err, exe)
	}
	wd, _ := os.Getwd()
	inv, err = NewInvocation("/etc/mysecure/mysecure.yaml", "", "keys/boot.key")
	if err != nil || strings.Join(inv.Extra, " ") != "--keyfile "+filepath.Join(wd, "keys/boot.key") {
		t.Fatalf("relative key file: %+v, %v; want it absolute", inv.Extra, err)
	}
}

func mustRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
