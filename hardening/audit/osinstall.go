package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/mysecure/mysecure/internal/procfs"
)

// Sections 1 (operating system) and 2 (installation and planning).

func checkDatadirPartition(ctx context.Context, a *auditor) (outcome, error) {
	dir, err := a.dataDir(ctx)
	if err != nil {
		return outcome{}, err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return outcome{}, fmt.Errorf("datadir: %v (the audit must run on the server's host)", err)
	}
	return onSystemPartition([]string{dir}, map[string]uint64{dir: statDev(st)}), nil
}

// onSystemPartition fails each path whose device is that of /, /var or
// /usr.
func onSystemPartition(paths []string, devs map[string]uint64) outcome {
	sys := map[uint64]string{}
	for _, p := range []string{"/usr", "/var", "/"} {
		if st, err := os.Stat(p); err == nil {
			sys[statDev(st)] = p
		}
	}
	var fails, notes []Evidence
	for _, p := range paths {
		if s, ok := sys[devs[p]]; ok {
			fails = append(fails, Evidence{Text: fmt.Sprintf("%s is on the same file system as %s", p, s), File: p})
		} else {
			notes = append(notes, Evidence{Text: p + " is on a file system of its own", File: p})
		}
	}
	return worstE(fails, nil, notes)
}

func checkServerAccount(ctx context.Context, a *auditor) (outcome, error) {
	p, err := a.serverProc(ctx)
	if err != nil {
		return outcome{}, err
	}
	want, err := a.serverUID()
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Pid: p.pid, Owner: userName(p.uid)}
	switch {
	case p.uid == 0:
		ev.Text = fmt.Sprintf("the server (pid %d) runs as root", p.pid)
		return outcome{Fail, []Evidence{ev}}, nil
	case p.uid != want:
		ev.Text = fmt.Sprintf("the server (pid %d) runs as %s, not the dedicated user %s", p.pid, userName(p.uid), a.t.ServerUser)
		return outcome{Fail, []Evidence{ev}}, nil
	}
	ev.Text = fmt.Sprintf("the server (pid %d) runs as %s", p.pid, userName(p.uid))
	return outcome{Pass, []Evidence{ev}}, nil
}

var noLoginShells = map[string]bool{"/usr/sbin/nologin": true, "/sbin/nologin": true, "/bin/false": true, "/usr/bin/false": true}

func checkInteractiveLogin(_ context.Context, a *auditor) (outcome, error) {
	sh, err := loginShell(a.t.Host.Passwd, a.t.ServerUser)
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{File: a.t.Host.Passwd, Account: a.t.ServerUser, Value: sh}
	if !noLoginShells[sh] {
		ev.Text = fmt.Sprintf("%s has the login shell %s", a.t.ServerUser, sh)
		return outcome{Fail, []Evidence{ev}}, nil
	}
	ev.Text = fmt.Sprintf("%s has the login shell %s", a.t.ServerUser, sh)
	return outcome{Pass, []Evidence{ev}}, nil
}

func checkCommandHistory(_ context.Context, a *auditor) (outcome, error) {
	var fails []Evidence
	for _, h := range a.t.Host.Homes {
		for _, n := range []string{".mysql_history", ".mariadb_history"} {
			p := filepath.Join(h, n)
			st, err := os.Lstat(p)
			if err != nil {
				continue
			}
			if st.Mode()&os.ModeSymlink != 0 {
				if t, _ := os.Readlink(p); t == "/dev/null" {
					continue
				}
			}
			fails = append(fails, Evidence{Text: fmt.Sprintf("%s exists (%d bytes) and is not a link to /dev/null", p, st.Size()), File: p})
		}
	}
	return worstE(fails, nil, []Evidence{{Text: fmt.Sprintf("%d home directories inspected", len(a.t.Host.Homes))}}), nil
}

func checkMysqlPwdEnv(_ context.Context, a *auditor) (outcome, error) {
	pfs := procfs.At(a.t.Host.Proc)
	pids, _ := pfs.Pids() // no procfs: nothing read, as the outcome says
	var fails []Evidence
	read := 0
	for _, pid := range pids {
		env, err := pfs.Environ(pid)
		if err != nil {
			continue
		}
		read++
		for _, kv := range env {
			if strings.HasPrefix(kv, "MYSQL_PWD=") {
				comm, _ := pfs.Comm(pid)
				fails = append(fails, Evidence{Text: fmt.Sprintf("process %d (%s) has MYSQL_PWD in its environment", pid, comm), Pid: pid, Variable: "MYSQL_PWD"})
			}
		}
	}
	sort.Slice(fails, func(i, j int) bool { return fails[i].Pid < fails[j].Pid })
	return worstE(fails, nil, []Evidence{{Text: fmt.Sprintf("%d process environments read", read)}}), nil
}

// shellStartup are per-user shell files that may set variables.
var shellStartup = []string{".profile", ".bashrc", ".bash_profile", ".bash_login", ".zshrc", ".zprofile", ".zshenv", ".cshrc", ".tcshrc", ".pam_environment"}

func checkMysqlPwdProfiles(_ context.Context, a *auditor) (outcome, error) {
	files := append([]string(nil), a.t.Host.ProfileFiles...)
	for _, h := range a.t.Host.Homes {
		for _, n := range shellStartup {
			files = append(files, filepath.Join(h, n))
		}
	}
	var fails []Evidence
	read := 0
	for _, f := range files {
		lines, err := readLines(f)
		if err != nil {
			continue
		}
		read++
		for i, l := range lines {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "#") {
				continue
			}
			if strings.Contains(t, "MYSQL_PWD") {
				fails = append(fails, Evidence{Text: fmt.Sprintf("%s:%d sets or uses MYSQL_PWD", f, i+1), File: f, Line: i + 1, Variable: "MYSQL_PWD"})
			}
		}
	}
	return worstE(fails, nil, []Evidence{{Text: fmt.Sprintf("%d profile files read", read)}}), nil
}

func checkPointInTime(ctx context.Context, a *auditor) (outcome, error) {
	on, v, err := a.boolVar(ctx, "log_bin")
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Variable: "log_bin", Value: v}
	if !on {
		ev.Text = "log_bin = " + v + ": no binary log, so no recovery to a point in time after the last backup"
		return outcome{Fail, []Evidence{ev}}, nil
	}
	ev.Text = "log_bin = " + v
	return outcome{Pass, []Evidence{ev}}, nil
}

func checkPasswordLifetime(ctx context.Context, a *auditor) (outcome, error) {
	v, err := a.variable(ctx, "default_password_lifetime")
	if err != nil {
		return outcome{}, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return outcome{}, fmt.Errorf("default_password_lifetime: unexpected value %q", v)
	}
	ev := Evidence{Variable: "default_password_lifetime", Value: v}
	if n == 0 || n > 365 {
		ev.Text = fmt.Sprintf("default_password_lifetime = %d: passwords never expire or live longer than 365 days", n)
		return outcome{Fail, []Evidence{ev}}, nil
	}
	ev.Text = "default_password_lifetime = " + v
	return outcome{Pass, []Evidence{ev}}, nil
}

func checkBindAddress(ctx context.Context, a *auditor) (outcome, error) {
	if off, _, err := a.boolVar(ctx, "skip_networking"); err == nil && off {
		return pass("skip_networking = ON: no TCP listener"), nil
	}
	v, err := a.variable(ctx, "bind_address")
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Variable: "bind_address", Value: v}
	switch v {
	case "", Null, "*", "0.0.0.0", "::":
		ev.Text = fmt.Sprintf("bind_address = %q: the server listens on every address", v)
		return outcome{Fail, []Evidence{ev}}, nil
	}
	ev.Text = "bind_address = " + v
	return outcome{Pass, []Evidence{ev}}, nil
}

func checkTLSVersions(ctx context.Context, a *auditor) (outcome, error) {
	ssl, err := a.variable(ctx, "have_ssl")
	if err != nil && a.flavor(ctx) == MySQL {
		// Servers without have_ssl (deprecated since MySQL 8.0.26): TLS
		// is on when a certificate is configured (MySQL makes one in
		// the datadir at first start).
		cert, err2 := a.variable(ctx, "ssl_cert")
		if err2 != nil {
			return outcome{}, fmt.Errorf("%v; %v", err, err2)
		}
		ssl = "YES"
		if cert == "" || cert == Null {
			return fail("ssl_cert is not set: TLS is not enabled"), nil
		}
	} else if err != nil {
		return outcome{}, err
	}
	if !strings.EqualFold(ssl, "YES") {
		return fail("have_ssl = " + ssl + ": TLS is not enabled (no ssl_cert/ssl_key)"), nil
	}
	v, err := a.variable(ctx, "tls_version")
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "TLSv1.0" || p == "TLSv1.1" || p == "TLSv1" {
			fails = append(fails, Evidence{Text: fmt.Sprintf("tls_version = %s allows %s", v, p), Variable: "tls_version", Value: v})
		}
	}
	return worstE(fails, nil, []Evidence{{Text: "tls_version = " + v, Variable: "tls_version", Value: v}}), nil
}

// weakCipherTokens are parts of OpenSSL cipher names that are broken or
// give no authentication.
var weakCipherTokens = []string{"NULL", "EXPORT", "EXP-", "RC4", "RC2", "DES-CBC-", "3DES", "DES-CBC3", "MD5", "ANON", "ADH", "AECDH", "IDEA", "SEED", "PSK"}

func checkCiphers(ctx context.Context, a *auditor) (outcome, error) {
	v, err := a.variable(ctx, "ssl_cipher")
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Variable: "ssl_cipher", Value: v}
	if v == "" || v == Null {
		ev.Text = "ssl_cipher is not set: the TLS library's defaults decide the ciphers"
		return outcome{Fail, []Evidence{ev}}, nil
	}
	var fails []Evidence
	for _, c := range strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		if strings.HasPrefix(c, "!") || strings.HasPrefix(c, "-") {
			continue
		}
		u := strings.ToUpper(c)
		for _, w := range weakCipherTokens {
			if strings.Contains(u, w) || u == "ALL" || u == "DEFAULT" || u == "LOW" || u == "MEDIUM" {
				fails = append(fails, Evidence{Text: fmt.Sprintf("ssl_cipher allows %s", c), Variable: "ssl_cipher", Value: v})
				break
			}
		}
	}
	ev.Text = "ssl_cipher = " + v
	return worstE(fails, nil, []Evidence{ev}), nil
}

// sslTypes reads every login's ssl_type (” ANY X509 SPECIFIED).
func (a *auditor) sslTypes(ctx context.Context) (map[string]string, error) {
	rows, err := a.cached(ctx, "SELECT User, Host, ssl_type FROM mysql.user", 3)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, r := range rows {
		m[account{User: r[0], Host: r[1]}.name()] = r[2]
	}
	return m, nil
}

// remoteSSL fails remote logins whose ssl_type is not in ok.
func (a *auditor) remoteSSL(ctx context.Context, ok map[string]bool, need string) (outcome, error) {
	return a.remoteSSLOf(ctx, ok, nil, func(name, t string) string {
		return fmt.Sprintf("%s may connect from other hosts with ssl_type %s (needs %s)", name, t, need)
	}, "remote logins")
}

// remoteSSLOf fails the remote logins that include accepts (all when
// nil) whose ssl_type is not in ok, saying why with text(account,
// ssl_type); what names them in the pass note.
func (a *auditor) remoteSSLOf(ctx context.Context, ok map[string]bool, include func(name string) bool, text func(name, t string) string, what string) (outcome, error) {
	accts, err := a.accounts(ctx)
	if err != nil {
		return outcome{}, err
	}
	types, err := a.sslTypes(ctx)
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	n := 0
	for _, acc := range logins(accts) {
		if isLocalHost(acc.Host) || include != nil && !include(acc.name()) {
			continue
		}
		n++
		t := types[acc.name()]
		if !ok[strings.ToUpper(t)] {
			if t == "" {
				t = "none"
			}
			fails = append(fails, Evidence{Text: text(acc.name(), t), Account: acc.name(), Variable: "ssl_type", Value: t})
		}
	}
	sort.Slice(fails, func(i, j int) bool { return fails[i].Text < fails[j].Text })
	return worstE(fails, nil, []Evidence{{Text: fmt.Sprintf("%d %s inspected", n, what)}}), nil
}

func checkX509Remote(ctx context.Context, a *auditor) (outcome, error) {
	return a.remoteSSL(ctx, map[string]bool{"X509": true, "SPECIFIED": true}, "REQUIRE X509 or SUBJECT/ISSUER")
}

func checkSSLTypeRemote(ctx context.Context, a *auditor) (outcome, error) {
	return a.remoteSSL(ctx, map[string]bool{"ANY": true, "X509": true, "SPECIFIED": true}, "REQUIRE SSL or stronger")
}
