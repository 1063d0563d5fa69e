package daemon

import "context"

// Proof is proof, for the tests of package daemon_test.
func (c *Client) Proof(ctx context.Context, cred *Credential) (*Credential, func(), error) {
	return c.proof(ctx, cred)
}
