// Package guard is the --skip-grant-tables guard that stands in front of
// an encrypted mysqld/mariadbd: it removes every form of
// skip-grant-tables the server accepts from the command line, overrides it
// when an option file sets it, refuses --init-file outside an allow-list
// and --bootstrap, logs each attempt, then execs the real binary with
// everything else unchanged.
//
// It runs on every server start with the starter's privileges and reads
// untrusted input (argv, option files): it must stay small, must never
// print secrets, and must fail closed (no start) when its configuration is
// missing or broken. It must not import cobra, viper, FUSE or crypto.
package guard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultConfigPath is where `mysecure harden mysqld` writes the guard's
// configuration.
const DefaultConfigPath = "/etc/mysecure/mysqld-guard.json"

// Config is the guard's configuration.
type Config struct {
	// RealBinary is the server to exec: its path inside the mount.
	RealBinary string `json:"real_binary"`
	// OriginalBinary is where the server was before it was encrypted: a
	// server started before hardening runs from there (SIGHUP mode).
	OriginalBinary string `json:"original_binary,omitempty"`
	// AuditLog receives one JSON line per attempt ("" for none).
	AuditLog string `json:"audit_log,omitempty"`
	// InitFileAllow lists the init files the server may run (exact
	// absolute paths, or directory prefixes ending in "/").
	InitFileAllow []string `json:"init_file_allow,omitempty"`
	// Syslog also logs attempts to syslog (facility auth).
	Syslog bool `json:"syslog,omitempty"`
	// GlobalFiles are the option files read by default, in order
	// (default: /etc/my.cnf, /etc/mysql/my.cnf, ~/.my.cnf).
	GlobalFiles []string `json:"global_files,omitempty"`
	// Version is the server's base version for its option groups
	// (mysqld-10.11); all version groups are checked when empty.
	Version string `json:"version,omitempty"`
	// Mount is the mysecure mount point, without symlinks: the real
	// binary, this configuration and the pinned datadir must be on it.
	Mount string `json:"mount,omitempty"`
	// Pins fixes the datadir and every other option that redirects the
	// server's files or code (see Pin). A configuration written by
	// 'harden mysqld' always has them; Main refuses one without.
	Pins *Pins `json:"pins,omitempty"`
}

// Finding is one attempt the guard acted on.
type Finding struct {
	Source string `json:"source"` // "argv" or FILE:LINE
	Option string `json:"option"` // as written
	Action string `json:"action"` // removed, overridden, refused
	Reason string `json:"reason"`
}

const skipGrant = "skip-grant-tables"

// minSkipGrantPrefix is the shortest unique prefix of skip-grant-tables
// among mariadbd 10.11's options ("skip-g" is ambiguous), checked against
// the real server in the tests. Shorter names are not this option.
const minSkipGrantPrefix = "skip-gr"

// normName canonicalizes an option name as the server compares it:
// case-insensitive, '_' as '-', without "--", "loose-" and "enable-".
func normName(name string) string {
	n := strings.ToLower(strings.TrimSpace(strings.TrimLeft(name, "-")))
	n = strings.ReplaceAll(n, "_", "-")
	for {
		switch {
		case strings.HasPrefix(n, "loose-"):
			n = n[len("loose-"):]
		case strings.HasPrefix(n, "enable-"):
			n = n[len("enable-"):]
		default:
			return n
		}
	}
}

// IsSkipGrant reports whether an option name (from argv without its
// value, or from an option file) names skip-grant-tables in any form the
// server accepts. Negations (--skip-skip-grant-tables,
// --disable-skip-grant-tables) are not.
func IsSkipGrant(name string) bool {
	n := normName(name)
	return len(n) >= len(minSkipGrantPrefix) && strings.HasPrefix(skipGrant, n)
}

// isInitFile: init-file and its unique prefixes ("init-f"...).
func isInitFile(name string) bool {
	n := normName(name)
	return len(n) >= len("init-f") && strings.HasPrefix("init-file", n)
}

// isBootstrap: --bootstrap runs SQL from stdin with no privilege checks.
// The server takes any unique prefix ("--bo"); the shortest ones are
// refused too (an ambiguous one would not start the server anyway).
func isBootstrap(name string) bool {
	n := normName(name)
	return len(n) >= 2 && strings.HasPrefix("bootstrap", n)
}

func (c *Config) initAllowed(p string) bool {
	if p == "" {
		return true
	}
	clean := filepath.Clean(p)
	for _, a := range c.InitFileAllow {
		if strings.HasSuffix(a, "/") {
			if strings.HasPrefix(clean, a) && len(clean) > len(a) {
				return true
			}
			continue
		}
		if clean == filepath.Clean(a) {
			return true
		}
	}
	return false
}

// ErrRefused: the server must not start with these options.
var ErrRefused = errors.New("refused")

// Filter returns the arguments to exec (argv without argv[0]) and what it
// did. It pins settings on the command line, right after the leading
// --defaults/--no-defaults arguments (so that they win over every option
// file, and no dangling option before them can take them as its value) and
// again at the end (so that they win over any later argument):
// --skip-grant-tables=0, --init-file= with the allowed init file or
// empty, and, when the configuration has Pins, every pinned option (the
// datadir and the other paths the server reads data or code from) and the
// plugin list. Even a form this code does not recognize, or an option file
// it cannot see (a FIFO, $MYSQL_HOME/my.cnf), cannot turn them back. A
// pinned option set to another place in argv or an option file, a plugin
// outside the list, --chroot and --bootstrap make it refuse to start the
// server (ErrRefused).
func (c *Config) Filter(args []string, home string) ([]string, []Finding, error) {
	var body []string
	var fs []Finding
	argInit, fileInit := "", ""
	refuse := func(src, opt, why string) ([]string, []Finding, error) {
		fs = append(fs, Finding{Source: src, Option: opt, Action: "refused", Reason: why})
		return nil, fs, fmt.Errorf("%w: %s (%s): %s", ErrRefused, opt, src, why)
	}
	// Option files first: the server reads them before argv.
	files, groups := c.optionFiles(args, home)
	var plugins []string
	pluginsSet := false
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && !fi.Mode().IsRegular() {
			return refuse(f, "option file", "an option file that is not a regular file could show the guard one content and the server another")
		}
		for _, o := range readOptions(f, groups) {
			src := fmt.Sprintf("%s:%d", o.File, o.Line)
			switch {
			case IsSkipGrant(o.Name) && !isFalse(o.Value, o.HasValue):
				fs = append(fs, Finding{Source: src, Option: o.Name, Action: "overridden", Reason: "skip-grant-tables disables all privilege checks"})
			case isBootstrap(o.Name):
				return refuse(src, o.Name, "bootstrap runs SQL with no privilege checks")
			case isInitFile(o.Name):
				if c.initAllowed(o.Value) {
					fileInit = o.Value
				} else {
					fileInit = ""
					fs = append(fs, Finding{Source: src, Option: o.Name + "=" + o.Value, Action: "overridden", Reason: "init file not in the allow-list"})
				}
			default:
				canon, neg := pinnedName(o.Name)
				if canon == "" || c.Pins == nil && canon != "chroot" {
					continue
				}
				if canon == "plugin-load" || canon == "plugin-load-add" {
					plugins, pluginsSet = pluginList(plugins, canon, o.Value), true
					continue
				}
				if err := c.Pins.checkPinned(canon, o.Value, o.HasValue, neg); err != nil {
					return refuse(src, optText(o.Name, o.Value, o.HasValue), err.Error())
				}
			}
		}
	}
	filePlugins := append([]string(nil), plugins...)
	lead := leadingDefaults(args)
	rest := args[lead:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if len(a) >= 2 && a[0] == '-' && a[1] != '-' {
			// A group: the server reads -ar/x as -a -r /x.
			for _, g := range groupedShorts(a) {
				if g == "chroot" || c.Pins != nil {
					return refuse("argv", a, "--"+g+" as a short option grouped after another one: give it on its own")
				}
			}
			// Short options: -h DATADIR, -s (symbolic links), -r DIR (chroot).
			canon := shortName(a[1:2])
			if canon != "" && c.Pins != nil || canon == "chroot" {
				value, has := a[2:], len(a) > 2
				if !has && canon != "symbolic-links" && i+1 < len(rest) {
					i++
					value, has = rest[i], true
					a += " " + value
				}
				if err := c.Pins.checkPinned(canon, value, has, false); err != nil {
					return refuse("argv", a, err.Error())
				}
				continue // pinned below
			}
			body = append(body, a)
			continue
		}
		if !strings.HasPrefix(a, "--") {
			body = append(body, a)
			continue
		}
		name, value, hasValue := strings.Cut(a[2:], "=")
		switch {
		case IsSkipGrant(name):
			fs = append(fs, Finding{Source: "argv", Option: a, Action: "removed", Reason: "skip-grant-tables disables all privilege checks"})
			continue
		case isBootstrap(name):
			return refuse("argv", a, "--bootstrap runs SQL with no privilege checks")
		case isInitFile(name):
			if !hasValue || !c.initAllowed(value) {
				fs = append(fs, Finding{Source: "argv", Option: a, Action: "removed", Reason: "init file not in the allow-list"})
				continue
			}
			argInit = value
			continue // pinned below
		}
		canon, neg := pinnedName(name)
		if canon == "" || c.Pins == nil && canon != "chroot" || lookupPinnable(canon).value && !c.Pins.pinsValue(canon) {
			body = append(body, a)
			continue
		}
		if !hasValue && takesNext(canon) && i+1 < len(rest) {
			// --datadir DIR: the server takes the next argument.
			i++
			value, hasValue = rest[i], true
			a += " " + value
		}
		if canon == "plugin-load" || canon == "plugin-load-add" {
			plugins, pluginsSet = pluginList(plugins, canon, value), true
			continue // the resulting list is pinned below
		}
		if err := c.Pins.checkPinned(canon, value, hasValue, neg); err != nil {
			return refuse("argv", a, err.Error())
		}
		// Same place: the pin below says it.
	}
	if c.Pins != nil {
		if err := c.Pins.checkPlugins(plugins); err != nil {
			return refuse("argv and option files", "plugin-load", err.Error())
		}
		if !pluginsSet {
			plugins = []string{}
		}
	} else {
		plugins, filePlugins = nil, nil
	}
	init := argInit
	if init == "" {
		init = fileInit
	}
	pins := []string{"--skip-grant-tables=0", "--init-file=" + init}
	front := append(append([]string(nil), pins...), c.Pins.args(nonNil(filePlugins, plugins))...)
	end := append(append([]string(nil), pins...), c.Pins.args(plugins)...)
	out := append([]string(nil), args[:lead]...)
	out = append(out, front...)
	out = append(out, body...)
	out = append(out, end...)
	return out, fs, nil
}

// noArgShorts are mariadbd 10.11's short options that take no argument
// (-a, -?, -s, -v, in the order of its --help): in a group of short options the letter after one of
// them is another option, not its value.
const noArgShorts = "a?sv"

// groupedShorts returns the pinned or refused options (canonical names)
// that a group of short options carries after its first letter.
func groupedShorts(a string) []string {
	var out []string
	for j := 1; j+1 < len(a) && strings.IndexByte(noArgShorts, a[j]) >= 0; j++ {
		if c := shortName(a[j+1 : j+2]); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// nonNil returns a, or an empty list when a is nil and b is not (so that
// the front pins reset the plugin list too).
func nonNil(a, b []string) []string {
	if a == nil && b != nil {
		return []string{}
	}
	return a
}

func optText(name, value string, has bool) string {
	if has {
		return name + "=" + value
	}
	return name
}

// leadingDefaults counts the leading arguments that choose option files
// (the server reads them only in front).
func leadingDefaults(args []string) int {
	n := 0
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch strings.ReplaceAll(strings.ToLower(name), "_", "-") {
		case "no-defaults", "defaults-file", "defaults-extra-file", "defaults-group-suffix", "print-defaults":
			n++
			continue
		}
		break
	}
	return n
}

func isFalse(v string, has bool) bool {
	if !has {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "0", "off", "false":
		return true
	}
	// The server treats other values than 1/on/true as false too
	// (checked against mariadbd in the tests); report them anyway.
	return false
}

// optionFiles lists the files the server reads for args, and its groups.
func (c *Config) optionFiles(args []string, home string) ([]string, []string) {
	globals := c.GlobalFiles
	if len(globals) == 0 {
		globals = []string{"/etc/my.cnf", "/etc/mysql/my.cnf", "~/.my.cnf"}
	}
	var defaultsFile, extraFile, suffix string
	noDefaults := false
	// Only leading arguments select files (as in the server).
	for _, a := range args {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch strings.ReplaceAll(strings.ToLower(name), "_", "-") {
		case "no-defaults":
			noDefaults = true
		case "defaults-file":
			defaultsFile = value
		case "defaults-extra-file":
			extraFile = value
		case "defaults-group-suffix":
			suffix = value
		default:
			goto done
		}
	}
done:
	if suffix == "" {
		suffix = os.Getenv("MYSQL_GROUP_SUFFIX")
	}
	groups := c.groups()
	if suffix != "" {
		groups = withSuffix(suffix, groups)
	}
	if noDefaults {
		return nil, groups
	}
	expand := func(p string) string {
		if strings.HasPrefix(p, "~/") {
			if home == "" {
				return ""
			}
			return filepath.Join(home, p[2:])
		}
		return p
	}
	if defaultsFile != "" {
		return []string{defaultsFile}, groups
	}
	var files []string
	for _, g := range globals {
		if g == "~/.my.cnf" && extraFile != "" {
			files = append(files, extraFile)
		}
		if p := expand(g); p != "" {
			files = append(files, p)
		}
	}
	if extraFile != "" && !slices.Contains(files, extraFile) {
		files = append(files, extraFile)
	}
	// The server also reads my.cnf in $MYSQL_HOME (and $MARIADB_HOME).
	for _, env := range []string{"MARIADB_HOME", "MYSQL_HOME"} {
		if d := os.Getenv(env); d != "" {
			files = append(files, filepath.Join(d, "my.cnf"))
		}
	}
	return files, groups
}

func (c *Config) groups() []string {
	if c.Version != "" {
		return []string{"mysqld", "server", "mysqld-" + c.Version, "mariadb", "mariadb-" + c.Version, "mariadbd", "mariadbd-" + c.Version, "client-server", "galera"}
	}
	return nil // every group that looks like a server group: see serverGroup
}

func withSuffix(suffix string, groups []string) []string {
	if groups == nil {
		return nil
	}
	out := append([]string(nil), groups...)
	for _, g := range groups {
		out = append(out, g+suffix)
	}
	return out
}
