package hardening

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/internal/hint"
)

// HostReset is `mysecure harden reset-root-password` on a hardened host,
// once the master credential is known: a temporary rule lets Self start
// the real binary behind the guard, ResetPassword runs on the located
// server, and the rule goes again before the server starts again (on
// success and on failure). The errors carry hints (internal/hint).
type HostReset struct {
	Client *daemon.Client
	Cred   *daemon.Credential
	Plan   *Plan
	Server *LocatedServer
	// Self is this program (SelfPath): the temporary rule names it.
	Self string
	// Request is the reset; its UID and GID are set from Server.
	Request ResetRequest
	// Warn reports a temporary rule that could not be removed.
	Warn func(string)
}

// Rule is the temporary rule: Self may open the real binary in
// @protected.
func (h *HostReset) Rule() string {
	return fmt.Sprintf("ALLOW @protected %s %s", strings.TrimPrefix(h.Plan.Binary, "/"), h.Self)
}

// Run adds the temporary rule (the credential check: nothing is touched
// before it) and resets the password.
func (h *HostReset) Run(ctx context.Context) error {
	rule := h.Rule()
	if _, err := h.Client.ACL(ctx, daemon.ACLRequest{Op: "add", Rule: rule, Credential: h.Cred}); err != nil {
		return err
	}
	gone := false
	drop := func() {
		if gone {
			return
		}
		gone = true
		if _, err := h.Client.ACL(context.Background(), daemon.ACLRequest{Op: "del", Rule: rule, Credential: h.Cred}); err != nil && h.Warn != nil {
			h.Warn(fmt.Sprintf("could not remove the temporary rule %q: %v (remove it with 'mysecure acl del')", rule, err))
		}
	}
	defer drop()
	r := h.Request
	r.UID, r.GID = h.Server.UID, h.Server.GID
	r.BeforeRestart = drop
	if l := h.Server.Launch; l != nil && r.Notice != nil {
		r.Notice(fmt.Sprintf("the server runs as pid %d, started by %s", l.Server.Pid, l.StartedBy()))
	}
	since := time.Now()
	err := ResetPassword(ctx, h.Server, r)
	if err == nil || errors.Is(err, ErrInitDir) {
		return resetHint(err, h.Server.Running())
	}
	// A server the rules kept from its files fails with "Errcode: 13";
	// the daemon knows which opens it denied, and the rule to add.
	allow, err := withDenials(h.Client, since, err)
	if allow != "" {
		return hint.Wrap(err, allow+"; then start the server (if it is down) and run the reset again")
	}
	return resetHint(err, h.Server.Running())
}

// resetHint gives a failed reset the hint that says what state the
// server is in and what to do.
func resetHint(err error, wasRunning bool) error {
	var re *ResetError
	switch {
	case errors.Is(err, ErrInitDir):
		return hint.Wrap(err, "nothing was changed and the server keeps running: pass --init-dir with a directory of root's that the server user can enter (mode 0755)")
	case errors.As(err, &re) && re.Restarted && !wasRunning:
		return hint.Wrap(re.Err, "the password was not changed; the server was not running and stays stopped")
	case errors.As(err, &re) && re.Restarted:
		return hint.Wrap(err, "the server runs as before; read the message above, fix the cause and run the reset again")
	case errors.As(err, &re):
		return hint.Wrap(err, "start the server with the command above; then run the reset again")
	}
	return err
}

// withDenials returns the hints that say which rule would allow what the
// mount's rules denied since the reset began, and err with the denials
// added ("denied: PROG opening FILES") ("" when nothing was denied or the
// daemon cannot tell).
func withDenials(c *daemon.Client, since time.Time, err error) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, derr := c.Denials(ctx, daemon.DenialQuery{Since: since})
	if derr != nil || len(r.Groups) == 0 {
		return "", err
	}
	seen, hints := daemon.ExplainDenials(r.Groups)
	return strings.Join(hints, "; "), fmt.Errorf("%w: denied: %s", err, strings.Join(seen, "; denied: "))
}
