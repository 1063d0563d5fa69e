package ndb

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestRollStopsAtRefusal: three local "hosts" (LocalHost with a host
// label in the environment); the second refuses (exit 6); the first is
// done, the third never runs.
func TestRollStopsAtRefusal(t *testing.T) {
	hosts := []Host{LocalHost{Label: "a", Env: []string{"H=a"}}, LocalHost{Label: "b", Env: []string{"H=b"}}, LocalHost{Label: "c", Env: []string{"H=c"}}}
	script := `echo "ran on $H" >> "$LOG"; if [ "$H" = b ]; then echo "mysecure: error: the node is running" >&2; exit 6; fi; echo "enabled on $H"`
	log := t.TempDir() + "/log"
	t.Setenv("LOG", log)
	var seen []string
	res, err := Roll(context.Background(), hosts, func(h Host) []string { return []string{"/bin/sh", "-c", script} },
		func(r HostResult) { seen = append(seen, r.Host) })
	var re *RollError
	if !errors.As(err, &re) {
		t.Fatalf("err %v, want *RollError", err)
	}
	if re.Host != "b" || re.Exit != 6 || strings.Join(re.Done, ",") != "a" || strings.Join(re.Skipped, ",") != "c" || re.Last != "mysecure: error: the node is running" {
		t.Fatalf("roll error: %+v", re)
	}
	if len(res) != 2 || res[0].Stdout != "enabled on a\n" || strings.Join(seen, ",") != "a,b" {
		t.Fatalf("results %+v seen %v", res, seen)
	}
	if !strings.Contains(err.Error(), "rolling change stopped at host b (exit 6: mysecure: error: the node is running); changed before it: a; not touched: c") {
		t.Fatalf("message: %v", err)
	}

	// All succeed.
	res, err = Roll(context.Background(), hosts[:1], func(h Host) []string { return []string{"/bin/true"} }, nil)
	if err != nil || len(res) != 1 || res[0].Exit != 0 {
		t.Fatalf("%v %+v", err, res)
	}
	// A command that cannot run.
	_, err = Roll(context.Background(), hosts, func(h Host) []string { return []string{"/nonexistent/mysecure"} }, nil)
	if !errors.As(err, &re) || re.Exit != -1 || re.Err == nil || len(re.Skipped) != 2 {
		t.Fatalf("missing program: %v", err)
	}
}
