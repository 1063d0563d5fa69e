package main

import (
	"context"
	"fmt"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/reach"
)

// reachWarnings returns, as status warnings, the rules whose program
// cannot reach the mount point as the user it runs as (a parent of the
// mount that is 0700, for example), naming the directory that blocks.
// The kernel refuses such a program before the rules are asked, so no
// denial is logged: this is the only place that says why.
func reachWarnings(mount string, rules []daemon.RuleInfo) []daemon.Warning {
	byText := map[string]daemon.RuleInfo{}
	in := map[string]acl.Rule{}
	for _, r := range rules {
		byText[r.Text] = r
		in[r.Text] = r.Rule
	}
	var out []daemon.Warning
	for _, p := range reach.Check(mount, in) {
		r := byText[p.Rule]
		out = append(out, daemon.Warning{Kind: "mount-unreachable", Rule: r.Index, Program: r.Rule.Exe.Path, Message: p.String(), Hint: p.Hint()})
	}
	return out
}

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
