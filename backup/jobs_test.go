package backup

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// TestJobsScheduleReload: the reload op is root's, needs a scheduler,
// and answers with the number of jobs; other ops go to the service with
// the caller's rights.
func TestJobsScheduleReload(t *testing.T) {
	reload := json.RawMessage(`{"op":"schedule-reload"}`)
	calls := 0
	j := Jobs{Service: testService(t), Reload: func() (int, error) { calls++; return 3, nil }}
	if _, err := j.Run(context.Background(), reload, false, nil); !errors.Is(err, ErrDenied) || calls != 0 {
		t.Fatalf("reload by a group member: %v (%d calls)", err, calls)
	}
	res, err := j.Run(context.Background(), reload, true, nil)
	if err != nil || res.(map[string]int)["jobs"] != 3 || calls != 1 {
		t.Fatalf("reload by root: %v %v (%d calls)", res, err, calls)
	}
	if _, err := (Jobs{Service: j.Service}).Run(context.Background(), reload, true, nil); !errors.Is(err, ErrUsage) {
		t.Fatalf("reload without a scheduler: %v", err)
	}
	if _, err := j.Run(context.Background(), json.RawMessage(`{"op":"delete","id":"x"}`), false, nil); !errors.Is(err, ErrDenied) {
		t.Fatalf("delete by a group member: %v", err)
	}
	if _, err := j.Run(context.Background(), json.RawMessage(`{"op":`), true, nil); err == nil {
		t.Fatal("a malformed request was accepted")
	}
	te := &ToolError{Tool: "mariadb-dump", Denied: []Denied{{Hint: "mysecure acl add X"}}}
	if h := j.Hint(te); h != "mysecure acl add X" {
		t.Fatalf("hint %q", h)
	}
	if c := j.Code(te); c != CodeToolFailed {
		t.Fatalf("code %q", c)
	}
}
