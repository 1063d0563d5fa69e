package service

import (
	"context"
	"fmt"
	"time"

	"github.com/mysecure/mysecure/encfs/acl"
	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/encfs/reach"
	"github.com/mysecure/mysecure/hardening/audit"
)

// The warnings here are the client's part of `status`: the daemon does
// not look behind its own mount point or log in to servers, so the
// command asks these of the rules the daemon reports.

// ReachWarnings returns, as status warnings, the rules whose program
// cannot reach the mount point as the user it runs as (a parent of the
// mount that is 0700, for example), naming the directory that blocks.
// The kernel refuses such a program before the rules are asked, so no
// denial is logged: this is the only place that says why.
func ReachWarnings(mount string, rules []daemon.RuleInfo) []daemon.Warning {
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

// StatusWarnings returns ReachWarnings and, for the running servers that
// a rule lets open encrypted files, the secure_file_priv warnings.
func StatusWarnings(ctx context.Context, mount string, rules []daemon.RuleInfo) []daemon.Warning {
	return append(ReachWarnings(mount, rules), filePrivWarnings(ctx, mount, rules, audit.LocalServers(), queryServer)...)
}

// queryServer connects as the caller over the server's socket (root has
// unix_socket access on Debian).
func queryServer(socket string) (audit.Query, error) {
	return audit.Client{Socket: socket}.Query()
}

// filePrivWarnings checks servers that a rule lets open encrypted files:
// a server whose secure_file_priv is unset or inside the mount lets any
// account with the FILE privilege read those files with LOAD_FILE,
// through the allowed server. A server it cannot ask is left out.
func filePrivWarnings(ctx context.Context, mount string, rules []daemon.RuleInfo, servers []audit.LocalServer, query func(socket string) (audit.Query, error)) []daemon.Warning {
	allowed := map[string]int{}
	for _, r := range rules {
		if r.Rule.Action == acl.Allow {
			allowed[r.Rule.Exe.Path] = r.Index
		}
	}
	var out []daemon.Warning
	for _, s := range servers {
		idx, ok := allowed[s.Exe]
		if !ok {
			continue
		}
		q, err := query(s.Socket)
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
