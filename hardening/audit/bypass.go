package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mysecure/mysecure/internal/mycnf"
)

// Beyond CIS: the ways around privilege checks and around the guard.

// dangerousArg says why a server option (canonical name, no loose-)
// bypasses privilege checks, or "".
func dangerousArg(o mycnf.Option, f Flavor) string {
	switch {
	case enablesSkipGrantTables(o, f):
		return "turns privilege checks off"
	case namesOption(o.Name, "init-file", 6, f) && o.HasValue && o.Value != "":
		return "runs an SQL file with every privilege at start"
	case namesOption(o.Name, "bootstrap", 2, f):
		return "runs SQL from stdin without privilege checks"
	case namesOption(o.Name, "user", 4, f) && o.HasValue && (o.Value == "root" || o.Value == "0"):
		return "runs the server as root"
	}
	return ""
}

func checkServerCmdline(ctx context.Context, a *auditor) (outcome, error) {
	p, err := a.serverProc(ctx)
	if err != nil {
		return outcome{}, err
	}
	f := a.flavor(ctx)
	var fails []Evidence
	for i, arg := range p.args {
		if i == 0 {
			continue
		}
		if o, ok := argOption(arg); ok {
			if why := dangerousArg(o, f); why != "" {
				fails = append(fails, Evidence{Text: fmt.Sprintf("the running server (pid %d) was started with --%s: it %s", p.pid, o.Name, why), Pid: p.pid, Variable: o.Name})
			}
		}
	}
	for _, kv := range p.env {
		if strings.HasPrefix(kv, "LD_") {
			n, _, _ := strings.Cut(kv, "=")
			fails = append(fails, Evidence{Text: fmt.Sprintf("the running server (pid %d) has %s in its environment: other code runs inside it", p.pid, n), Pid: p.pid, Variable: n})
		}
	}
	return worstE(fails, nil, []Evidence{{Text: fmt.Sprintf("pid %d: %d arguments, %d environment variables inspected", p.pid, len(p.args), len(p.env)), Pid: p.pid}}), nil
}

// serverUnit reports whether a unit file name is a MySQL/MariaDB unit or
// its drop-in.
func serverUnit(path string) bool {
	n := strings.ToLower(path)
	return strings.Contains(n, "mariadb") || strings.Contains(n, "mysql")
}

func checkSystemdUnits(ctx context.Context, a *auditor) (outcome, error) {
	f := a.flavor(ctx)
	var files []string
	for _, d := range a.t.Host.SystemdDirs {
		for _, g := range []string{"*.service", "*.service.d/*.conf"} {
			m, _ := filepath.Glob(filepath.Join(d, g))
			for _, p := range m {
				if serverUnit(p) {
					files = append(files, p)
				}
			}
		}
	}
	var fails []Evidence
	seen := map[string]bool{}
	for i := 0; i < len(files); i++ {
		p := files[i]
		if seen[p] {
			continue
		}
		seen[p] = true
		lines, err := readLines(p)
		if err != nil {
			continue
		}
		for _, l := range lines {
			k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
			if ok && strings.TrimSpace(k) == "EnvironmentFile" {
				files = append(files, strings.TrimPrefix(strings.TrimSpace(v), "-"))
			}
		}
		scanLines(p, lines, f, &fails)
	}
	sortEv(fails)
	return worstE(fails, nil, []Evidence{{Text: fmt.Sprintf("%d unit files, drop-ins and environment files inspected", len(seen))}}), nil
}

// scanLines looks for dangerous server options and LD_ variables in the
// words of unit or environment file lines.
func scanLines(file string, lines []string, f Flavor, fails *[]Evidence) {
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		for _, w := range strings.Fields(strings.NewReplacer(`"`, " ", `'`, " ").Replace(t)) {
			w = strings.TrimPrefix(w, "Environment=")
			if k, _, ok := strings.Cut(w, "="); ok && strings.HasPrefix(k, "LD_") {
				*fails = append(*fails, Evidence{Text: fmt.Sprintf("%s:%d sets %s for the server", file, i+1, k), File: file, Line: i + 1})
				continue
			}
			if idx := strings.Index(w, "--"); idx >= 0 {
				if o, ok := argOption(w[idx:]); ok {
					if why := dangerousArg(o, f); why != "" {
						*fails = append(*fails, Evidence{Text: fmt.Sprintf("%s:%d: --%s %s", file, i+1, o.Name, why), File: file, Line: i + 1})
					}
				}
			}
		}
	}
}

func checkOptionFileBypass(ctx context.Context, a *auditor) (outcome, error) {
	f := a.flavor(ctx)
	inGroup := a.serverGroups(ctx)
	var fails []Evidence
	for _, p := range a.optionFiles() {
		l, err := mycnf.LoadAll(p)
		if err != nil {
			return outcome{}, err
		}
		for _, o := range l.Options {
			g := strings.ToLower(o.Group)
			loc := fmt.Sprintf("%s:%d: [%s] %s", o.File, o.Line, o.Group, o.Name)
			ev := Evidence{File: o.File, Line: o.Line, Variable: o.Name}
			switch {
			case inGroup(g) && !enablesSkipGrantTables(o, f) && dangerousArg(o, f) != "":
				ev.Text = loc + ": " + dangerousArg(o, f)
				fails = append(fails, ev)
			case g == "mysqld_safe" || g == "safe_mysqld":
				n := optName(o.Name)
				switch {
				case n == "malloc-lib" && o.Value != "":
					ev.Text = loc + ": mysqld_safe preloads this library into the server (CVE-2016-6662)"
					fails = append(fails, ev)
				case n == "ledir" || (n == "mysqld" && !strings.HasSuffix(o.Value, "-guard")):
					ev.Text = loc + ": mysqld_safe starts another server binary"
					fails = append(fails, ev)
				}
			}
		}
	}
	persisted, _, err := a.persisted(ctx)
	if err != nil {
		return outcome{}, err
	}
	for _, o := range persisted {
		if why := dangerousArg(o, f); why != "" && !enablesSkipGrantTables(o, f) {
			fails = append(fails, Evidence{Text: optLoc(o) + ": " + why, File: o.File, Variable: o.Name})
		}
	}
	sortEv(fails)
	return worstE(fails, nil, nil), nil
}

func checkOptionFilesWritable(_ context.Context, a *auditor) (outcome, error) {
	inv := a.inventory()
	if err := inv.err(); err != nil {
		return outcome{}, err
	}
	uid, err := a.serverUID()
	if err != nil {
		return outcome{}, err
	}
	gid, err := a.serverGID()
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	dirs := map[string]bool{}
	for _, e := range inv.entries {
		perm := e.st.Mode().Perm()
		if e.uid == uid || (statGroup(e.st) == gid && perm&0o020 != 0) || perm&0o002 != 0 {
			fails = append(fails, fileEv(e.path, e.st, e.uid, fmt.Sprintf("%s may be written by the server user %s (CVE-2016-6662: SQL that writes a file can add server options)", e.path, a.t.ServerUser)))
		}
		if !e.dir {
			dirs[filepath.Dir(e.path)] = true
		}
	}
	for d := range dirs {
		st, o, err := statOwner(d)
		if err != nil {
			continue
		}
		perm := st.Mode().Perm()
		if o == uid || (statGroup(st) == gid && perm&0o020 != 0) || (perm&0o002 != 0 && perm&os.ModeSticky == 0) {
			fails = append(fails, fileEv(d, st, o, fmt.Sprintf("directory %s of option files may be written by the server user %s", d, a.t.ServerUser)))
		}
	}
	sortEv(fails)
	return worstE(fails, nil, []Evidence{{Text: fmt.Sprintf("%d option files and directories inspected", len(inv.entries))}}), nil
}

func (a *auditor) allowed(list []string, name string) bool {
	for _, n := range list {
		if strings.EqualFold(strings.TrimSuffix(n, ".so"), strings.TrimSuffix(name, ".so")) {
			return true
		}
	}
	return false
}

func checkPluginsAllowed(ctx context.Context, a *auditor) (outcome, error) {
	var fails []Evidence
	rows, err := a.query(ctx, "SELECT name, dl FROM mysql.plugin", 2)
	if err != nil {
		return outcome{}, err
	}
	for _, r := range rows {
		if !a.allowed(a.t.AllowedPlugins, r[0]) {
			fails = append(fails, Evidence{Text: fmt.Sprintf("mysql.plugin loads %s from %s at every start, and it is not allowed (audit.plugins)", r[0], r[1]), Value: r[0]})
		}
	}
	udfs, err := a.query(ctx, "SELECT name, dl FROM mysql.func", 2)
	if err != nil {
		return outcome{}, err
	}
	for _, r := range udfs {
		if !a.allowed(a.t.AllowedUDFs, r[0]) {
			fails = append(fails, Evidence{Text: fmt.Sprintf("UDF %s from %s (mysql.func) is not allowed (audit.udfs): native code in the server", r[0], r[1]), Value: r[0]})
		}
	}
	f := a.flavor(ctx)
	opts, err := a.serverOptions(ctx)
	if err != nil {
		return outcome{}, err
	}
	check := func(o mycnf.Option, where string, ev Evidence) {
		if !(namesOption(o.Name, "plugin-load", 11, f) || namesOption(o.Name, "plugin-load-add", 12, f)) {
			return
		}
		for _, item := range strings.FieldsFunc(o.Value, func(r rune) bool { return r == ';' }) {
			name, _, _ := strings.Cut(item, "=")
			if !a.allowed(a.t.AllowedPlugins, name) {
				ev.Text = fmt.Sprintf("%s loads %s, which is not allowed (audit.plugins)", where, item)
				fails = append(fails, ev)
			}
		}
	}
	for _, o := range opts {
		check(o, optLoc(o), Evidence{File: o.File, Line: o.Line})
	}
	if p, err := a.serverProc(ctx); err == nil {
		for _, arg := range p.args {
			if o, ok := argOption(arg); ok {
				check(o, "the server's command line", Evidence{Pid: p.pid})
			}
		}
	}
	sortEv(fails)
	return worstE(fails, nil, []Evidence{{Text: "allowed plugins: " + strings.Join(a.t.AllowedPlugins, ", ")}}), nil
}

func checkLdPreload(_ context.Context, a *auditor) (outcome, error) {
	lines, err := readLines(a.t.Host.LdPreload)
	if os.IsNotExist(err) {
		return pass(a.t.Host.LdPreload + " does not exist"), nil
	}
	if err != nil {
		return outcome{}, err
	}
	var fails []Evidence
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if t != "" && t[0] != '#' {
			fails = append(fails, Evidence{Text: fmt.Sprintf("%s:%d preloads %s into every program, the server included", a.t.Host.LdPreload, i+1, t), File: a.t.Host.LdPreload, Line: i + 1})
		}
	}
	return worstE(fails, nil, nil), nil
}

func checkSecureFilePrivDir(ctx context.Context, a *auditor) (outcome, error) {
	v, err := a.variable(ctx, "secure_file_priv")
	if err != nil {
		return outcome{}, err
	}
	if v == "" || v == Null {
		return notApplicable("secure_file_priv is not a directory (see config.secure-file-priv)"), nil
	}
	dir := resolved(v)
	var fails []Evidence
	bad := func(what, p string) {
		if p == "" {
			return
		}
		rp := resolved(p)
		if within(dir, rp) || within(rp, dir) {
			fails = append(fails, Evidence{Text: fmt.Sprintf("secure_file_priv = %s overlaps %s %s: FILE holders can read or plant files there", v, what, p), Variable: "secure_file_priv", Value: v})
		}
	}
	if dir == "/" {
		fails = append(fails, Evidence{Text: "secure_file_priv = / allows every file", Variable: "secure_file_priv", Value: v})
	}
	if within(dir, "/tmp") || within(dir, "/var/tmp") || within(dir, "/dev/shm") {
		fails = append(fails, Evidence{Text: fmt.Sprintf("secure_file_priv = %s is in a world-writable temporary directory", v), Variable: "secure_file_priv", Value: v})
	}
	if d, err := a.dataDir(ctx); err == nil {
		bad("the datadir", d)
	}
	if p, err := a.variable(ctx, "plugin_dir"); err == nil {
		bad("the plugin directory", p)
	}
	for _, f := range a.optionFiles() {
		bad("the option file directory", filepath.Dir(f))
	}
	if inv := a.inventory(); inv != nil {
		for _, e := range inv.entries {
			if e.dir {
				bad("the option file directory", e.path)
			}
		}
	}
	sortEv(fails)
	return worstE(fails, nil, []Evidence{{Text: "secure_file_priv = " + v, Variable: "secure_file_priv", Value: v}}), nil
}

func checkCredentialFiles(_ context.Context, a *auditor) (outcome, error) {
	files := append([]string(nil), a.t.Host.CredentialFiles...)
	for _, h := range a.t.Host.Homes {
		files = append(files, filepath.Join(h, ".my.cnf"), filepath.Join(h, ".mylogin.cnf"))
	}
	var fails, notes []Evidence
	for _, p := range files {
		st, uid, err := statOwner(p)
		if err != nil {
			continue
		}
		if st.Mode().Perm()&0o077 != 0 {
			fails = append(fails, fileEv(p, st, uid, fmt.Sprintf("%s has mode %04o: others than its owner may read the credentials", p, st.Mode().Perm())))
		}
		if home := filepath.Dir(p); !contains(a.t.Host.CredentialFiles, p) {
			if _, huid, err := statOwner(home); err == nil && huid != uid {
				fails = append(fails, fileEv(p, st, uid, fmt.Sprintf("%s is owned by %s, not by the owner of %s (%s)", p, userName(uid), home, userName(huid))))
			}
		} else if uid != 0 {
			fails = append(fails, fileEv(p, st, uid, fmt.Sprintf("%s is owned by %s, not root", p, userName(uid))))
		}
		notes = append(notes, fileEv(p, st, uid, describe(p, st, uid)))
	}
	return worstE(fails, nil, notes), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkGuardInEffect(ctx context.Context, a *auditor) (outcome, error) {
	var fails, notes []Evidence
	h := a.t.Host
	b, err := os.ReadFile(h.HardenState)
	switch {
	case os.IsNotExist(err):
		fails = append(fails, Evidence{Text: "'mysecure harden mysqld' has not been run (no " + h.HardenState + ")", File: h.HardenState})
	case err != nil:
		return outcome{}, err
	default:
		var st map[string]any
		if json.Unmarshal(b, &st) != nil {
			fails = append(fails, Evidence{Text: h.HardenState + " is not valid JSON", File: h.HardenState})
		} else {
			notes = append(notes, Evidence{Text: h.HardenState + " records the hardening", File: h.HardenState})
		}
	}
	fuse, err := mountedFuse(h.MountInfo, h.Mount)
	if err != nil {
		return outcome{}, err
	}
	if !fuse {
		fails = append(fails, Evidence{Text: fmt.Sprintf("mysecure's mount %s is not mounted", h.Mount), File: h.Mount})
	}
	p, err := a.serverProc(ctx)
	if err != nil {
		return outcome{}, err
	}
	if !within(p.exe, filepath.Join(h.Mount, "protected")) {
		fails = append(fails, Evidence{Text: fmt.Sprintf("the running server (pid %d) is %s, not the binary in @protected under %s: it was not started through the guard", p.pid, p.exe, h.Mount), Pid: p.pid, File: p.exe})
	} else {
		notes = append(notes, Evidence{Text: fmt.Sprintf("the running server (pid %d) is %s", p.pid, p.exe), Pid: p.pid, File: p.exe})
	}
	dir, err := a.dataDir(ctx)
	if err != nil {
		return outcome{}, err
	}
	if !within(resolved(dir), filepath.Join(h.Mount, "mysql")) {
		fails = append(fails, Evidence{Text: fmt.Sprintf("the datadir %s is not in @mysql under %s", dir, h.Mount), File: dir})
	}
	return worstE(fails, nil, notes), nil
}
