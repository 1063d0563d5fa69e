package guard

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Pin fixes one option that redirects the server's files or code (the
// datadir, the InnoDB and Aria directories, the plugin directory, the
// FILE directory, symbolic links). Without pins, root could start the
// genuine binary, which the rules let open @mysql, on a forged datadir
// whose privilege tables it wrote itself, with the real data files linked
// in (issue 13).
type Pin struct {
	// Option is the canonical option name (datadir, plugin-dir, ...).
	Option string `json:"option"`
	// Value is what the server is given, on the command line, before and
	// after every other argument.
	Value string `json:"value"`
	// Accept lists the other spellings of the same place that argv or an
	// option file may carry (the datadir's path outside the mount, the
	// value the option file had when the server was hardened). Any other
	// value makes the guard refuse to start the server.
	Accept []string `json:"accept,omitempty"`
}

// Pins is the set of options the guard pins.
type Pins struct {
	Options []Pin `json:"options"`
	// PluginLoad lists the plugins (plugin-load / plugin-load-add entries,
	// "name=library" or "library") the server may load at start.
	PluginLoad []string `json:"plugin_load,omitempty"`
	// Values fixes options to a value: engine mode's encryption settings
	// (innodb-encrypt-tables, the key plugin and its key file...), so that
	// a restart cannot turn encryption off or point the key plugin at
	// other keys. Only the options of ValueOptions can be pinned.
	Values []ValuePin `json:"values,omitempty"`
	// RequirePlugins must be in the effective plugin list (the key plugin
	// in engine mode): the guard refuses to start the server without them.
	RequirePlugins []string `json:"require_plugins,omitempty"`
}

// ValuePin fixes one option to one value.
type ValuePin struct {
	// Option is the canonical name (innodb-encrypt-tables).
	Option string `json:"option"`
	// Value is what the server is given; another value in argv or an
	// option file is refused (compared case-insensitively, ON/1/TRUE and
	// OFF/0/FALSE as one, paths as paths).
	Value string `json:"value"`
}

// pinnable describes an option the guard pins or refuses: its canonical
// name, the length of its shortest unique prefix among mariadbd 10.11's
// options (checked against the real server in the tests), and its short
// form.
type pinnable struct {
	name      string
	minPrefix int
	short     string
	boolean   bool
	// value: pinned by a ValuePin; optional: its value may be left out
	// (--innodb-encrypt-log), so the next argument is never taken as it;
	// path: compared as a path.
	value, optional, path bool
}

// PinnedOptions are the options whose value a Pin fixes, in the order the
// guard writes them.
var PinnedOptions = []string{"datadir", "innodb-data-home-dir", "innodb-log-group-home-dir", "innodb-undo-directory", "aria-log-dir-path", "plugin-dir", "secure-file-priv", "symbolic-links"}

var pinnables = []pinnable{
	{name: "datadir", minPrefix: 4, short: "h"},
	{name: "innodb-data-home-dir", minPrefix: 13},
	{name: "innodb-log-group-home-dir", minPrefix: 12},
	{name: "innodb-undo-directory", minPrefix: 13},
	{name: "aria-log-dir-path", minPrefix: 10},
	{name: "plugin-dir", minPrefix: 8},
	{name: "secure-file-priv", minPrefix: 8},
	{name: "symbolic-links", minPrefix: 3, short: "s", boolean: true},
	// Lists and refusals.
	{name: "plugin-load", minPrefix: 11},
	{name: "plugin-load-add", minPrefix: 12},
	{name: "chroot", minPrefix: 3, short: "r"},
	// Engine mode (ValueOptions); the file-key-management options exist
	// when the plugin is loaded.
	{name: "innodb-encrypt-tables", minPrefix: 17, value: true, optional: true},
	{name: "innodb-encrypt-log", minPrefix: 16, value: true, optional: true},
	{name: "innodb-encrypt-temporary-tables", minPrefix: 17, value: true, optional: true},
	{name: "encrypt-tmp-files", minPrefix: 13, value: true, optional: true},
	{name: "encrypt-tmp-disk-tables", minPrefix: 13, value: true, optional: true},
	{name: "encrypt-binlog", minPrefix: 9, value: true, optional: true},
	{name: "aria-encrypt-tables", minPrefix: 6, value: true, optional: true},
	{name: "file-key-management", minPrefix: 19, value: true, optional: true},
	{name: "file-key-management-filename", minPrefix: 25, value: true, path: true},
	{name: "file-key-management-encryption-algorithm", minPrefix: 21, value: true},
}

// ValueOptions are the options a ValuePin may fix.
func ValueOptions() []string {
	var out []string
	for _, p := range pinnables {
		if p.value {
			out = append(out, p.name)
		}
	}
	return out
}

// pinnedName returns the canonical name of the pinned, listed or refused
// option that name (from argv without "--" and value, or from an option
// file) stands for, or "". negated is set for the skip-/disable- forms of
// a boolean option. An exact name wins over a prefix ("plugin-load" is
// not a prefix of "plugin-load-add" here, as in the server).
func pinnedName(name string) (canon string, negated bool) {
	n := normName(name)
	for _, pre := range []string{"skip-", "disable-"} {
		if rest, ok := strings.CutPrefix(n, pre); ok {
			if c, _ := pinnedName(rest); c != "" && (isBoolean(c) || lookupPinnable(c).value) {
				return c, true
			}
			return "", false
		}
	}
	for _, p := range pinnables {
		if n == p.name {
			return p.name, false
		}
	}
	for _, p := range pinnables {
		if len(n) >= p.minPrefix && strings.HasPrefix(p.name, n) {
			return p.name, false
		}
	}
	return "", false
}

func isBoolean(canon string) bool { return lookupPinnable(canon).boolean }

// takesNext reports whether the option, given without "=value" in argv,
// takes the next argument as its value.
func takesNext(canon string) bool {
	p := lookupPinnable(canon)
	return !p.boolean && !p.optional
}

func lookupPinnable(canon string) pinnable {
	for _, p := range pinnables {
		if p.name == canon {
			return p
		}
	}
	return pinnable{}
}

// shortName maps a short option letter to its canonical name.
func shortName(letter string) string {
	for _, p := range pinnables {
		if p.short != "" && p.short == letter {
			return p.name
		}
	}
	return ""
}

func (p *Pins) valuePin(canon string) *ValuePin {
	if p == nil {
		return nil
	}
	for i := range p.Values {
		if p.Values[i].Option == canon {
			return &p.Values[i]
		}
	}
	return nil
}

// pinsValue reports whether canon is a value option this configuration
// pins (the guard leaves an unpinned one to the server).
func (p *Pins) pinsValue(canon string) bool { return p.valuePin(canon) != nil }

// settingValue reads an option's value for comparison: upper case, the
// boolean spellings as ON and OFF, no value as ON, a skip-/disable- form
// as the opposite (OFF for a non-boolean value).
func settingValue(v string, has, negated bool) string {
	out := "ON"
	if has {
		switch u := strings.ToUpper(strings.TrimSpace(v)); u {
		case "1", "TRUE", "YES", "ENABLE", "ON":
		case "0", "FALSE", "NO", "DISABLE", "DISABLED", "OFF":
			out = "OFF"
		default:
			out = u
		}
	}
	if negated {
		if out == "OFF" {
			return "ON"
		}
		return "OFF"
	}
	return out
}

func (p *Pins) pin(canon string) *Pin {
	if p == nil {
		return nil
	}
	for i := range p.Options {
		if p.Options[i].Option == canon {
			return &p.Options[i]
		}
	}
	return nil
}

// boolValue reads a boolean option's value as the server does: no value
// or 1/on/true/yes/enable is true.
func boolValue(v string, has, negated bool) bool {
	on := true
	if has {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "0", "off", "false", "no", "disable", "disabled":
			on = false
		}
	}
	if negated {
		on = !on
	}
	return on
}

// checkPinned decides one occurrence of a pinned option: nil when it
// names the pinned place, else an error saying what is refused.
func (p *Pins) checkPinned(canon, value string, has, negated bool) error {
	if canon == "chroot" {
		return fmt.Errorf("--chroot would let the server resolve its datadir in a tree chosen by whoever starts it")
	}
	if lookupPinnable(canon).value {
		vp := p.valuePin(canon)
		switch {
		case vp == nil:
			return nil
		case lookupPinnable(canon).path && has && !negated && samePath(value, vp.Value):
			return nil
		case !lookupPinnable(canon).path && settingValue(value, has, negated) == settingValue(vp.Value, true, false):
			return nil
		}
		return fmt.Errorf("%s is pinned to %s by 'mysecure engine' (engine mode: the server's own encryption)", canon, vp.Value)
	}
	pin := p.pin(canon)
	if pin == nil {
		return nil // not pinned by this configuration
	}
	if isBoolean(canon) {
		want := boolValue(pin.Value, true, false)
		if boolValue(value, has, negated) != want {
			return fmt.Errorf("%s is pinned to %v by 'mysecure harden mysqld'", canon, map[bool]string{true: "ON", false: "OFF"}[want])
		}
		return nil
	}
	if !has {
		return fmt.Errorf("%s without a value", canon)
	}
	if samePath(value, pin.Value) {
		return nil
	}
	for _, a := range pin.Accept {
		if samePath(value, a) {
			return nil
		}
	}
	return fmt.Errorf("%s=%s is not the hardened %s (%s)", canon, value, canon, pin.Value)
}

// samePath compares two option values as paths, ignoring a trailing
// slash and "." components; values are never resolved (a symlink could be
// repointed after the check).
func samePath(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" || b == "" {
		return a == b
	}
	return filepath.Clean(a) == filepath.Clean(b)
}

// pluginList applies one plugin-load (reset) or plugin-load-add (append)
// to list.
func pluginList(list []string, canon, value string) []string {
	if canon == "plugin-load" {
		list = nil
	}
	for _, e := range strings.Split(value, ";") {
		if e = strings.TrimSpace(e); e != "" {
			list = append(list, e)
		}
	}
	return list
}

// checkPlugins refuses plugins outside the allow-list, and a list
// without a required plugin.
func (p *Pins) checkPlugins(list []string) error {
	for _, e := range list {
		if !slices.Contains(p.PluginLoad, e) {
			return fmt.Errorf("plugin %q is not among the plugins the server loaded when it was hardened (%s)", e, strings.Join(p.PluginLoad, ";"))
		}
	}
	for _, r := range p.RequirePlugins {
		if !slices.Contains(list, r) {
			return fmt.Errorf("plugin %q is required by 'mysecure engine' (the key plugin of engine mode) and not loaded", r)
		}
	}
	return nil
}

// args returns the pinned options as arguments.
func (p *Pins) args(plugins []string) []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, name := range PinnedOptions {
		pin := p.pin(name)
		if pin == nil {
			continue
		}
		out = append(out, "--"+name+"="+pin.Value)
	}
	if plugins != nil {
		out = append(out, "--plugin-load="+strings.Join(plugins, ";"))
	}
	for _, v := range p.Values {
		out = append(out, "--"+v.Option+"="+v.Value)
	}
	return out
}

// PluginList computes the effective plugin-load list of option-file
// options (in the order the server reads them).
func PluginList(names, values []string) []string {
	var list []string
	for i, n := range names {
		if c, _ := pinnedName(n); c == "plugin-load" || c == "plugin-load-add" {
			list = pluginList(list, c, values[i])
		}
	}
	return list
}

// CanonicalOption is the name the server gives an option name from an
// option file or argv: case, '_', loose-/enable- and, for the options the
// guard pins, unique prefixes resolved.
func CanonicalOption(name string) string {
	if c, neg := pinnedName(name); c != "" && !neg {
		return c
	}
	return normName(name)
}
