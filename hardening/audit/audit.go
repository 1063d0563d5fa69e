// Package audit runs CIS-style security checks against a live MariaDB (or
// MySQL) server and the files it uses: accounts, server variables, the
// datadir, the error log and the option files. It backs
// `mysecure harden audit`.
//
// Every check yields a [Finding]: its stable ID, a result ("pass", "fail",
// "warn", or "error" when the check could not run), why it matters, how to
// fix it and the evidence (offending accounts, file:line positions, modes).
// [Checks] lists the checks with their pass/fail criteria, for
// documentation.
//
// The package only reads: it runs SELECT statements through the caller's
// [Query], stats files and reads option files. It never changes the
// server or a file, never prints and never logs. Evidence names accounts,
// files, lines and option names, never an option's value, so it cannot
// carry a password.
//
// Accounts are read from mysql.global_priv (MariaDB 10.4+), whose JSON
// shows every IDENTIFIED VIA ... OR ... alternative and ACCOUNT LOCK; the
// mysql.user view of MariaDB 10.4+ shows neither. Only where global_priv
// cannot be read does the audit fall back to mysql.user, and then may
// report locked accounts (MariaDB) as if they could log in.
//
// File checks (files.*) stat paths the server reports (datadir, log_error)
// and the option files given, so they are meaningful only when the audit
// runs on the server's host; elsewhere they report "error".
package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mysecure/mysecure/internal/mycnf"
	"github.com/mysecure/mysecure/internal/procfs"
)

// Null is how a [Query] returns SQL NULL. The mariadb client in batch mode
// and most callers print NULL as the word NULL, so this package cannot tell
// it from the string 'NULL'; no value it inspects can legitimately be that
// string (secure_file_priv, for instance, is always an absolute path
// ending in '/').
const Null = "NULL"

// Query runs one SQL statement (a SELECT, with no trailing semicolon) and
// returns its rows, each column as text, with SQL NULL as [Null]. It must
// return the values themselves, not the mariadb client's batch-mode
// escapes (\\, \t, \n, \0). An error means the statement failed; the
// checks that needed it report "error".
type Query func(ctx context.Context, sql string) ([][]string, error)

// Target is the server to audit.
type Target struct {
	// Query runs statements on the server. It is required. The account
	// should be root or hold SELECT on the mysql database, SHOW DATABASES
	// and, for privs.definer, SELECT, SHOW VIEW, TRIGGER and EVENT on
	// *.*: information_schema hides from others the accounts,
	// databases and objects they may not use, and the checks that need
	// them then report Error rather than a pass they cannot vouch for.
	Query Query
	// OptionFiles are the option files to inspect, with what they
	// include. Empty means the server's default files that exist among
	// [DefaultOptionFiles]. A listed file that does not exist makes the
	// option-file checks report "error".
	OptionFiles []string
	// DataDir is the server's datadir (default: SELECT @@datadir).
	DataDir string
	// ServerUser is the OS user the server runs as (default "mysql").
	ServerUser string

	// Profile selects the checks: "cis-level1" (CIS level 1 items of the
	// server's flavor), "cis-level2" (levels 1 and 2), or "mysecure" (the
	// default: every check, the bypass checks beyond CIS included).
	Profile string
	// Only, when set, keeps just these checks; Skip leaves these out.
	// Both take check IDs ("accounts.anonymous") or CIS ids ("7.7").
	Only, Skip []string

	// Admins are the administrator accounts ('user'@'host', or user@host;
	// the host may be %): they may hold the privileges that the privs.*
	// checks deny everyone else. Empty means [DefaultAdmins].
	Admins []string
	// InUse are the non-administrator accounts in use (audit.accounts,
	// same forms as Admins): accounts.unused wants every other login
	// locked. Empty means the list was not given, and the check warns
	// instead of failing.
	InUse []string
	// AllowedPlugins are the plugin names (as in mysql.plugin and
	// information_schema.PLUGINS, any case) that may be loaded from
	// option files or mysql.plugin; AllowedUDFs the function names that
	// may be in mysql.func. Empty means none.
	AllowedPlugins, AllowedUDFs []string

	// Host names the host files and directories the OS-level and bypass
	// checks read; zero fields take the defaults (tests point them at
	// fixtures).
	Host Host
}

// DefaultAdmins are the administrator accounts a MariaDB install makes
// (root and mysql over the socket; mariadb.sys owns the system views).
var DefaultAdmins = []string{"'root'@'localhost'", "'mysql'@'localhost'", "'mariadb.sys'@'localhost'", "'mysql.sys'@'localhost'", "'mysql.session'@'localhost'", "'mysql.infoschema'@'localhost'"}

// Host is where the host-level checks look. Every field has a default.
type Host struct {
	// Proc is the proc filesystem (default /proc).
	Proc string
	// SystemdDirs hold units and drop-ins (default /etc/systemd/system,
	// /run/systemd/system, /usr/lib/systemd/system, /lib/systemd/system).
	SystemdDirs []string
	// Homes are the home directories searched for client history,
	// MYSQL_PWD and credential files (default /root and /home/*).
	Homes []string
	// ProfileFiles are system-wide shell profiles (default /etc/profile,
	// /etc/profile.d/*.sh, /etc/environment, /etc/bash.bashrc).
	ProfileFiles []string
	// LdPreload is the dynamic linker's preload list (default
	// /etc/ld.so.preload).
	LdPreload string
	// CredentialFiles are client credential files besides those in Homes
	// (default /etc/mysql/debian.cnf).
	CredentialFiles []string
	// Passwd is the user database (default /etc/passwd).
	Passwd string
	// Mount is mysecure's mount point (default /var/lib/mysecure/encrypted)
	// and HardenState the state file of 'harden mysqld' (default
	// /etc/mysecure/harden-mysqld.json).
	Mount, HardenState string
	// MountInfo is this process's mount table (default
	// /proc/self/mountinfo).
	MountInfo string
}

func (h *Host) fill() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&h.Proc, procfs.Root)
	def(&h.LdPreload, "/etc/ld.so.preload")
	def(&h.Passwd, "/etc/passwd")
	def(&h.Mount, "/var/lib/mysecure/encrypted")
	def(&h.HardenState, "/etc/mysecure/harden-mysqld.json")
	def(&h.MountInfo, procfs.MountInfoPath)
	if h.SystemdDirs == nil {
		h.SystemdDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}
	}
	if h.Homes == nil {
		h.Homes = []string{"/root"}
		if m, err := filepath.Glob("/home/*"); err == nil {
			h.Homes = append(h.Homes, m...)
		}
	}
	if h.ProfileFiles == nil {
		h.ProfileFiles = []string{"/etc/profile", "/etc/environment", "/etc/bash.bashrc"}
		if m, err := filepath.Glob("/etc/profile.d/*.sh"); err == nil {
			h.ProfileFiles = append(h.ProfileFiles, m...)
		}
	}
	if h.CredentialFiles == nil {
		h.CredentialFiles = []string{"/etc/mysql/debian.cnf"}
	}
}

// DefaultOptionFiles are the option files mariadbd (and mysqld) read by
// default, in order, leaving out ~/.my.cnf (whose home depends on how the
// server was started).
var DefaultOptionFiles = []string{"/etc/my.cnf", "/etc/mysql/my.cnf"}

// Result is the outcome of a check.
type Result string

// The results a check can have.
const (
	// Pass: the check ran and found nothing wrong.
	Pass Result = "pass"
	// Fail: the check found a problem to fix.
	Fail Result = "fail"
	// Warn: the check found something weaker than recommended that is
	// not always wrong.
	Warn Result = "warn"
	// Error: the check could not run (a query failed, a file could not be
	// read); Evidence says why.
	Error Result = "error"
	// NotApplicable: the check does not apply to this server (a MySQL-only
	// check on MariaDB, a log that is not enabled); Evidence says why.
	NotApplicable Result = "not-applicable"
)

// Finding is the outcome of one check.
type Finding struct {
	// ID is the check's stable identifier, such as "accounts.anonymous".
	ID string `json:"id"`
	// CISID is the recommendation number in the CIS benchmark of the
	// server's flavor ("" for checks beyond CIS); Level its profile level.
	CISID string `json:"cis_id,omitempty"`
	Level int    `json:"level,omitempty"`
	// Severity is how bad a failure is.
	Severity Severity `json:"severity"`
	// Title says in a few words what is checked.
	Title string `json:"title"`
	// Result is pass, fail, warn, error or not-applicable.
	Result Result `json:"status"`
	// Summary says in one line what was found: the first piece of
	// evidence (never the passing Title next to a failing verdict), or the
	// Title when there is none.
	Summary string `json:"summary"`
	// Why says why the check matters.
	Why string `json:"rationale"`
	// Fix says how to make the check pass, for the server's flavor.
	Fix string `json:"fix"`
	// Evidence lists what was found: offending accounts, file:line
	// positions, variable values, or why the check could not run. It may
	// be empty for a pass.
	Evidence []Evidence `json:"evidence,omitempty"`
}

// Evidence is one thing a check found. Text always says it in words;
// the other fields, when set, give the same facts for a program to read.
type Evidence struct {
	Text     string `json:"text"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Variable string `json:"variable,omitempty"`
	Value    string `json:"value,omitempty"`
	Account  string `json:"account,omitempty"`
	Mode     string `json:"mode,omitempty"`
	Owner    string `json:"owner,omitempty"`
	Pid      int    `json:"pid,omitempty"`
	// Role is the role (or chain of roles, "outer > inner") through
	// which an account holds a privilege.
	Role string `json:"role,omitempty"`
}

func (e Evidence) String() string { return e.Text }

// Severity ranks a failing check.
type Severity string

// The severities.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
)

// Flavor is the server's product.
type Flavor string

// The flavors.
const (
	MariaDB Flavor = "mariadb"
	MySQL   Flavor = "mysql"
)

// CISRef places a check in a CIS benchmark.
type CISRef struct {
	// ID is the recommendation number, such as "4.5".
	ID string `json:"id"`
	// Level is the profile level (1 or 2).
	Level int `json:"level"`
	// Manual is true where CIS scores the item as Manual (this check makes
	// it checkable).
	Manual bool `json:"manual,omitempty"`
}

// Check describes one check, for documentation.
type Check struct {
	// ID is the stable identifier that findings carry.
	ID string `json:"id"`
	// Title says in a few words what is checked.
	Title string `json:"title"`
	// MariaDB and MySQL are the check's place in the CIS MariaDB 10.11
	// and MySQL 8.4 benchmarks; nil for checks beyond CIS (or outside
	// that flavor's benchmark).
	MariaDB *CISRef `json:"cis_mariadb,omitempty"`
	MySQL   *CISRef `json:"cis_mysql,omitempty"`
	// Only limits the check to one flavor ("" for both).
	Only Flavor `json:"only,omitempty"`
	// Severity is how bad a failure is.
	Severity Severity `json:"severity"`
	// Criteria says when the check passes, warns and fails.
	Criteria string `json:"criteria"`
	// Why says why the check matters.
	Why string `json:"rationale"`
	// Fix says how to make the check pass; FixMySQL, when set, replaces
	// it for MySQL.
	Fix      string `json:"fix"`
	FixMySQL string `json:"fix_mysql,omitempty"`
}

// cis returns the check's CIS reference for a flavor.
func (c Check) cis(f Flavor) *CISRef {
	if f == MySQL {
		return c.MySQL
	}
	return c.MariaDB
}

// Checks returns every check, in the order [Run] reports them.
func Checks() []Check {
	out := make([]Check, len(checks))
	for i, c := range checks {
		out[i] = c.Check
	}
	return out
}

// Failed returns how many findings have Result [Fail]. Findings with
// Result [Error] are not counted; see [Count].
func Failed(fs []Finding) int { return Count(fs, Fail) }

// Count returns how many findings have Result r.
func Count(fs []Finding, r Result) int {
	n := 0
	for _, f := range fs {
		if f.Result == r {
			n++
		}
	}
	return n
}

// Run runs every check against t and returns one finding per check, in
// the order of [Checks]. A check that cannot run is reported with Result
// [Error]; Run itself fails only if t.Query is nil or ctx ends, in which
// case it returns the findings made so far.
func Run(ctx context.Context, t Target) ([]Finding, error) {
	r, err := RunReport(ctx, t)
	if r == nil {
		return nil, err
	}
	return r.Findings, err
}

// ErrProfile is returned for an unknown profile or an unknown ID in
// Only or Skip.
var ErrProfile = errors.New("audit: unknown profile or check")

// Profiles are the names Target.Profile takes.
var Profiles = []string{"cis-level1", "cis-level2", "mysecure"}

// RunReport runs the checks that Target.Profile, Only and Skip select
// and returns the report, in the order of [Checks].
func RunReport(ctx context.Context, t Target) (*Report, error) {
	if t.Query == nil {
		return nil, errors.New("audit: Target.Query is nil")
	}
	if err := validSelection(t); err != nil {
		return nil, err
	}
	a := newAuditor(t)
	flavor := a.flavor(ctx)
	r := &Report{SchemaVersion: SchemaVersion, Profile: t.Profile}
	if r.Profile == "" {
		r.Profile = "mysecure"
	}
	r.Server.Flavor = flavor
	r.Server.Version, _ = a.serverVersion(ctx)
	for _, c := range checks {
		if !selected(c.Check, t, flavor) {
			continue
		}
		if err := ctx.Err(); err != nil {
			r.summarize()
			return r, err
		}
		r.Findings = append(r.Findings, a.run(ctx, c))
	}
	r.summarize()
	return r, nil
}

// outcome is what a check function returns: its result and evidence. A
// non-nil error turns into Result Error.
type outcome struct {
	result   Result
	evidence []Evidence
}

// texts turns plain strings into evidence.
func texts(ss []string) []Evidence {
	out := make([]Evidence, 0, len(ss))
	for _, s := range ss {
		out = append(out, Evidence{Text: s})
	}
	return out
}

func pass(ev ...string) outcome { return outcome{Pass, texts(ev)} }

func fail(ev ...string) outcome { return outcome{Fail, texts(ev)} }

func notApplicable(ev ...string) outcome { return outcome{NotApplicable, texts(ev)} }

// worst returns fail if any fail evidence, else warn if any warn evidence,
// else pass; evidence is fail items, then warn items, then notes.
func worst(fails, warns, notes []string) outcome {
	return worstE(texts(fails), texts(warns), texts(notes))
}

// worstE is worst for structured evidence.
func worstE(fails, warns, notes []Evidence) outcome {
	ev := append(append(append([]Evidence(nil), fails...), warns...), notes...)
	switch {
	case len(fails) > 0:
		return outcome{Fail, ev}
	case len(warns) > 0:
		return outcome{Warn, ev}
	}
	return outcome{Pass, ev}
}

type check struct {
	Check
	run func(ctx context.Context, a *auditor) (outcome, error)
}

// run runs one check, turning an error (or a bug's panic) into an Error
// finding.
func (a *auditor) run(ctx context.Context, c check) (f Finding) {
	defer func() {
		f.Summary = f.Title
		if len(f.Evidence) > 0 {
			f.Summary = f.Evidence[0].Text
		}
	}()
	flavor := a.flavor(ctx)
	f = Finding{ID: c.ID, Title: c.Title, Why: c.Why, Fix: c.Fix, Severity: c.Severity}
	if flavor == MySQL && c.FixMySQL != "" {
		f.Fix = c.FixMySQL
	}
	if ref := c.cis(flavor); ref != nil {
		f.CISID, f.Level = ref.ID, ref.Level
	}
	defer func() {
		if r := recover(); r != nil {
			f.Result = Error
			f.Evidence = texts([]string{fmt.Sprintf("internal error in check: %v", r)})
		}
	}()
	if c.Only != "" && flavor != "" && c.Only != flavor {
		f.Result, f.Evidence = NotApplicable, texts([]string{fmt.Sprintf("applies to %s only; the server is %s", c.Only, flavor)})
		return f
	}
	o, err := c.run(ctx, a)
	if err != nil {
		f.Result = Error
		f.Evidence = texts([]string{err.Error()})
		return f
	}
	f.Result, f.Evidence = o.result, o.evidence
	return f
}

// auditor holds what several checks share, each read at most once.
type auditor struct {
	t Target

	accts    []account
	acctsErr error
	acctsSrc string
	acctsOK  bool

	version    string
	versionErr error
	versionOK  bool

	datadir    string
	datadirErr error
	datadirOK  bool

	inv *inventory

	memo map[string]memoEntry

	privs    map[string]privSet
	privsErr error
	// roleChains maps each role to the logins holding it, with the chain
	// of roles through which they do (set by globalPrivs).
	roleChains map[string]map[string]string

	proc     *procInfo
	procErr  error
	procDone bool

	persistedOpts []mycnf.Option
	persistedNote string
	persistedErr  error
	persistedDone bool
}

func newAuditor(t Target) *auditor {
	if t.ServerUser == "" {
		t.ServerUser = "mysql"
	}
	if len(t.Admins) == 0 {
		t.Admins = DefaultAdmins
	}
	t.Host.fill()
	return &auditor{t: t, memo: map[string]memoEntry{}}
}

type memoEntry struct {
	rows [][]string
	err  error
}

// cached runs sql once per Run.
func (a *auditor) cached(ctx context.Context, sql string, cols int) ([][]string, error) {
	if m, ok := a.memo[sql]; ok {
		return m.rows, m.err
	}
	rows, err := a.query(ctx, sql, cols)
	a.memo[sql] = memoEntry{rows, err}
	return rows, err
}

// flavor is the server's flavor from VERSION(), "" when unknown.
func (a *auditor) flavor(ctx context.Context) Flavor {
	v, err := a.serverVersion(ctx)
	if err != nil {
		return ""
	}
	return FlavorOf(v)
}

// FlavorOf tells the flavor from a VERSION() string.
func FlavorOf(version string) Flavor {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return MariaDB
	}
	if version != "" && version[0] >= '0' && version[0] <= '9' {
		return MySQL
	}
	return ""
}

// query runs sql and checks that every row has at least cols columns.
func (a *auditor) query(ctx context.Context, sql string, cols int) ([][]string, error) {
	rows, err := a.t.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("query %q failed: %v", sql, err)
	}
	for _, r := range rows {
		if len(r) < cols {
			return nil, fmt.Errorf("query %q: got a row of %d columns, want %d", sql, len(r), cols)
		}
	}
	return rows, nil
}

// value runs sql, which must return one row, and returns its first column.
func (a *auditor) value(ctx context.Context, sql string) (string, error) {
	rows, err := a.query(ctx, sql, 1)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 {
		return "", fmt.Errorf("query %q: got %d rows, want 1", sql, len(rows))
	}
	return rows[0][0], nil
}

// variable returns a global system variable (name must be a plain
// identifier) via SELECT @@GLOBAL.name, which, unlike SHOW VARIABLES and
// information_schema, tells NULL from an empty string.
func (a *auditor) variable(ctx context.Context, name string) (string, error) {
	return a.value(ctx, "SELECT @@GLOBAL."+name)
}

// boolVar reads a boolean variable.
func (a *auditor) boolVar(ctx context.Context, name string) (bool, string, error) {
	v, err := a.variable(ctx, name)
	if err != nil {
		return false, v, err
	}
	switch strings.ToUpper(v) {
	case "1", "ON", "TRUE", "YES":
		return true, v, nil
	case "0", "OFF", "FALSE", "NO":
		return false, v, nil
	}
	return false, v, fmt.Errorf("variable %s: unexpected value %q", name, v)
}

// serverVersion returns VERSION(), such as "10.11.19-MariaDB-0+deb12u1".
func (a *auditor) serverVersion(ctx context.Context) (string, error) {
	if !a.versionOK {
		a.version, a.versionErr = a.value(ctx, "SELECT VERSION()")
		a.versionOK = true
	}
	return a.version, a.versionErr
}

// isMariaDB reports whether the server is MariaDB (as opposed to MySQL).
func (a *auditor) isMariaDB(ctx context.Context) (bool, error) {
	v, err := a.serverVersion(ctx)
	if err != nil {
		return false, err
	}
	return strings.Contains(strings.ToLower(v), "mariadb"), nil
}

// dataDir returns Target.DataDir or @@datadir.
func (a *auditor) dataDir(ctx context.Context) (string, error) {
	if a.t.DataDir != "" {
		return a.t.DataDir, nil
	}
	if !a.datadirOK {
		a.datadir, a.datadirErr = a.variable(ctx, "datadir")
		if a.datadirErr == nil && (a.datadir == "" || a.datadir == Null) {
			a.datadirErr = errors.New("the server reports no datadir")
		}
		a.datadirOK = true
	}
	return a.datadir, a.datadirErr
}
