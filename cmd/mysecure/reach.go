package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/reach"
	"github.com/mysecure/mysecure/hardening/audit"
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

// filePrivWarnings checks the running servers that a rule lets open
// encrypted files: a server whose secure_file_priv is unset or inside the
// mount lets any account with the FILE privilege read those files with
// LOAD_FILE, through the allowed server. It connects as the caller over
// the server's socket (root has unix_socket access on Debian); a server it
// cannot ask is left out.
func filePrivWarnings(ctx context.Context, mount string, rules []daemon.RuleInfo) []daemon.Warning {
	allowed := map[string]int{}
	for _, r := range rules {
		if r.Rule.Action == acl.Allow {
			allowed[r.Rule.Exe.Path] = r.Index
		}
	}
	var out []daemon.Warning
	for _, s := range audit.LocalServers() {
		idx, ok := allowed[s.Exe]
		if !ok {
			continue
		}
		q, err := audit.Client{Socket: s.Socket}.Query()
		if err != nil {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		risk, err := audit.FilePrivRisk(qctx, q, mount)
		cancel()
		if err != nil || risk == "" {
			continue
		}
		out = append(out, daemon.Warning{Kind: "secure-file-priv", Rule: idx, Program: s.Exe,
			Message: fmt.Sprintf("server pid %d (%s): %s", s.Pid, s.Socket, risk),
			Hint:    "set secure_file_priv to a directory outside the mount (for example /var/lib/mysql-files) under [mariadbd] and restart"})
	}
	return out
}
