package hardening

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mysecure/mysecure/hardening/guard"
	"github.com/mysecure/mysecure/internal/mycnf"
)

// serverOptions reads the server groups of the option file the server
// starts with (and what it includes), in the order the server reads them.
func serverOptions(optionFile string) []mycnf.Option {
	if optionFile == "" {
		optionFile = "/etc/mysql/my.cnf"
	}
	l, err := mycnf.LoadAll(optionFile)
	if err != nil || l == nil {
		return nil
	}
	return mycnf.Select(l.Options, "mysqld", "server", "mariadb", "mariadbd")
}

// compiledDefaults asks the server binary for its built-in values of the
// pinned options (plugin-dir, secure-file-priv), without option files.
func compiledDefaults(bin string) map[string]string {
	out, err := exec.Command(bin, "--no-defaults", "--verbose", "--help").Output()
	if err != nil {
		return nil
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "plugin-dir", "secure-file-priv":
			v := strings.Join(f[1:], " ")
			if strings.HasPrefix(v, "(No default") {
				v = ""
			}
			m[f[0]] = v
		}
	}
	return m
}

// pins fixes the options that redirect the server's files or code to the
// values the server has now, with the datadir and the paths inside it
// moved to their place in the mount. dataDir is the datadir's path as
// configured (outside the mount), mountDD its path in the mount.
func pins(dataDir, mountDD string, opts []mycnf.Option, defaults map[string]string) *guard.Pins {
	configured := map[string]string{}
	var names, values []string
	for _, o := range opts {
		names, values = append(names, o.Name), append(values, o.Value)
		configured[guard.CanonicalOption(o.Name)] = o.Value
	}
	inMount := func(v string) string {
		switch {
		case v == "":
			return mountDD
		case !filepath.IsAbs(v):
			return filepath.Join(mountDD, v)
		case v == dataDir || strings.HasPrefix(filepath.Clean(v), dataDir+"/"):
			return filepath.Join(mountDD, strings.TrimPrefix(filepath.Clean(v), dataDir))
		}
		return filepath.Clean(v)
	}
	p := &guard.Pins{PluginLoad: guard.PluginList(names, values)}
	add := func(name, value string, accept ...string) {
		var acc []string
		for _, a := range accept {
			if a != value && a != "" {
				acc = append(acc, a)
			}
		}
		p.Options = append(p.Options, guard.Pin{Option: name, Value: value, Accept: acc})
	}
	add("datadir", mountDD, dataDir, configured["datadir"])
	for _, name := range []string{"innodb-data-home-dir", "innodb-log-group-home-dir", "innodb-undo-directory", "aria-log-dir-path"} {
		v, set := configured[name]
		if !set {
			// Unset: the server uses the datadir; a spelling of it is fine.
			add(name, mountDD, dataDir, dataDir+"/", "./")
			continue
		}
		add(name, inMount(v), v)
	}
	pd := configured["plugin-dir"]
	if pd == "" {
		pd = defaults["plugin-dir"]
	}
	if pd == "" {
		pd = "/usr/lib/mysql/plugin"
	}
	add("plugin-dir", filepath.Clean(pd))
	sfp, set := configured["secure-file-priv"]
	if !set {
		sfp = defaults["secure-file-priv"]
	}
	if sfp != "" && strings.ToUpper(sfp) != "NULL" {
		add("secure-file-priv", inMount(sfp), sfp)
	} else {
		add("secure-file-priv", sfp)
	}
	add("symbolic-links", "0")
	return p
}
