package sshclient

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in         string
		user, host string
		port       int
		bad        bool
	}{
		{in: "backup@db1.example.com", user: "backup", host: "db1.example.com"},
		{in: "db1", host: "db1"},
		{in: "root@10.0.0.5:2222", user: "root", host: "10.0.0.5", port: 2222},
		{in: "[::1]:22", host: "::1", port: 22},
		{in: "u@::1", user: "u", host: "::1"},
		{in: "u@host:0", bad: true},
		{in: "u@host:99999", bad: true},
		{in: "u@host:ssh", bad: true},
		{in: "-oProxyCommand=x", bad: true},
		{in: "bad user@host", bad: true},
		{in: "u@", bad: true},
		{in: "u@ho st", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			h, err := ParseTarget(tc.in)
			if tc.bad {
				if err == nil || !errors.Is(err, ErrConfig) {
					t.Fatalf("ParseTarget(%q) = %+v, %v; want ErrConfig", tc.in, h, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.User != tc.user || h.Host != tc.host || h.Port != tc.port {
				t.Fatalf("ParseTarget(%q) = %q %q %d", tc.in, h.User, h.Host, h.Port)
			}
		})
	}
}

func TestSettingsResolve(t *testing.T) {
	s := Settings{
		KnownHosts: []string{"/etc/mysecure/known_hosts"},
		Identity:   []string{"/etc/mysecure/id_ed25519"},
		Hosts: []HostConfig{
			{Name: "bastion", Host: "bastion.example.com", User: "jump"},
			{Name: "db1", Host: "10.1.0.1", Port: 2200, User: "backup", Jump: "bastion", MySQLPort: 3307,
				Identity: []string{"/root/.ssh/db1"}},
			{Name: "db2", Host: "10.1.0.2", Jump: "ops@gw:2022"},
		},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	db1, err := s.Resolve("db1")
	if err != nil {
		t.Fatal(err)
	}
	if db1.Addr() != "10.1.0.1:2200" || db1.Jump == nil || db1.Jump.Addr() != "bastion.example.com:22" || db1.Jump.User != "jump" {
		t.Fatalf("db1: %+v jump %+v", db1, db1.Jump)
	}
	if strings.Join(db1.Identity, ",") != "/root/.ssh/db1" || strings.Join(db1.KnownHosts, ",") != "/etc/mysecure/known_hosts" {
		t.Fatalf("db1 defaults: %+v", db1.HostConfig)
	}
	if strings.Join(db1.Jump.Identity, ",") != "/etc/mysecure/id_ed25519" {
		t.Fatalf("jump identity default: %v", db1.Jump.Identity)
	}
	db2, err := s.Resolve("db2")
	if err != nil || db2.Jump.Addr() != "gw:2022" || db2.Jump.User != "ops" {
		t.Fatalf("db2: %+v %v", db2, err)
	}
	adhoc, err := s.Resolve("me@127.0.0.1:2022")
	if err != nil || adhoc.Label() != "me@127.0.0.1:2022" || adhoc.KnownHosts[0] != "/etc/mysecure/known_hosts" {
		t.Fatalf("ad hoc: %+v %v", adhoc, err)
	}
	if db1.Label() != "db1" {
		t.Fatalf("label %q", db1.Label())
	}
}

func TestSettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hosts []HostConfig
		want  string
	}{
		{"no host", []HostConfig{{Name: "a"}}, "is not a host name"},
		{"dup", []HostConfig{{Name: "a", Host: "h"}, {Name: "a", Host: "h2"}}, "two ssh hosts"},
		{"bad name", []HostConfig{{Name: "a b", Host: "h"}}, "ssh host name"},
		{"port", []HostConfig{{Name: "a", Host: "h", Port: 70000}}, "out of range"},
		{"cycle", []HostConfig{{Name: "a", Host: "h", Jump: "b"}, {Name: "b", Host: "h", Jump: "a"}}, "jumps through itself"},
		{"self", []HostConfig{{Name: "a", Host: "h", Jump: "a"}}, "jumps through itself"},
		{"relative identity", []HostConfig{{Name: "a", Host: "h", Identity: []string{"id_rsa"}}}, "absolute path"},
		{"relative socket", []HostConfig{{Name: "a", Host: "h", MySQLSocket: "mysql.sock"}}, "absolute path"},
		{"check", []HostConfig{{Name: "a", Host: "h", HostKeyCheck: "no"}}, "host-key-check"},
		{"keepalive count", []HostConfig{{Name: "a", Host: "h", KeepaliveCount: 101}}, "keepalive-count 101"},
		{"negative count", []HostConfig{{Name: "a", Host: "h", KeepaliveCount: -1}}, "keepalive-count -1"},
		// YAML "keepalive: 15" decodes as 15ns.
		{"keepalive unit", []HostConfig{{Name: "a", Host: "h", Keepalive: 15}}, "give a unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Settings{Hosts: tc.hosts}
			err := s.Validate()
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want ErrConfig with %q", err, tc.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	got := Quote("mariadb-dump", "--databases", "it's", "a b", "", "--x=$HOME")
	want := `mariadb-dump --databases 'it'\''s' 'a b' '' '--x=$HOME'`
	if got != want {
		t.Fatalf("Quote = %s\nwant    %s", got, want)
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"u@h:22", "[::1]:2", "h", "@", ":", "u@[h]:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseTarget(s)
		if err != nil {
			return
		}
		if h.Host == "" || strings.HasPrefix(h.Host, "-") || strings.ContainsAny(h.Host, " \t\n'\"$;") {
			t.Fatalf("ParseTarget(%q) accepted host %q", s, h.Host)
		}
	})
}

func TestPrefixWriter(t *testing.T) {
	var out strings.Builder
	var mu sync.Mutex
	a := &PrefixWriter{W: &out, Prefix: "db1: ", Mu: &mu}
	b := &PrefixWriter{W: &out, Prefix: "db2: ", Mu: &mu}
	a.Write([]byte("one\ntw"))
	b.Write([]byte("x\n"))
	a.Write([]byte("o\nthree"))
	a.Flush()
	b.Flush()
	want := "db1: one\ndb2: x\ndb1: two\ndb1: three\n"
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func TestSettingsLookup(t *testing.T) {
	s := &Settings{Hosts: []HostConfig{{Name: "db1", Host: "10.0.0.1"}, {Name: "db2", Host: "10.0.0.2"}}}
	if h, ok := s.Lookup("db2"); !ok || h.Host != "10.0.0.2" {
		t.Errorf("Lookup(db2) = %+v, %v", h, ok)
	}
	if _, ok := s.Lookup("root@db2"); ok {
		t.Error("Lookup found a name that is not configured")
	}
	if got := strings.Join(s.Names(), ","); got != "db1,db2" {
		t.Errorf("Names() = %q", got)
	}
	if n := (&Settings{}).Names(); len(n) != 0 {
		t.Errorf("Names() of no hosts = %q", n)
	}
}
