package daemon

import (
	"context"
	"strconv"
)

// CredentialNeeded reports whether an admin change (rules, categories,
// leaving enforcing mode, a move session) needs the master credential:
// always, except in admin mode. Asking first spares the caller a prompt
// in a maintenance window.
func (c *Client) CredentialNeeded(ctx context.Context) (bool, error) {
	s, err := c.Status(ctx)
	if err != nil {
		return false, err
	}
	return s.Mode != Admin, nil
}

// ACLDelete is the request that deletes the rule arg names: its number
// in the listing (RuleInfo.Index), else its text.
func ACLDelete(arg string) ACLRequest {
	if n, err := strconv.Atoi(arg); err == nil {
		return ACLRequest{Op: "del", Index: n}
	}
	return ACLRequest{Op: "del", Rule: arg}
}
