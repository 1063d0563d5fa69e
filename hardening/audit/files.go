package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/mysecure/mysecure/internal/mycnf"
)

// serverUID returns the uid of Target.ServerUser.
func (a *auditor) serverUID() (uint32, error) {
	uid, _, err := a.serverIDs()
	return uid, err
}

// serverGID returns the primary gid of Target.ServerUser.
func (a *auditor) serverGID() (uint32, error) {
	_, gid, err := a.serverIDs()
	return gid, err
}

// serverIDs looks up the uid and primary gid of Target.ServerUser.
func (a *auditor) serverIDs() (uid, gid uint32, err error) {
	u, err := user.Lookup(a.t.ServerUser)
	if err != nil {
		return 0, 0, fmt.Errorf("server user: %v", err)
	}
	for _, id := range []struct {
		what, s string
		dst     *uint32
	}{{"uid", u.Uid, &uid}, {"gid", u.Gid, &gid}} {
		n, err := strconv.ParseUint(id.s, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("server user %s: %s %q: %v", a.t.ServerUser, id.what, id.s, err)
		}
		*id.dst = uint32(n)
	}
	return uid, gid, nil
}

// statOwner stats path (following symlinks) and returns its owner too.
func statOwner(path string) (fs.FileInfo, uint32, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	uid, err := owner(st)
	return st, uid, err
}

// owner returns the uid owning a file.
func owner(st fs.FileInfo) (uint32, error) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no owner information on this system", st.Name())
	}
	return sys.Uid, nil
}

// userName returns the name of uid, or the number.
func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// describe is "path (mode 0750, owner mysql)".
func describe(path string, st fs.FileInfo, uid uint32) string {
	return fmt.Sprintf("%s (mode %04o, owner %s)", path, st.Mode().Perm(), userName(uid))
}

func checkDataDir(ctx context.Context, a *auditor) (outcome, error) {
	dir, err := a.dataDir(ctx)
	if err != nil {
		return outcome{}, err
	}
	want, err := a.serverUID()
	if err != nil {
		return outcome{}, err
	}
	dir = filepath.Clean(dir)
	st, uid, err := statOwner(dir)
	if err != nil {
		return outcome{}, fmt.Errorf("datadir: %v (the audit must run on the server's host)", err)
	}
	perm := st.Mode().Perm()
	var fails []Evidence
	if !st.IsDir() {
		fails = append(fails, fileEv(dir, st, uid, dir+" is not a directory"))
	}
	if uid != want {
		fails = append(fails, fileEv(dir, st, uid, fmt.Sprintf("%s is owned by %s, not by the server user %s", dir, userName(uid), a.t.ServerUser)))
	}
	if perm&0o022 != 0 {
		fails = append(fails, fileEv(dir, st, uid, fmt.Sprintf("%s has mode %04o: group or others may write to it", dir, perm)))
	} else if perm&0o007 != 0 {
		fails = append(fails, fileEv(dir, st, uid, fmt.Sprintf("%s has mode %04o: others may read or enter it (0750 or stricter)", dir, perm)))
	}
	return worstE(fails, nil, []Evidence{fileEv(dir, st, uid, describe(dir, st, uid))}), nil
}

// errorLogPath is @@log_error as a path, "" for stderr.
func (a *auditor) errorLogPath(ctx context.Context) (string, string, error) {
	v, err := a.variable(ctx, "log_error")
	if err != nil {
		return "", "", err
	}
	if v == "" || v == Null || v == "stderr" {
		return "", v, nil
	}
	path := v
	if !filepath.IsAbs(path) {
		dir, err := a.dataDir(ctx)
		if err != nil {
			return "", v, fmt.Errorf("log_error %q is relative to the datadir: %v", v, err)
		}
		path = filepath.Join(dir, path)
	}
	return path, v, nil
}

func checkErrorLog(ctx context.Context, a *auditor) (outcome, error) {
	path, v, err := a.errorLogPath(ctx)
	if err != nil {
		return outcome{}, err
	}
	if path == "" {
		return notApplicable(fmt.Sprintf("log_error = %q: no error log file (see logging.error-log)", v)), nil
	}
	fails, notes, err := a.serverFilePerms(path, "error log", 0o660)
	if err != nil {
		return outcome{}, err
	}
	return worstE(fails, nil, append([]Evidence{{Text: "log_error = " + v, Variable: "log_error", Value: v}}, notes...)), nil
}

// cnfEntry is an option file, or a directory read by !includedir.
type cnfEntry struct {
	path string
	dir  bool
	st   fs.FileInfo
	uid  uint32
	// opts are all the options of a regular file, in every group (the
	// file alone, without what it includes).
	opts []mycnf.Option
}

// inventory is every option file and !includedir directory reachable from
// the top files.
type inventory struct {
	top     []string
	entries []cnfEntry
	errs    []string
	seen    map[string]bool
}

// optionFiles returns the top option files: Target.OptionFiles, or those
// of DefaultOptionFiles that exist.
func (a *auditor) optionFiles() []string {
	if len(a.t.OptionFiles) > 0 {
		return a.t.OptionFiles
	}
	var out []string
	for _, p := range DefaultOptionFiles {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// inventory lists the option files, once per Run.
func (a *auditor) inventory() *inventory {
	if a.inv != nil {
		return a.inv
	}
	inv := &inventory{seen: map[string]bool{}}
	inv.top = a.optionFiles()
	for _, p := range inv.top {
		inv.file(p, 0)
	}
	a.inv = inv
	return inv
}

// stat records path and returns its index in entries, or -1 if it cannot
// be stat'ed.
func (inv *inventory) stat(path string, dir bool) int {
	st, uid, err := statOwner(path)
	if err != nil {
		inv.errs = append(inv.errs, err.Error())
		return -1
	}
	inv.entries = append(inv.entries, cnfEntry{path: path, dir: dir, st: st, uid: uid})
	return len(inv.entries) - 1
}

// file records an option file and follows its includes as the server
// does (a missing included file is skipped; a world-writable file is
// ignored by the server, so its includes are not followed, but it is
// listed and read).
func (inv *inventory) file(path string, depth int) {
	if inv.seen[path] {
		return
	}
	inv.seen[path] = true
	if depth > 0 {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return
		}
	}
	i := inv.stat(path, false)
	if i < 0 || !inv.entries[i].st.Mode().IsRegular() {
		return
	}
	fh, err := os.Open(path)
	if err != nil {
		inv.errs = append(inv.errs, err.Error())
		return
	}
	f, err := mycnf.Parse(fh, path)
	fh.Close()
	var syn *mycnf.SyntaxError
	if err != nil && !errors.As(err, &syn) {
		inv.errs = append(inv.errs, err.Error())
		return
	}
	if f == nil {
		return
	}
	inv.entries[i].opts = f.Options
	if inv.entries[i].st.Mode().Perm()&0o002 != 0 || depth >= mycnf.MaxDepth {
		return
	}
	for _, inc := range f.Includes {
		if !inc.Dir {
			inv.file(inc.Path, depth+1)
			continue
		}
		inv.dir(inc.Path, depth)
	}
}

// dir records an !includedir directory and reads its *.cnf files.
func (inv *inventory) dir(dir string, depth int) {
	key := dir + "/"
	if inv.seen[key] {
		return
	}
	inv.seen[key] = true
	if inv.stat(dir, true) < 0 {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		inv.errs = append(inv.errs, err.Error())
		return
	}
	for _, ent := range ents {
		if strings.HasSuffix(ent.Name(), ".cnf") {
			inv.file(strings.TrimSuffix(dir, "/")+"/"+ent.Name(), depth+1)
		}
	}
}

// err reports what kept the inventory from being complete.
func (inv *inventory) err() error {
	if len(inv.errs) == 0 {
		return nil
	}
	return fmt.Errorf("option files: %s", strings.Join(inv.errs, "; "))
}

func noOptionFiles() outcome {
	return pass(fmt.Sprintf("no option files found (looked for %s)", strings.Join(DefaultOptionFiles, ", ")))
}

func checkOptionFilePerms(_ context.Context, a *auditor) (outcome, error) {
	inv := a.inventory()
	if err := inv.err(); err != nil {
		return outcome{}, err
	}
	if len(inv.top) == 0 {
		return noOptionFiles(), nil
	}
	want, err := a.serverUID()
	if err != nil {
		return outcome{}, err
	}
	var fails, warns []string
	for _, e := range inv.entries {
		perm := e.st.Mode().Perm()
		what := "file"
		if e.dir {
			what = "directory"
		}
		if e.uid != 0 && e.uid != want {
			fails = append(fails, fmt.Sprintf("%s: %s owned by %s, not by root or %s", e.path, what, userName(e.uid), a.t.ServerUser))
		}
		switch {
		case perm&0o002 != 0 && !e.dir:
			fails = append(fails, fmt.Sprintf("%s: mode %04o, world-writable (the server ignores such a file, and anyone may rewrite it)", e.path, perm))
		case perm&0o002 != 0:
			fails = append(fails, fmt.Sprintf("%s: directory mode %04o, world-writable (anyone may add option files)", e.path, perm))
		case perm&0o020 != 0:
			warns = append(warns, fmt.Sprintf("%s: %s mode %04o, group-writable", e.path, what, perm))
		}
	}
	notes := []string{fmt.Sprintf("%d option files and directories inspected", len(inv.entries))}
	return worst(fails, warns, notes), nil
}

// isPasswordOption reports whether an option carries a password: any name
// containing "password" (password, master-password, ...), an abbreviation
// of "password" the tools accept ("pass", "passw", ...), or
// wsrep_sst_auth (user:password).
func isPasswordOption(o mycnf.Option) bool {
	n := strings.TrimPrefix(o.Canonical(), "loose-")
	return strings.Contains(n, "password") ||
		(len(n) >= 4 && strings.HasPrefix("password", n)) ||
		n == "wsrep-sst-auth"
}

func checkOptionFilePasswords(_ context.Context, a *auditor) (outcome, error) {
	inv := a.inventory()
	if err := inv.err(); err != nil {
		return outcome{}, err
	}
	if len(inv.top) == 0 {
		return noOptionFiles(), nil
	}
	var fails []string
	readable := 0
	for _, e := range inv.entries {
		if e.dir {
			continue
		}
		readable++
		for _, o := range e.opts {
			if isPasswordOption(o) && o.HasValue && o.Value != "" {
				fails = append(fails, fmt.Sprintf("%s:%d: [%s] %s= in a global option file (mode %04o)", o.File, o.Line, o.Group, o.Name, e.st.Mode().Perm()))
			}
		}
	}
	return worst(fails, nil, []string{fmt.Sprintf("%d global option files inspected", readable)}), nil
}

// enablesSkipGrantTables reports whether an option turns skip-grant-tables
// on, as mariadbd 10.11 parses it: an optional "loose-", an optional
// "enable-", then a prefix of "skip-grant-tables" of at least "skip-gr"
// (names compared case-insensitively, '_' = '-'), with no value or one of
// 1/on/true. "disable-" and "skip-skip-" forms, and any other value,
// turn it off.
//
// MySQL 8 takes no abbreviations: only the full name counts there.
func enablesSkipGrantTables(o mycnf.Option, f Flavor) bool {
	const full, shortest = "skip-grant-tables", "skip-gr"
	n := strings.TrimPrefix(o.Canonical(), "loose-")
	n = strings.TrimPrefix(n, "enable-")
	if len(n) < len(shortest) || !strings.HasPrefix(full, n) || (f == MySQL && n != full) {
		return false
	}
	if !o.HasValue {
		return true
	}
	switch strings.ToLower(o.Value) {
	case "1", "on", "true":
		return true
	}
	return false
}

// mysqlServerGroups are the groups MySQL's mysqld reads (with
// [mysqld-MAJOR.MINOR]); MariaDB's [mariadb], [mariadbd],
// [client-server] and [galera] are not among them.
func mysqlServerGroups(version string) []string {
	return []string{"mysqld", "server", "mysqld-" + version}
}

// serverGroups returns a function telling the option groups the server
// reads. With the version unknown, every version's groups count.
func (a *auditor) serverGroups(ctx context.Context) func(string) bool {
	base := ""
	if v, err := a.serverVersion(ctx); err == nil {
		if parts := strings.SplitN(v, ".", 3); len(parts) >= 2 {
			minor := strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
			base = parts[0] + "." + minor
		}
	}
	groups := mycnf.ServerGroups(base)
	if a.flavor(ctx) == MySQL {
		groups = mysqlServerGroups(base)
	}
	want := map[string]bool{}
	for _, g := range groups {
		want[g] = true
	}
	return func(g string) bool {
		g = strings.ToLower(g)
		if want[g] {
			return true
		}
		if base != "" {
			return false
		}
		for _, p := range []string{"mysqld-", "mariadb-", "mariadbd-"} {
			if rest, ok := strings.CutPrefix(g, p); ok && rest != "" && rest[0] >= '0' && rest[0] <= '9' {
				return true
			}
		}
		return false
	}
}

func checkSkipGrantTablesFiles(ctx context.Context, a *auditor) (outcome, error) {
	top := a.optionFiles()
	if len(top) == 0 {
		return noOptionFiles(), nil
	}
	inGroup := a.serverGroups(ctx)
	f := a.flavor(ctx)
	var fails, notes []string
	for _, p := range top {
		l, err := mycnf.LoadAll(p)
		if err != nil {
			return outcome{}, err
		}
		notes = append(notes, fmt.Sprintf("%s: %d files read", p, len(l.Files)))
		for _, o := range l.Options {
			if inGroup(o.Group) && enablesSkipGrantTables(o, f) {
				fails = append(fails, optLoc(o))
			}
		}
	}
	persisted, note, err := a.persisted(ctx)
	if err != nil {
		return outcome{}, err
	}
	for _, o := range persisted {
		if enablesSkipGrantTables(o, f) {
			fails = append(fails, optLoc(o))
		}
	}
	sort.Strings(notes)
	if note != "" {
		notes = append(notes, note)
	}
	return worst(fails, nil, notes), nil
}
