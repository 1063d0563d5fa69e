package sshclient

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ErrConfig marks an SSH host definition or target that cannot be used.
var ErrConfig = errors.New("invalid ssh configuration")

// HostConfig is one entry of the `ssh: hosts:` list of mysecure.yaml.
type HostConfig struct {
	Name       string   `mapstructure:"name" yaml:"name" json:"name"`
	Host       string   `mapstructure:"host" yaml:"host" json:"host"`
	Port       int      `mapstructure:"port" yaml:"port,omitempty" json:"port,omitempty"`
	User       string   `mapstructure:"user" yaml:"user,omitempty" json:"user,omitempty"`
	Identity   []string `mapstructure:"identity" yaml:"identity,omitempty" json:"identity,omitempty"`
	KnownHosts []string `mapstructure:"known-hosts" yaml:"known-hosts,omitempty" json:"known_hosts,omitempty"`
	// Jump is another host's name, or user@host[:port], to connect through.
	Jump string `mapstructure:"jump" yaml:"jump,omitempty" json:"jump,omitempty"`
	// PassphraseFile holds the passphrase of the encrypted identity
	// files (for unattended runs: the daemon and cron cannot prompt).
	PassphraseFile string `mapstructure:"passphrase-file" yaml:"passphrase-file,omitempty" json:"passphrase_file,omitempty"`
	// MySQLPort and MySQLSocket say where the MySQL server listens on
	// that host (default 127.0.0.1:3306).
	MySQLPort   int    `mapstructure:"mysql-port" yaml:"mysql-port,omitempty" json:"mysql_port,omitempty"`
	MySQLSocket string `mapstructure:"mysql-socket" yaml:"mysql-socket,omitempty" json:"mysql_socket,omitempty"`
	// Keepalive is the interval of keepalive requests (default 15s; a
	// negative value turns them off).
	Keepalive time.Duration `mapstructure:"keepalive" yaml:"keepalive,omitempty" json:"keepalive,omitempty"`
	// KeepaliveCount is how many intervals may pass without an answer
	// before the connection is closed (default 3).
	KeepaliveCount int `mapstructure:"keepalive-count" yaml:"keepalive-count,omitempty" json:"keepalive_count,omitempty"`
	// HostKeyCheck is "strict" (default: an unknown or changed host key
	// is refused) or "accept-new" (an unknown host's key is added to the
	// first known_hosts file; a changed one is still refused).
	HostKeyCheck string `mapstructure:"host-key-check" yaml:"host-key-check,omitempty" json:"host_key_check,omitempty"`
}

// Settings is the whole `ssh:` section.
type Settings struct {
	// KnownHosts and Identity are the defaults of hosts that set none.
	KnownHosts []string     `mapstructure:"known-hosts" yaml:"known-hosts,omitempty" json:"known_hosts,omitempty"`
	Identity   []string     `mapstructure:"identity" yaml:"identity,omitempty" json:"identity,omitempty"`
	Hosts      []HostConfig `mapstructure:"hosts" yaml:"hosts,omitempty" json:"hosts,omitempty"`
}

// SettingsHolder holds the ssh: section in force: a reload of a
// long-running process's configuration (the daemon) replaces it while
// connections resolve hosts. A stored Settings is never modified.
type SettingsHolder struct{ p atomic.Pointer[Settings] }

// Load returns the settings stored last (nil before the first Store).
func (h *SettingsHolder) Load() *Settings { return h.p.Load() }

// Store replaces the settings.
func (h *SettingsHolder) Store(s Settings) { h.p.Store(&s) }

var (
	hostNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	userRE     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$`)
	// An address: a DNS name or an IP (brackets stripped before).
	addrRE = regexp.MustCompile(`^[A-Za-z0-9_.:%-]{1,253}$`)
)

// Validate checks the section: names unique, hosts set, jumps resolvable
// and without cycles.
func (s *Settings) Validate() error {
	seen := map[string]bool{}
	for i := range s.Hosts {
		h := &s.Hosts[i]
		if !hostNameRE.MatchString(h.Name) {
			return fmt.Errorf("%w: ssh host name %q: use letters, digits, '.', '_' and '-'", ErrConfig, h.Name)
		}
		if seen[h.Name] {
			return fmt.Errorf("%w: two ssh hosts are named %s", ErrConfig, h.Name)
		}
		seen[h.Name] = true
		if err := h.validate(); err != nil {
			return err
		}
	}
	for i := range s.Hosts {
		if _, err := s.Resolve(s.Hosts[i].Name); err != nil {
			return err
		}
	}
	return nil
}

func (h *HostConfig) validate() error {
	label := h.Name
	if label == "" {
		label = h.Host
	}
	switch {
	case h.Host == "" || !addrRE.MatchString(h.Host) || strings.HasPrefix(h.Host, "-"):
		return fmt.Errorf("%w: ssh host %s: host %q is not a host name or address", ErrConfig, label, h.Host)
	case h.Port < 0 || h.Port > 65535:
		return fmt.Errorf("%w: ssh host %s: port %d is out of range", ErrConfig, label, h.Port)
	case h.KeepaliveCount < 0 || h.KeepaliveCount > 100:
		return fmt.Errorf("%w: ssh host %s: keepalive-count %d: want 1 to 100 (0: the default, 3)", ErrConfig, label, h.KeepaliveCount)
	case h.Keepalive > 0 && h.Keepalive < 100*time.Millisecond:
		return fmt.Errorf("%w: ssh host %s: keepalive %s is too short (give a unit: 15s)", ErrConfig, label, h.Keepalive)
	case h.MySQLPort < 0 || h.MySQLPort > 65535:
		return fmt.Errorf("%w: ssh host %s: mysql-port %d is out of range", ErrConfig, label, h.MySQLPort)
	case h.User != "" && !userRE.MatchString(h.User):
		return fmt.Errorf("%w: ssh host %s: user %q is not a valid user name", ErrConfig, label, h.User)
	case h.MySQLSocket != "" && !filepath.IsAbs(h.MySQLSocket):
		return fmt.Errorf("%w: ssh host %s: mysql-socket %q must be an absolute path", ErrConfig, label, h.MySQLSocket)
	case h.PassphraseFile != "" && !filepath.IsAbs(h.PassphraseFile):
		return fmt.Errorf("%w: ssh host %s: passphrase-file %q must be an absolute path", ErrConfig, label, h.PassphraseFile)
	}
	switch h.HostKeyCheck {
	case "", "strict", "accept-new":
	default:
		return fmt.Errorf("%w: ssh host %s: host-key-check %q: want strict or accept-new", ErrConfig, label, h.HostKeyCheck)
	}
	for _, p := range append(append([]string(nil), h.Identity...), h.KnownHosts...) {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%w: ssh host %s: %q must be an absolute path", ErrConfig, label, p)
		}
	}
	return nil
}

// ParseTarget reads "user@host[:port]", "host", "[::1]:2222".
func ParseTarget(s string) (HostConfig, error) {
	var h HostConfig
	rest := s
	if u, r, ok := strings.Cut(s, "@"); ok {
		h.User, rest = u, r
		if !userRE.MatchString(u) {
			return h, fmt.Errorf("%w: %q: user %q is not a valid user name", ErrConfig, s, u)
		}
	}
	host := rest
	if strings.HasPrefix(rest, "[") || strings.Count(rest, ":") == 1 {
		hp, port, err := net.SplitHostPort(rest)
		if err != nil {
			return h, fmt.Errorf("%w: %q: want user@host[:port]", ErrConfig, s)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return h, fmt.Errorf("%w: %q: port %q is not a port number", ErrConfig, s, port)
		}
		host, h.Port = hp, n
	}
	h.Host = host
	if err := h.validate(); err != nil {
		return h, fmt.Errorf("%w: %q: want user@host[:port]", ErrConfig, s)
	}
	return h, nil
}

// Resolve returns the host named name with its jump chain resolved and
// the section's defaults applied; a name that is not configured is read
// as user@host[:port].
func (s *Settings) Resolve(name string) (*Target, error) {
	return s.resolve(name, map[string]bool{})
}

func (s *Settings) resolve(name string, visiting map[string]bool) (*Target, error) {
	if visiting[name] {
		return nil, fmt.Errorf("%w: ssh host %s jumps through itself", ErrConfig, name)
	}
	visiting[name] = true
	h, found := s.Lookup(name)
	if !found {
		var err error
		if h, err = ParseTarget(name); err != nil {
			if !strings.ContainsAny(name, "@:") && hostNameRE.MatchString(name) && len(s.Hosts) > 0 {
				return nil, fmt.Errorf("%w: %q: %v (configured ssh hosts: %s)", ErrConfig, name, err, strings.Join(s.Names(), ", "))
			}
			return nil, err
		}
	}
	if len(h.Identity) == 0 {
		h.Identity = s.Identity
	}
	if len(h.KnownHosts) == 0 {
		h.KnownHosts = s.KnownHosts
	}
	t := &Target{HostConfig: h}
	if h.Jump != "" {
		j, err := s.resolve(h.Jump, visiting)
		if err != nil {
			return nil, fmt.Errorf("ssh host %s: jump: %w", name, err)
		}
		t.Jump = j
	}
	return t, nil
}

// Lookup returns the host of the ssh: section named name.
func (s *Settings) Lookup(name string) (HostConfig, bool) {
	for _, h := range s.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return HostConfig{}, false
}

// Names lists the names of the configured hosts, in their order.
func (s *Settings) Names() []string {
	var n []string
	for _, h := range s.Hosts {
		n = append(n, h.Name)
	}
	return n
}

// Target is a resolved host: its settings and the host to jump through.
type Target struct {
	HostConfig
	Jump *Target
}

// Addr is host:port (port 22 by default).
func (t *Target) Addr() string {
	p := t.Port
	if p == 0 {
		p = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(p))
}

// Label names the target in messages: its configured name, else
// user@host:port.
func (t *Target) Label() string {
	if t.Name != "" {
		return t.Name
	}
	return t.userName() + "@" + t.Addr()
}

// keepalive is the interval (negative: none) and the number of
// intervals without an answer that close the connection.
func (t *Target) keepalive() (time.Duration, int) {
	every, count := t.Keepalive, t.KeepaliveCount
	if every == 0 {
		every = 15 * time.Second
	}
	if count == 0 {
		count = 3
	}
	return every, count
}

func (t *Target) userName() string {
	if t.User != "" {
		return t.User
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}

// homeDir is the current user's home from the user database (not $HOME:
// a security-relevant path is not taken from the environment).
func homeDir() string {
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		return u.HomeDir
	}
	return "/root"
}

// DefaultKnownHosts are the files read when a host names none.
func DefaultKnownHosts() []string {
	return []string{filepath.Join(homeDir(), ".ssh", "known_hosts"), "/etc/ssh/ssh_known_hosts"}
}

// DefaultIdentities are the key files tried when a host names none (those
// that exist).
func DefaultIdentities() []string {
	var out []string
	for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		p := filepath.Join(homeDir(), ".ssh", n)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}
