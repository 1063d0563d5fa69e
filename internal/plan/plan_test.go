package plan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fileStep writes a file; it is done when the file has the content.
type fileStep struct {
	path, content string
	failApply     bool
	failUndo      bool
}

func (s *fileStep) ID() string       { return "file:" + s.path }
func (s *fileStep) Describe() string { return "write " + filepath.Base(s.path) }
func (s *fileStep) Check(context.Context) (bool, string, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, filepath.Base(s.path) + " is missing", nil
	}
	if err != nil {
		return false, "", err
	}
	if string(b) != s.content {
		return false, filepath.Base(s.path) + " differs", nil
	}
	return true, "", nil
}
func (s *fileStep) Apply(context.Context) error {
	if s.failApply {
		return errors.New("disk on fire")
	}
	return os.WriteFile(s.path, []byte(s.content), 0o644)
}
func (s *fileStep) Undo(context.Context) error {
	if s.failUndo {
		return errors.New("cannot undo")
	}
	return os.Remove(s.path)
}

func steps(dir string, n int) []*fileStep {
	var out []*fileStep
	for i := range n {
		out = append(out, &fileStep{path: filepath.Join(dir, fmt.Sprintf("f%d", i)), content: fmt.Sprintf("content %d", i)})
	}
	return out
}

func asSteps(fs []*fileStep) []Step {
	var out []Step
	for _, f := range fs {
		out = append(out, f)
	}
	return out
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestApplyIdempotent(t *testing.T) {
	dir := t.TempDir()
	fs := steps(dir, 3)
	var events []Event
	r := &Runner{StatePath: filepath.Join(dir, "state", "plan.json"), Report: func(e Event) { events = append(events, e) }}
	res, err := r.Apply(context.Background(), "p", asSteps(fs))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 3 || len(res.Unchanged) != 0 {
		t.Fatalf("first apply: %+v", res)
	}
	for _, f := range fs {
		if !exists(f.path) {
			t.Fatalf("%s not written", f.path)
		}
	}
	st, err := LoadState(r.StatePath)
	if err != nil || st.Status != StatusDone || len(st.Applied) != 3 {
		t.Fatalf("state after apply: %+v %v", st, err)
	}
	events = nil
	res, err = r.Apply(context.Background(), "p", asSteps(fs))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 || len(res.Unchanged) != 3 {
		t.Fatalf("second apply changed something: %+v", res)
	}
	for _, e := range events {
		if e.Kind != EventUnchanged {
			t.Fatalf("second apply reported %+v", e)
		}
	}
	findings, err := Check(context.Background(), asSteps(fs))
	if err != nil || len(Drifted(findings)) != 0 {
		t.Fatalf("check after apply: %+v %v", findings, err)
	}
	// Drift: one file changed behind the plan's back.
	os.WriteFile(fs[1].path, []byte("edited"), 0o644)
	findings, _ = Check(context.Background(), asSteps(fs))
	d := Drifted(findings)
	if len(d) != 1 || d[0].Drift != "f1 differs" || d[0].Step != "write f1" {
		t.Fatalf("drift: %+v", d)
	}
}

func TestApplyRollsBackOnFailure(t *testing.T) {
	dir := t.TempDir()
	fs := steps(dir, 4)
	// f0 is in place before the run: the rollback must leave it alone.
	os.WriteFile(fs[0].path, []byte(fs[0].content), 0o644)
	fs[2].failApply = true
	var kinds []EventKind
	r := &Runner{StatePath: filepath.Join(dir, "plan.json"), Report: func(e Event) { kinds = append(kinds, e.Kind) }}
	_, err := r.Apply(context.Background(), "p", asSteps(fs))
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("want a StepError, got %v", err)
	}
	if se.Step != "write f2" || se.RollbackErr != nil || !slices.Equal(se.Undone, []string{"write f1"}) {
		t.Fatalf("step error: %+v", se)
	}
	if !exists(fs[0].path) || exists(fs[1].path) || exists(fs[2].path) || exists(fs[3].path) {
		t.Fatal("rollback left the wrong files")
	}
	want := []EventKind{EventUnchanged, EventApplied, EventFailed, EventUndone}
	if !slices.Equal(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	st, _ := LoadState(r.StatePath)
	if st.Status != StatusRolledBack || len(st.Applied) != 0 || st.Error != "disk on fire" {
		t.Fatalf("state: %+v", st)
	}
}

func TestUndoFailureKeptInState(t *testing.T) {
	dir := t.TempDir()
	fs := steps(dir, 3)
	fs[0].failUndo = true
	fs[2].failApply = true
	r := &Runner{StatePath: filepath.Join(dir, "plan.json")}
	_, err := r.Apply(context.Background(), "p", asSteps(fs))
	var se *StepError
	if !errors.As(err, &se) || se.RollbackErr == nil {
		t.Fatalf("want a rollback error, got %v", err)
	}
	st, _ := LoadState(r.StatePath)
	if st.Status != StatusRollbackFailed || !slices.Equal(st.Applied, []string{fs[0].ID()}) {
		t.Fatalf("state: %+v", st)
	}
	// Another plan may not run over it.
	if _, err := r.Apply(context.Background(), "other", asSteps(fs[:1])); !errors.Is(err, ErrPending) {
		t.Fatalf("another plan over an unfinished one: %v", err)
	}
	// Rollback, once undo works.
	fs[0].failUndo = false
	undone, err := r.Rollback(context.Background(), "p", asSteps(fs))
	if err != nil || !slices.Equal(undone, []string{"write f0"}) || exists(fs[0].path) {
		t.Fatalf("rollback: %v %v", undone, err)
	}
	st, _ = LoadState(r.StatePath)
	if st.Status != StatusRolledBack {
		t.Fatalf("state after rollback: %+v", st)
	}
}

// A run killed half way leaves "running" and its applied steps; the next
// apply resumes it, and if that fails, undoes the earlier run's steps too.
func TestResumeAfterCrash(t *testing.T) {
	dir := t.TempDir()
	fs := steps(dir, 3)
	r := &Runner{StatePath: filepath.Join(dir, "plan.json")}
	// What a killed run leaves behind: f0 applied and recorded.
	os.WriteFile(fs[0].path, []byte(fs[0].content), 0o644)
	if err := r.save(&State{Plan: "p", Status: StatusRunning, Applied: []string{fs[0].ID()}}); err != nil {
		t.Fatal(err)
	}
	fs[2].failApply = true
	res, err := r.Apply(context.Background(), "p", asSteps(fs))
	var se *StepError
	if !errors.As(err, &se) || !res.Resumed {
		t.Fatalf("resume: %+v %v", res, err)
	}
	if !slices.Equal(se.Undone, []string{"write f1", "write f0"}) || exists(fs[0].path) || exists(fs[1].path) {
		t.Fatalf("undone %v", se.Undone)
	}
	fs[2].failApply = false
	if res, err = r.Apply(context.Background(), "p", asSteps(fs)); err != nil || len(res.Applied) != 3 || res.Resumed {
		t.Fatalf("apply after rollback: %+v %v", res, err)
	}
}

func TestDuplicateID(t *testing.T) {
	dir := t.TempDir()
	f := steps(dir, 1)[0]
	if _, err := (&Runner{}).Apply(context.Background(), "p", []Step{f, f}); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("duplicate ids: %v", err)
	}
	if exists(f.path) {
		t.Fatal("a plan with duplicate ids changed something")
	}
}

func TestStateFileAtomic(t *testing.T) {
	dir := t.TempDir()
	r := &Runner{StatePath: filepath.Join(dir, "plan.json")}
	if _, err := r.Apply(context.Background(), "p", asSteps(steps(dir, 2))); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if filepath.Ext(e.Name()) != "" && e.Name() != "plan.json" {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}
	if _, err := LoadState(filepath.Join(dir, "missing.json")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(r.StatePath, []byte("{not json"), 0o600)
	if _, err := r.Apply(context.Background(), "p", nil); err == nil {
		t.Fatal("a corrupt state file was accepted")
	}
}
