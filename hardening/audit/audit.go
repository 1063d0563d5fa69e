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
	"strings"
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
	// should be able to read mysql.global_priv (or mysql.user) and
	// mysql.db, as root can.
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
)

// Finding is the outcome of one check.
type Finding struct {
	// ID is the check's stable identifier, such as "accounts.anonymous".
	ID string `json:"id"`
	// Title says in a few words what is checked: what a pass means.
	Title string `json:"title"`
	// Result is pass, fail, warn or error.
	Result Result `json:"result"`
	// Summary says in one line what was found: the title for a pass,
	// else the first item of the evidence (and how many more there are).
	Summary string `json:"summary"`
	// Why says why the check matters.
	Why string `json:"why"`
	// Fix says how to make the check pass.
	Fix string `json:"fix"`
	// Evidence lists what was found: offending accounts, file:line
	// positions, variable values, or why the check could not run. It may
	// be empty for a pass.
	Evidence []string `json:"evidence,omitempty"`
}

// Check describes one check, for documentation.
type Check struct {
	// ID is the stable identifier that findings carry.
	ID string `json:"id"`
	// Title says in a few words what is checked.
	Title string `json:"title"`
	// Criteria says when the check passes, warns and fails.
	Criteria string `json:"criteria"`
	// Why says why the check matters.
	Why string `json:"why"`
	// Fix says how to make the check pass.
	Fix string `json:"fix"`
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
	if t.Query == nil {
		return nil, errors.New("audit: Target.Query is nil")
	}
	a := newAuditor(t)
	out := make([]Finding, 0, len(checks))
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		out = append(out, a.run(ctx, c))
	}
	return out, nil
}

// outcome is what a check function returns: its result and evidence. A
// non-nil error turns into Result Error.
type outcome struct {
	result   Result
	evidence []string
}

func pass(ev ...string) outcome { return outcome{Pass, ev} }

// worst returns fail if any fail evidence, else warn if any warn evidence,
// else pass; evidence is fail items, then warn items, then notes.
func worst(fails, warns, notes []string) outcome {
	ev := append(append(append([]string(nil), fails...), warns...), notes...)
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
	f = Finding{ID: c.ID, Title: c.Title, Why: c.Why, Fix: c.Fix}
	defer func() {
		if r := recover(); r != nil {
			f.Result = Error
			f.Evidence = []string{fmt.Sprintf("internal error in check: %v", r)}
			f.Summary = summary(f)
		}
	}()
	defer func() { f.Summary = summary(f) }()
	o, err := c.run(ctx, a)
	if err != nil {
		f.Result = Error
		f.Evidence = []string{err.Error()}
		return f
	}
	f.Result, f.Evidence = o.result, o.evidence
	return f
}

// summary is the headline of a finding: what was found, never the title
// of a check that did not pass.
func summary(f Finding) string {
	if f.Result == Pass || len(f.Evidence) == 0 {
		return f.Title
	}
	s := f.Evidence[0]
	if f.Result == Error {
		s = "could not check: " + s
	}
	if n := len(f.Evidence) - 1; n > 0 && f.Result != Error {
		s += fmt.Sprintf(" (and %d more)", n)
	}
	return s
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
}

func newAuditor(t Target) *auditor {
	if t.ServerUser == "" {
		t.ServerUser = "mysql"
	}
	return &auditor{t: t}
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
