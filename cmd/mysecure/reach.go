package main

import (
	"context"
	"fmt"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/service"
)

// reachWarnings are the rules whose program cannot reach the mount point
// as the user it runs as (service.ReachWarnings).
var reachWarnings = service.ReachWarnings

// printReach prints the reach warnings for the rules in force; errors
// are ignored (it only adds information).
func printReach(ctx context.Context, g *globalOptions, c *daemon.Client) {
	rl, err := c.ACLList(ctx)
	if err != nil {
		return
	}
	for _, w := range reachWarnings(g.cfg.Mount, rl.Rules) {
		fmt.Fprintf(g.p.err, "mysecure: warning: %s\n", w.Message)
		g.p.hintf("%s", w.Hint)
	}
}
