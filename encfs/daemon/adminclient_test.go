package daemon_test

import (
	"context"
	"testing"

	"github.com/mysecure/mysecure/encfs/daemon"
)

// TestCredentialNeeded: needed in enforcing and permissive mode, not in
// admin mode, and the daemon agrees (a rule change without one).
func TestCredentialNeeded(t *testing.T) {
	c, master := serve(t)
	ctx := context.Background()
	for _, tc := range []struct {
		mode, prog string
		need       bool
	}{{"enforcing", "cat", true}, {"permissive", "ls", true}, {"admin", "echo", false}, {"enforcing", "true", true}} {
		if _, err := c.SetMode(ctx, daemon.ModeRequest{Mode: tc.mode, Credential: master()}); err != nil {
			t.Fatal(err)
		}
		need, err := c.CredentialNeeded(ctx)
		if err != nil || need != tc.need {
			t.Fatalf("%s: needed %v %v, want %v", tc.mode, need, err, tc.need)
		}
		_, err = c.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: "ALLOW @mysql * /bin/" + tc.prog})
		if (err != nil) != need {
			t.Fatalf("%s: a rule change without the credential: %v", tc.mode, err)
		}
	}
}

func TestACLDelete(t *testing.T) {
	for arg, want := range map[string]daemon.ACLRequest{
		"3":                       {Op: "del", Index: 3},
		"ALLOW @mysql * /bin/cat": {Op: "del", Rule: "ALLOW @mysql * /bin/cat"},
		"3x":                      {Op: "del", Rule: "3x"},
	} {
		if got := daemon.ACLDelete(arg); got != want {
			t.Errorf("%q: %+v, want %+v", arg, got, want)
		}
	}
}
