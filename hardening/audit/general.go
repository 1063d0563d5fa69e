package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mysecure/mysecure/internal/mycnf"

	"github.com/mysecure/mysecure/internal/procfs"
)

// Sections 4 (general), 6 (logging), 7 (authentication), 8 (network)
// and 9 (replication).

// serverOptions returns every option of the server's groups in the
// option files, with a function telling whether a name matches an
// option the way the flavor matches names (MariaDB: unique prefixes,
// MySQL: the full name).
func (a *auditor) serverOptions(ctx context.Context) ([]mycnf.Option, error) {
	inGroup := a.serverGroups(ctx)
	var out []mycnf.Option
	for _, p := range a.optionFiles() {
		l, err := mycnf.LoadAll(p)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Options {
			if inGroup(o.Group) {
				out = append(out, o)
			}
		}
	}
	persisted, _, err := a.persisted(ctx)
	if err != nil {
		return nil, err
	}
	return append(out, persisted...), nil
}

// optLoc says where an option is set: "file:line: [group] name", or
// "file: persisted name" for MySQL's mysqld-auto.cnf.
func optLoc(o mycnf.Option) string {
	if o.Line == 0 {
		return fmt.Sprintf("%s: persisted %s", o.File, o.Name)
	}
	return fmt.Sprintf("%s:%d: [%s] %s", o.File, o.Line, o.Group, o.Name)
}

// optName strips loose-/enable- and returns the canonical name.
func optName(n string) string {
	n = strings.TrimPrefix(mycnf.Canonical(n), "loose-")
	return strings.TrimPrefix(n, "enable-")
}

// namesOption reports whether an option name (from a file or the
// command line, canonical) sets option full: MariaDB also takes unique
// prefixes of at least min characters; MySQL only the full name.
func namesOption(name, full string, min int, f Flavor) bool {
	name = optName(name)
	if name == full {
		return true
	}
	return f != MySQL && len(name) >= min && strings.HasPrefix(full, name)
}

func truthy(o mycnf.Option) bool {
	if !o.HasValue {
		return true
	}
	switch strings.ToLower(o.Value) {
	case "1", "on", "true":
		return true
	}
	return false
}

// argOption parses a command-line argument "--name[=value]".
func argOption(arg string) (mycnf.Option, bool) {
	s, ok := strings.CutPrefix(arg, "--")
	if !ok {
		return mycnf.Option{}, false
	}
	n, v, has := strings.Cut(s, "=")
	return mycnf.Option{Name: n, Value: v, HasValue: has, File: "command line"}, true
}

func checkSuspiciousUDFs(ctx context.Context, a *auditor) (outcome, error) {
	on, v, err := a.boolVar(ctx, "allow_suspicious_udfs")
	if err == nil {
		if on {
			return outcome{Fail, []Evidence{{Text: "allow_suspicious_udfs = " + v, Variable: "allow_suspicious_udfs", Value: v}}}, nil
		}
		return outcome{Pass, []Evidence{{Text: "allow_suspicious_udfs = " + v, Variable: "allow_suspicious_udfs", Value: v}}}, nil
	}
	// Servers without the variable: the command line and option files.
	f := a.flavor(ctx)
	var fails []Evidence
	if p, perr := a.serverProc(ctx); perr == nil {
		for _, arg := range p.args {
			if o, ok := argOption(arg); ok && namesOption(o.Name, "allow-suspicious-udfs", 9, f) && truthy(o) {
				fails = append(fails, Evidence{Text: "the server's command line has " + arg, Pid: p.pid})
			}
		}
	} else {
		return outcome{}, fmt.Errorf("%v; %v", err, perr)
	}
	opts, oerr := a.serverOptions(ctx)
	if oerr != nil {
		return outcome{}, oerr
	}
	for _, o := range opts {
		if namesOption(o.Name, "allow-suspicious-udfs", 9, f) && truthy(o) {
			fails = append(fails, Evidence{Text: optLoc(o), File: o.File, Line: o.Line})
		}
	}
	return worstE(fails, nil, nil), nil
}

func checkStrictMode(ctx context.Context, a *auditor) (outcome, error) {
	v, err := a.variable(ctx, "sql_mode")
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Variable: "sql_mode", Value: v, Text: "sql_mode = " + v}
	for _, m := range strings.Split(v, ",") {
		if m == "STRICT_ALL_TABLES" {
			return outcome{Pass, []Evidence{ev}}, nil
		}
	}
	ev.Text = "sql_mode lacks STRICT_ALL_TABLES: " + v
	return outcome{Fail, []Evidence{ev}}, nil
}

// mountedFuse reports whether dir is a FUSE mount point in the mount
// table.
func mountedFuse(mountinfo, dir string) (bool, error) {
	mounts, err := procfs.MountsFrom(mountinfo)
	if err != nil {
		return false, err
	}
	for _, m := range mounts {
		if filepath.Clean(m.Point) == filepath.Clean(dir) && strings.HasPrefix(m.FSType, "fuse") {
			return true, nil
		}
	}
	return false, nil
}

func checkEncryptionAtRest(ctx context.Context, a *auditor) (outcome, error) {
	dir, err := a.dataDir(ctx)
	if err != nil {
		return outcome{}, err
	}
	mount := a.t.Host.Mount
	real := resolved(dir)
	if within(real, filepath.Join(mount, "mysql")) {
		fuse, err := mountedFuse(a.t.Host.MountInfo, mount)
		if err != nil {
			return outcome{}, err
		}
		if fuse {
			return pass(fmt.Sprintf("the datadir %s is in mysecure's @mysql category (%s): encrypted at rest with AES-256-GCM", dir, real)), nil
		}
		return fail(fmt.Sprintf("the datadir %s is under %s, but that is not a mounted mysecure (FUSE) volume", dir, mount)), nil
	}
	v, ok, err := a.optionalVar(ctx, "innodb_encrypt_tables")
	if err != nil {
		return outcome{}, err
	}
	if ok && (strings.EqualFold(v, "ON") || strings.EqualFold(v, "FORCE")) {
		return outcome{Pass, []Evidence{{Text: "innodb_encrypt_tables = " + v, Variable: "innodb_encrypt_tables", Value: v}}}, nil
	}
	if v2, ok2, _ := a.optionalVar(ctx, "default_table_encryption"); ok2 && strings.EqualFold(v2, "ON") {
		return outcome{Pass, []Evidence{{Text: "default_table_encryption = ON", Variable: "default_table_encryption", Value: v2}}}, nil
	}
	return outcome{Fail, []Evidence{{Text: fmt.Sprintf("the datadir %s is not in mysecure's @mysql and innodb_encrypt_tables = %q", dir, v), Variable: "innodb_encrypt_tables", Value: v}}}, nil
}

func checkErrorLogConfigured(ctx context.Context, a *auditor) (outcome, error) {
	path, v, err := a.errorLogPath(ctx)
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Variable: "log_error", Value: v}
	if path != "" {
		ev.Text = "log_error = " + v
		return outcome{Pass, []Evidence{ev}}, nil
	}
	// An empty log_error (or MySQL's "stderr") sends the log to the
	// server's stderr: systemd connects it to the journal (a socket),
	// mysqld_safe --syslog to logger (a pipe, Debian's default), a shell
	// to a file or nowhere. Follow the server's descriptor 2.
	const empty = "the error log goes to the server's stderr"
	ev.Text = fmt.Sprintf("log_error = %q: %s", v, empty)
	target, err := a.serverStderr(ctx)
	switch {
	case err != nil:
		ev.Text += ", which could not be followed (" + err.Error() + "): check that the journal or syslog keeps it"
		return outcome{Warn, []Evidence{ev}}, nil
	case target == "/dev/null":
		ev.Text += ", which is /dev/null: the error log is discarded"
		return outcome{Fail, []Evidence{ev}}, nil
	case v == "stderr":
		// MySQL's log_error = stderr: the log goes to the console (as in
		// containers), whatever keeps it.
		ev.Text += ", which is " + target + " (MySQL log_error = stderr): check that it is kept"
		return outcome{Warn, []Evidence{ev}}, nil
	case strings.HasPrefix(target, "socket:"):
		ev.Text += ", a socket: the systemd journal (journalctl -u mariadb), or syslog"
		return outcome{Pass, []Evidence{ev}}, nil
	case strings.HasPrefix(target, "pipe:"):
		ev.Text += ", a pipe: to syslog through logger under mysqld_safe --syslog (Debian's default), or to the program that started it"
		return outcome{Pass, []Evidence{ev}}, nil
	case filepath.IsAbs(target):
		ev.Text += ", the file " + target
		return outcome{Pass, []Evidence{ev}}, nil
	}
	ev.Text += ", which is " + target + ": check that it is kept"
	return outcome{Warn, []Evidence{ev}}, nil
}

// serverStderr returns where the server's standard error points
// (readlink of /proc/PID/fd/2), the PID from @@pid_file, checked to be a
// running mariadbd or mysqld.
func (a *auditor) serverStderr(ctx context.Context) (string, error) {
	pidFile, err := a.variable(ctx, "pid_file")
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(pidFile) {
		dir, err := a.dataDir(ctx)
		if err != nil {
			return "", err
		}
		pidFile = filepath.Join(dir, pidFile)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return "", fmt.Errorf("pid file: %v; the audit must run on the server's host", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "", fmt.Errorf("pid file %s holds no pid", pidFile)
	}
	exe, err := procfs.At(a.t.Host.Proc).Exe(pid)
	if err != nil {
		return "", fmt.Errorf("server process %d: %v", pid, err)
	}
	if base := filepath.Base(strings.TrimSuffix(exe, " (deleted)")); !strings.Contains(base, "mariadbd") && !strings.Contains(base, "mysqld") {
		return "", fmt.Errorf("pid %d from %s is %s, not the server", pid, pidFile, exe)
	}
	return procfs.At(a.t.Host.Proc).FDLink(pid, 2)
}

func checkLogPartition(ctx context.Context, a *auditor) (outcome, error) {
	var paths []string
	devs := map[string]uint64{}
	add := func(p string) {
		if p == "" {
			return
		}
		if st, err := os.Stat(filepath.Dir(p)); err == nil {
			paths = append(paths, p)
			devs[p] = statDev(st)
		}
	}
	if p, _, err := a.errorLogPath(ctx); err == nil {
		add(p)
	}
	for _, v := range []string{"log_bin_basename", "relay_log_basename", "slow_query_log_file", "general_log_file"} {
		if p, err := a.pathVar(ctx, v); err == nil {
			add(p)
		}
	}
	if len(paths) == 0 {
		return notApplicable("no log files configured"), nil
	}
	return onSystemPartition(paths, devs), nil
}

func checkLogWarnings(ctx context.Context, a *auditor) (outcome, error) {
	name := "log_warnings"
	if a.flavor(ctx) == MySQL {
		name = "log_error_verbosity"
	}
	v, err := a.variable(ctx, name)
	if err != nil {
		return outcome{}, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return outcome{}, fmt.Errorf("%s: unexpected value %q", name, v)
	}
	ev := Evidence{Text: fmt.Sprintf("%s = %d", name, n), Variable: name, Value: v}
	if n < 2 {
		ev.Text += ": failed and aborted connections are not logged"
		return outcome{Fail, []Evidence{ev}}, nil
	}
	return outcome{Pass, []Evidence{ev}}, nil
}

// plugin returns a plugin's status and load option from
// information_schema.PLUGINS ("" when not loaded).
func (a *auditor) plugin(ctx context.Context, name string) (status, load string, err error) {
	rows, err := a.query(ctx, "SELECT PLUGIN_STATUS, IFNULL(LOAD_OPTION, '') FROM information_schema.PLUGINS WHERE PLUGIN_NAME = '"+name+"'", 2)
	if err != nil {
		return "", "", err
	}
	if len(rows) == 0 {
		return "", "", nil
	}
	return rows[0][0], rows[0][1], nil
}

func (a *auditor) auditPluginName(ctx context.Context) string {
	if a.flavor(ctx) == MySQL {
		return "audit_log"
	}
	return "SERVER_AUDIT"
}

func checkAuditPlugin(ctx context.Context, a *auditor) (outcome, error) {
	name := a.auditPluginName(ctx)
	st, _, err := a.plugin(ctx, name)
	if err != nil {
		return outcome{}, err
	}
	if st != "ACTIVE" {
		return fail(fmt.Sprintf("the %s plugin is not active (status %q)", name, st)), nil
	}
	if name == "SERVER_AUDIT" {
		on, v, err := a.boolVar(ctx, "server_audit_logging")
		if err != nil {
			return outcome{}, err
		}
		ev := Evidence{Text: "server_audit_logging = " + v, Variable: "server_audit_logging", Value: v}
		if !on {
			return outcome{Fail, []Evidence{ev}}, nil
		}
		ev2 := Evidence{Text: "SERVER_AUDIT is ACTIVE"}
		if ev3, err := a.variable(ctx, "server_audit_events"); err == nil {
			ev2.Text += "; server_audit_events = " + ev3
		}
		return outcome{Pass, []Evidence{ev2, ev}}, nil
	}
	return pass(name + " is ACTIVE"), nil
}

func checkAuditUnremovable(ctx context.Context, a *auditor) (outcome, error) {
	name := a.auditPluginName(ctx)
	st, load, err := a.plugin(ctx, name)
	if err != nil {
		return outcome{}, err
	}
	if st == "" {
		return fail(fmt.Sprintf("the %s plugin is not loaded", name)), nil
	}
	ev := Evidence{Text: fmt.Sprintf("%s load option %s", name, load), Variable: "LOAD_OPTION", Value: load}
	if load != "FORCE_PLUS_PERMANENT" {
		ev.Text += ": UNINSTALL PLUGIN can remove it at run time"
		return outcome{Fail, []Evidence{ev}}, nil
	}
	return outcome{Pass, []Evidence{ev}}, nil
}

func checkLogEncryption(ctx context.Context, a *auditor) (outcome, error) {
	name := "encrypt_binlog" // MariaDB: binary and relay logs
	if a.flavor(ctx) == MySQL {
		name = "binlog_encryption"
	}
	on, v, err := a.boolVar(ctx, name)
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Text: name + " = " + v, Variable: name, Value: v}
	if !on {
		return outcome{Fail, []Evidence{ev}}, nil
	}
	return outcome{Pass, []Evidence{ev}}, nil
}

func checkOldPasswords(ctx context.Context, a *auditor) (outcome, error) {
	on, v, err := a.boolVar(ctx, "old_passwords")
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Text: "old_passwords = " + v, Variable: "old_passwords", Value: v}
	if on {
		ev.Text += ": PASSWORD() and new passwords use the pre-4.1 hash"
		return outcome{Fail, []Evidence{ev}}, nil
	}
	return outcome{Pass, []Evidence{ev}}, nil
}

func checkSecureAuth(ctx context.Context, a *auditor) (outcome, error) {
	on, v, err := a.boolVar(ctx, "secure_auth")
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Text: "secure_auth = " + v, Variable: "secure_auth", Value: v}
	if !on {
		ev.Text += ": clients may log in with pre-4.1 password hashes"
		return outcome{Fail, []Evidence{ev}}, nil
	}
	return outcome{Pass, []Evidence{ev}}, nil
}

func checkPasswordComplexity(ctx context.Context, a *auditor) (outcome, error) {
	if a.flavor(ctx) == MySQL {
		pol, ok, err := a.optionalVar(ctx, "validate_password.policy")
		if err != nil {
			return outcome{}, err
		}
		if !ok {
			return fail("the validate_password component is not installed"), nil
		}
		ln, _, _ := a.optionalVar(ctx, "validate_password.length")
		n, _ := strconv.Atoi(ln)
		if strings.EqualFold(pol, "LOW") || pol == "0" || n < 14 {
			return fail(fmt.Sprintf("validate_password.policy = %s, validate_password.length = %s (want MEDIUM or STRONG, 14 or more)", pol, ln)), nil
		}
		return pass(fmt.Sprintf("validate_password.policy = %s, length %s", pol, ln)), nil
	}
	var active []string
	for _, p := range []string{"simple_password_check", "cracklib_password_check"} {
		st, _, err := a.plugin(ctx, p)
		if err != nil {
			return outcome{}, err
		}
		if st == "ACTIVE" {
			active = append(active, p)
		}
	}
	if len(active) == 0 {
		return fail("no password validation plugin (simple_password_check, cracklib_password_check) is active"), nil
	}
	var fails []string
	if n, ok, _ := a.optionalVar(ctx, "simple_password_check_minimal_length"); ok {
		if l, _ := strconv.Atoi(n); l < 14 {
			fails = append(fails, "simple_password_check_minimal_length = "+n+" (want 14 or more)")
		}
	}
	return worst(fails, nil, []string{strings.Join(active, ", ") + " active"}), nil
}

func checkWildcardHosts(ctx context.Context, a *auditor) (outcome, error) {
	accts, err := a.accounts(ctx)
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for _, acc := range accts {
		if !acc.Role && strings.ContainsAny(acc.Host, "%_") {
			s := acc.name() + " has a wildcard host"
			if acc.Locked {
				s += " (locked)"
			}
			fails = append(fails, Evidence{Text: s, Account: acc.name()})
		}
	}
	sortEv(fails)
	return worstE(fails, nil, nil), nil
}

func checkConnectionLimits(ctx context.Context, a *auditor) (outcome, error) {
	v, err := a.variable(ctx, "max_user_connections")
	if err != nil {
		return outcome{}, err
	}
	if n, _ := strconv.Atoi(v); n > 0 {
		return outcome{Pass, []Evidence{{Text: "max_user_connections = " + v, Variable: "max_user_connections", Value: v}}}, nil
	}
	rows, err := a.cached(ctx, "SELECT User, Host, max_user_connections FROM mysql.user", 3)
	if err != nil {
		return outcome{}, err
	}
	accts, err := a.accounts(ctx)
	if err != nil {
		return outcome{}, err
	}
	limit := map[string]string{}
	for _, r := range rows {
		limit[account{User: r[0], Host: r[1]}.name()] = r[2]
	}
	var warns []Evidence
	for _, acc := range logins(accts) {
		if a.isAdmin(acc.name()) {
			continue
		}
		if n, _ := strconv.Atoi(limit[acc.name()]); n <= 0 {
			warns = append(warns, Evidence{Text: acc.name() + " has no connection limit (MAX_USER_CONNECTIONS)", Account: acc.name()})
		}
	}
	sortEv(warns)
	return worstE(nil, warns, []Evidence{{Text: "max_user_connections = " + v, Variable: "max_user_connections", Value: v}}), nil
}

// replicas returns the replication connections from SHOW ALL SLAVES
// STATUS (MariaDB), by the column positions of MariaDB 10.11:
// Connection_name 1, Master_Host 4, Master_User 5, Master_SSL_Allowed 29,
// Master_SSL_Verify_Server_Cert 36.
func (a *auditor) replicas(ctx context.Context) ([]map[string]string, error) {
	rows, err := a.query(ctx, "SHOW ALL SLAVES STATUS", 36)
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, r := range rows {
		out = append(out, map[string]string{"name": r[0], "host": r[3], "user": r[4], "ssl": r[28], "verify": r[35]})
	}
	return out, nil
}

// mysqlReplicas returns MySQL's replication channels from
// performance_schema.replication_connection_configuration, in the shape
// of replicas (SSL_ALLOWED is YES, NO or IGNORED).
func (a *auditor) mysqlReplicas(ctx context.Context) ([]map[string]string, error) {
	rows, err := a.query(ctx, "SELECT CHANNEL_NAME, HOST, USER, SSL_ALLOWED, SSL_VERIFY_SERVER_CERTIFICATE FROM performance_schema.replication_connection_configuration", 5)
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, r := range rows {
		out = append(out, map[string]string{"name": r[0], "host": r[1], "user": r[2], "ssl": r[3], "verify": r[4]})
	}
	return out, nil
}

func checkReplicationTLS(ctx context.Context, a *auditor) (outcome, error) {
	read := a.replicas
	if a.flavor(ctx) == MySQL {
		read = a.mysqlReplicas
	}
	reps, err := read(ctx)
	if err != nil {
		return outcome{}, err
	}
	if len(reps) == 0 {
		return notApplicable("the server is not a replica"), nil
	}
	var fails, notes []Evidence
	for _, r := range reps {
		ch := fmt.Sprintf("replication from %s (connection %q)", r["host"], r["name"])
		if !strings.EqualFold(r["ssl"], "Yes") {
			fails = append(fails, Evidence{Text: ch + " does not use TLS (MASTER_SSL=0)", Variable: "Master_SSL_Allowed", Value: r["ssl"]})
		}
		if !strings.EqualFold(r["verify"], "Yes") {
			fails = append(fails, Evidence{Text: ch + " does not verify the primary's certificate", Variable: "Master_SSL_Verify_Server_Cert", Value: r["verify"]})
		}
		notes = append(notes, Evidence{Text: ch + " inspected"})
	}
	return worstE(fails, nil, notes), nil
}

// checkReplicationUserTLS looks at the primary's side of replication:
// the accounts replicas log in as.
func checkReplicationUserTLS(ctx context.Context, a *auditor) (outcome, error) {
	m, err := a.globalPrivs(ctx)
	if err != nil {
		return outcome{}, err
	}
	return a.remoteSSLOf(ctx, map[string]bool{"ANY": true, "X509": true, "SPECIFIED": true},
		func(name string) bool { return m[name].has("REPLICATION SLAVE") },
		func(name, t string) string {
			return fmt.Sprintf("replication account %s may connect from other hosts with ssl_type %s: replicas may stream the binary log in clear", name, t)
		}, "remote replication accounts")
}

func checkMemcached(ctx context.Context, a *auditor) (outcome, error) {
	st, _, err := a.plugin(ctx, "daemon_memcached")
	if err != nil {
		return outcome{}, err
	}
	if st == "" {
		return pass("the daemon_memcached plugin is not loaded"), nil
	}
	return outcome{Fail, []Evidence{{Text: "the daemon_memcached plugin is loaded (" + st + "): InnoDB tables are reachable over the memcached protocol, without MySQL accounts", Variable: "daemon_memcached", Value: st}}}, nil
}

func checkPasswordReuse(ctx context.Context, a *auditor) (outcome, error) {
	var fails, notes []Evidence
	for _, c := range []struct {
		name string
		min  int
		what string
	}{{"password_history", 5, "previous passwords"}, {"password_reuse_interval", 365, "days"}} {
		v, err := a.variable(ctx, c.name)
		if err != nil {
			return outcome{}, err
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return outcome{}, fmt.Errorf("%s: unexpected value %q", c.name, v)
		}
		ev := Evidence{Text: fmt.Sprintf("%s = %d", c.name, n), Variable: c.name, Value: v}
		if n < c.min {
			ev.Text += fmt.Sprintf(": a password may be reused sooner than after %d %s", c.min, c.what)
			fails = append(fails, ev)
		} else {
			notes = append(notes, ev)
		}
	}
	return worstE(fails, nil, notes), nil
}

func checkLogRaw(ctx context.Context, a *auditor) (outcome, error) {
	on, v, err := a.boolVar(ctx, "log_raw")
	if err != nil {
		return outcome{}, err
	}
	ev := Evidence{Text: "log_raw = " + v, Variable: "log_raw", Value: v}
	if on {
		ev.Text += ": the logs keep passwords as typed"
		return outcome{Fail, []Evidence{ev}}, nil
	}
	return outcome{Pass, []Evidence{ev}}, nil
}
