package hardening

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/daemon/daemontest"
	"github.com/mysecure/mysecure/internal/testenv"
)

// TestUndoPlainServerRule: an undo whose datadir stays in @mysql gives
// the original binary its rule through a real daemon; a rule that is
// there already (an undo run again after the rule was added by hand, or
// by an earlier run) is no failure: the daemon's conflict matches
// daemon.ErrConflict.
func TestUndoPlainServerRule(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	for _, there := range []bool{false, true} {
		c, _ := daemontest.Serve(t, nil, nil)
		dir := t.TempDir()
		p := &Plan{Binary: "/bin/true", MountBinary: filepath.Join(dir, "mnt/protected/bin/true"), DataDir: dir,
			Rules: []string{"ALLOW @mysql " + strings.TrimPrefix(dir, "/") + "/* " + filepath.Join(dir, "mnt/protected/bin/true")}, StatePath: filepath.Join(dir, "state.json")}
		if err := p.Save(); err != nil {
			t.Fatal(err)
		}
		rule, err := PlainServerRule(p)
		if err != nil {
			t.Fatal(err)
		}
		if there {
			if _, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: rule, Credential: daemontest.Master()}); err != nil {
				t.Fatal(err)
			}
			_, err := c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: rule, Credential: daemontest.Master()})
			if !errors.Is(err, daemon.ErrConflict) {
				t.Fatalf("adding the rule twice: %v, want daemon.ErrConflict", err)
			}
		}
		var events []Event
		h := &Procedure{Client: c, Credential: func(context.Context) (*daemon.Credential, error) { return daemontest.Master(), nil },
			Report: func(e Event) { events = append(events, e) }}
		res, err := h.Undo(ctx, p, UndoOptions{})
		if err != nil {
			t.Fatalf("rule there %v: %v", there, err)
		}
		if res.PlainRule != rule || len(events) != 1 || events[0].Kind != EventAdded {
			t.Errorf("rule there %v: %+v %+v", there, res, events)
		}
		if _, err := os.Stat(p.StatePath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("rule there %v: the state file is left: %v", there, err)
		}
		rl, err := c.ACLList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(rl.Rules); n != 1 {
			t.Errorf("rule there %v: %d rules, want the plain server's alone", there, n)
		}
	}
}
