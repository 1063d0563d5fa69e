package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Flavor is the server family.
type Flavor string

// The supported flavors.
const (
	MariaDB Flavor = "mariadb"
	MySQL   Flavor = "mysql"
)

// Marker starts every file engine mode writes; disable removes only those.
const Marker = "# written by 'mysecure engine enable'; 'mysecure engine disable' removes it"

// Defaults.
const (
	DefaultKeyPath   = "/etc/mysql/mysecure-engine/keys.txt"
	DefaultCnfName   = "99-mysecure-engine.cnf"
	DefaultStatePath = "/etc/mysecure/engine.json"
	DefaultThreads   = 4
	DefaultPluginDir = "/usr/lib/mysql/plugin"
	// KeyPlugin is the plugin-load entry of MariaDB's key plugin (the
	// guard's allow-list holds it on a hardened server).
	KeyPlugin = "file_key_management"
)

// Options locate the server and where engine mode keeps its files.
// Empty fields get the defaults of Fill.
type Options struct {
	Flavor Flavor
	// Binary is the server binary as installed (before hardening).
	Binary string
	// User is the OS user the server runs as; the key rule is limited to it.
	User string
	// CnfDir is the conf.d directory the server reads.
	CnfDir string
	// CnfName is the option file's name in CnfDir.
	CnfName string
	// KeyPath is the key file's place in @protected, as a path outside the
	// mount (the rule's pattern is this path without its leading '/').
	// The server is pointed at its path in the mount.
	KeyPath string
	// Mount is the mount point.
	Mount string
	// Threads is innodb_encryption_threads (MariaDB).
	Threads int
	// HardenState is the harden state file; when it exists the server
	// runs hardened and the rule names the real binary in the mount.
	HardenState string
	// BackupTool, when set, also gets a rule on the key file (physical
	// backups and their --prepare need the key), for root only.
	BackupTool string
	// StatePath records the applied steps.
	StatePath string
	// PluginDir is MySQL's plugin directory, where the keyring
	// component's configuration goes (default /usr/lib/mysql/plugin).
	PluginDir string
}

// Fill sets the defaults.
func (o *Options) Fill() error {
	if o.Flavor == "" {
		o.Flavor = MariaDB
	}
	if o.Flavor != MariaDB && o.Flavor != MySQL {
		return fmt.Errorf("unknown flavor %q (mariadb or mysql)", o.Flavor)
	}
	if o.Binary == "" {
		cands := []string{"/usr/sbin/mariadbd", "/usr/sbin/mysqld"}
		if o.Flavor == MySQL {
			cands = []string{"/usr/sbin/mysqld"}
		}
		for _, c := range cands {
			if fi, err := os.Lstat(c); err == nil && (fi.Mode().IsRegular() || fi.Mode()&os.ModeSymlink != 0) {
				o.Binary = c
				break
			}
		}
		if o.Binary == "" {
			return errors.New("no server binary found in /usr/sbin: pass --binary")
		}
	}
	if o.User == "" {
		o.User = "mysql"
	}
	if o.CnfDir == "" {
		o.CnfDir = "/etc/mysql/mariadb.conf.d"
		if o.Flavor == MySQL {
			o.CnfDir = "/etc/mysql/mysql.conf.d"
		}
		if _, err := os.Stat(o.CnfDir); err != nil {
			o.CnfDir = "/etc/mysql/conf.d"
		}
	}
	if o.CnfName == "" {
		o.CnfName = DefaultCnfName
	}
	if o.KeyPath == "" {
		o.KeyPath = DefaultKeyPath
		if o.Flavor == MySQL {
			o.KeyPath = "/etc/mysql/mysecure-engine/component_keyring_file"
		}
	}
	if !filepath.IsAbs(o.KeyPath) || filepath.Clean(o.KeyPath) != o.KeyPath {
		return fmt.Errorf("the key path %q must be absolute and clean", o.KeyPath)
	}
	if o.Mount == "" {
		return errors.New("the mount point is not configured")
	}
	if o.Threads <= 0 {
		o.Threads = DefaultThreads
	}
	if o.StatePath == "" {
		o.StatePath = DefaultStatePath
	}
	if o.PluginDir == "" {
		o.PluginDir = DefaultPluginDir
	}
	return nil
}

// CnfPath is the option file engine mode writes.
func (o *Options) CnfPath() string { return filepath.Join(o.CnfDir, o.CnfName) }

// KeyInMount is the key file's path in the mount.
func (o *Options) KeyInMount() string { return filepath.Join(o.Mount, "protected", o.KeyPath) }

// KeyPattern is the key file's pattern in @protected rules.
func (o *Options) KeyPattern() string { return strings.TrimPrefix(o.KeyPath, "/") }

// Phase is a state of engine mode that the option file (and, on a
// hardened server, the guard) puts in force.
type Phase int

// The phases.
const (
	// Encrypting: everything the server writes is encrypted.
	Encrypting Phase = iota
	// Decrypting: 'engine disable' has turned encryption off; the key
	// plugin stays loaded because encrypted pages, redo log blocks or
	// binary logs may remain until the next restart and purge.
	Decrypting
	// Off: no option file, no pins.
	Off
)

func (p Phase) String() string {
	switch p {
	case Encrypting:
		return "encrypting"
	case Decrypting:
		return "decrypting"
	}
	return "off"
}

// Setting is one server option engine mode sets, as written in the
// option file ('_' spelling).
type Setting struct {
	Name  string
	Value string
}

// Settings returns the server options of a phase (MariaDB), in the order
// of the option file. The key plugin is loaded with FORCE_PLUS_PERMANENT
// in both phases: without the key (mount down, rule missing) the server
// refuses to start instead of running without encryption, or without the
// key it still needs to read what it encrypted.
func (o *Options) Settings(p Phase) []Setting {
	on := func(v string) string {
		if p == Decrypting {
			return "OFF"
		}
		return v
	}
	return []Setting{
		{"plugin_load_add", KeyPlugin},
		{KeyPlugin, "FORCE_PLUS_PERMANENT"},
		{KeyPlugin + "_filename", o.KeyInMount()},
		{KeyPlugin + "_encryption_algorithm", "AES_CTR"},
		{"innodb_encrypt_tables", on("FORCE")},
		{"innodb_encrypt_log", on("ON")},
		{"innodb_encrypt_temporary_tables", on("ON")},
		{"innodb_encryption_threads", strconv.Itoa(o.Threads)},
		{"encrypt_tmp_files", on("ON")},
		{"encrypt_tmp_disk_tables", on("ON")},
		{"encrypt_binlog", on("ON")},
		{"aria_encrypt_tables", on("ON")},
	}
}

// GuardValues are the settings of a phase that the guard pins on a
// hardened server (option name in the guard's '-' spelling, value): every
// one except the plugin list (pinned as a list) and the number of
// background threads (a tuning knob).
func (o *Options) GuardValues(p Phase) []Setting {
	var out []Setting
	for _, s := range o.Settings(p) {
		if s.Name == "plugin_load_add" || s.Name == "innodb_encryption_threads" {
			continue
		}
		out = append(out, Setting{Name: strings.ReplaceAll(s.Name, "_", "-"), Value: s.Value})
	}
	return out
}

// ServerConfig returns the option file that turns on the engine's
// encryption with the key on the mount.
func (o *Options) ServerConfig() string { return o.PhaseConfig(Encrypting) }

// PhaseConfig returns the option file of a phase.
func (o *Options) PhaseConfig(p Phase) string {
	if p == Off {
		return ""
	}
	var b strings.Builder
	b.WriteString(Marker + "\n")
	if o.Flavor == MySQL {
		// MySQL 8.4: the keyring component is loaded from the manifest
		// (ManifestFiles); these are the encryption settings.
		b.WriteString(`# Engine mode (MySQL 8.4): component_keyring_file keeps its data file on the
# mysecure mount; see ManifestFiles for the manifest and component config.
[mysqld]
default_table_encryption = ON
table_encryption_privilege_check = ON
innodb_redo_log_encrypt = ON
innodb_undo_log_encrypt = ON
binlog_encryption = ON
`)
		return b.String()
	}
	if p == Decrypting {
		b.WriteString(`# Engine mode is being disabled (MariaDB): encryption is off, but the key
# plugin stays loaded until 'mysecure engine disable' has checked that nothing
# encrypted remains (tablespaces, the redo log after a restart, binary logs).
`)
	} else {
		b.WriteString(`# Engine mode (MariaDB): file_key_management reads its keys from the mysecure
# mount, where only the server binary may open them. Without them the server
# refuses to start (FORCE_PLUS_PERMANENT): there is no plaintext fallback.
`)
	}
	b.WriteString("[mariadb]\n")
	for _, s := range o.Settings(p) {
		fmt.Fprintf(&b, "%s = %s\n", s.Name, s.Value)
	}
	return b.String()
}

// ManifestFile is a file MySQL needs besides the option file.
type ManifestFile struct {
	Path    string
	Content string
}

// ManifestFiles returns, for MySQL, the global component manifest next to
// the server binary (mysqld.my) and the keyring component's configuration
// in the plugin directory (pluginDir, default o.PluginDir), which names the
// data file on the mount. MariaDB needs none.
func (o *Options) ManifestFiles(pluginDir string) []ManifestFile {
	if o.Flavor != MySQL {
		return nil
	}
	if pluginDir == "" {
		pluginDir = o.PluginDir
	}
	if pluginDir == "" {
		pluginDir = DefaultPluginDir
	}
	bin := strings.TrimSuffix(o.Binary, filepath.Ext(o.Binary))
	return []ManifestFile{
		{Path: bin + ".my", Content: `{"components": "file://component_keyring_file"}` + "\n"},
		{Path: filepath.Join(pluginDir, "component_keyring_file.cnf"),
			Content: fmt.Sprintf(`{"path": %q, "read_only": false}`+"\n", o.KeyInMount())},
	}
}
