package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/hardening"
	"github.com/mysecure/mysecure/ndb"
)

// hostSets names a binary for every find parameter, so that the plans
// compile on a host without MariaDB.
func hostSets(t *testing.T, b *Bundle) map[string]string {
	t.Helper()
	sets := map[string]string{}
	for name, p := range b.AllParams() {
		if len(p.Find) > 0 {
			sets[name] = "/bin/sh"
		}
	}
	return sets
}

func TestBuiltinsCompile(t *testing.T) {
	bs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range bs {
		names = append(names, b.Name)
	}
	if got := strings.Join(names, " "); got != "mariabackup-weekly mysql-datadir mysql-host mysqldump-nightly ndb-data skip-grant-guard" {
		t.Fatalf("built-in bundles: %s", got)
	}
	for _, b := range bs {
		t.Run(b.Name, func(t *testing.T) {
			if b.Description == "" {
				t.Error("no description")
			}
			steps, err := b.Compile(hostSets(t, b), Env{ConfigFile: "/nonexistent/mysecure.yaml", NDB: ndbEnv(t)})
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) == 0 {
				t.Fatal("empty plan")
			}
		})
	}
}

// ndbEnv is an NDB environment with a config.ini naming data node 2 on
// this host (not running), and /bin/sh standing in for ndbd.
func ndbEnv(t *testing.T) *NDBEnv {
	t.Helper()
	ini := filepath.Join(t.TempDir(), "config.ini")
	if err := os.WriteFile(ini, []byte("[ndbd]\nNodeId=2\nHostName=localhost\nDataDir=/srv/ndb/data2\nBackupDataDir=/backup/ndb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &NDBEnv{Planner: &ndb.Planner{Control: &ndb.Control{}, Category: "ndbdata", Binaries: ndb.Binaries{Ndbd: "/bin/sh", Ndbmtd: "/bin/true"}},
		Discovery: ndb.Options{ConfigIni: ini, NdbConfig: "-", LocalNames: []string{"localhost"}}}
}

// TestNDBPlan: ndb-data makes the moves and rules of ndb enable for a
// node that does not run (no stop, no start).
func TestNDBPlan(t *testing.T) {
	b, err := Load("ndb-data")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := b.Compile(map[string]string{"nodes": "2"}, Env{NDB: ndbEnv(t)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Describe())
	}
	sh, _ := filepath.EvalSymlinks("/bin/sh")
	tr, _ := filepath.EvalSymlinks("/bin/true")
	want := []string{
		"the volume has the category @ndbdata",
		"encrypt /srv/ndb/data2 into @ndbdata",
		"encrypt /backup/ndb into @ndbdata",
		"add rule: ALLOW @ndbdata srv/ndb/data2/* " + sh,
		"add rule: ALLOW @ndbdata srv/ndb/data2/* " + tr,
		"add rule: ALLOW @ndbdata backup/ndb/* " + sh,
		"add rule: ALLOW @ndbdata backup/ndb/* " + tr,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for sets, want := range map[string]string{"7": "no such node", "x": "want all-local or a node id"} {
		if _, err := b.Compile(map[string]string{"nodes": sets}, Env{NDB: ndbEnv(t)}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("nodes=%s: %v, want %q", sets, err, want)
		}
	}
	if _, err := b.Compile(map[string]string{"stop": "yes"}, Env{NDB: ndbEnv(t)}); err == nil || !strings.Contains(err.Error(), "not true or false") {
		t.Errorf("stop=yes: %v", err)
	}
}

func TestDatadirPlan(t *testing.T) {
	b, err := Load("mysql-datadir")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := b.Compile(map[string]string{"datadir": "/srv/mysql/", "mysqld": "/usr/local/bin/mariadbd"}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Describe())
	}
	want := []string{
		"the volume has the category @mysql",
		"encrypt /srv/mysql into @mysql",
		"add rule: ALLOW @mysql srv/mysql/* /usr/local/bin/mariadbd --user=mysql",
		"write the systemd drop-in /etc/systemd/system/mariadb.service.d/mysecure-mount.conf: mariadb.service starts after the mount is ready and stops when it goes",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// mysql-host includes three bundles: shared steps appear once, in the
// order categories, moves, guard, rules, schedules.
func TestHostPlan(t *testing.T) {
	b, err := Load("mysql-host")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := b.Compile(hostSets(t, b), Env{ConfigFile: "/etc/x.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	kinds := ""
	for _, s := range steps {
		switch s.(type) {
		case *admin.CategoryStep:
			kinds += "c"
		case *admin.EncryptStep:
			kinds += "e"
		case *hardening.GuardStep:
			kinds += "g"
		case *admin.RuleStep:
			kinds += "r"
		case *schedule.Step:
			kinds += "s"
		}
	}
	if kinds != "cccegrrss" {
		t.Fatalf("step kinds %q", kinds)
	}
}

func TestStrict(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"typo", "name: x\nparams:\n  datadir:\n    default: /a\nrulez:\n  - ALLOW @mysql * /bin/sh\n", "line 5: field rulez not found"},
		{"nested typo", "name: x\nencrypt:\n  - category: mysql\n    pth: /a\n", "line 4: field pth not found"},
		{"schedule typo", "name: x\nschedules:\n  - name: n\n    schedule: '@daily'\n    retention: {keep-dayly: 3}\n", "line 5: field keep-dayly not found"},
		{"unknown ref", "name: x\nparams:\n  datadir: {default: /a}\nencrypt:\n  - category: mysql\n    path: ${datadri}\n", "line 6: unknown parameter ${datadri}"},
		{"bad name", "name: X y\n", `name "X y"`},
		{"default and find", "name: x\nparams:\n  p: {default: /a, find: [/b]}\n", "both default and find"},
		{"bad guard", "name: x\nharden:\n  - guard: nginx\n", `guard "nginx"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(c.text))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestSets(t *testing.T) {
	b, err := Load("mysql-datadir")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Compile(map[string]string{"datadri": "/x"}, Env{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no parameter datadri") {
		t.Fatalf("unknown --set: %v", err)
	}
	if _, err := b.Compile(map[string]string{"datadir": "relative/path", "mysqld": "/bin/sh"}, Env{}); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("relative path: %v", err)
	}
	if _, err := ParseSets([]string{"novalue"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("--set without '=': %v", err)
	}
	b.Params["mysqld"] = Param{Find: []string{"/nonexistent/mariadbd"}}
	if _, err := b.Compile(nil, Env{}); err == nil || !strings.Contains(err.Error(), "--set mysqld=PATH") {
		t.Fatalf("binary not found: %v", err)
	}
}

func TestCustomExample(t *testing.T) {
	p := filepath.Join("..", "examples", "policies", "custom.yaml")
	if !IsFile(p) {
		t.Fatal("not recognized as a file")
	}
	b, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := b.Compile(map[string]string{"mysqld": "/bin/sh", "datadir": "/srv/db2"}, Env{ConfigFile: "/etc/x.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Describe())
	}
	all := strings.Join(got, "\n")
	for _, w := range []string{"encrypt /srv/db2 into @mysql", "encrypt /etc/mysql/instance2.cnf into @protected",
		"add rule: ALLOW @mysql srv/db2/* /bin/sh --user=mysql", "add rule: ALLOW @protected etc/mysql/instance2.cnf /bin/sh", "add schedule shop-hourly"} {
		if !strings.Contains(all, w) {
			t.Errorf("plan lacks %q:\n%s", w, all)
		}
	}
}

func TestIncludeLoop(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a.yaml")
	os.WriteFile(f, []byte("name: a\ninclude: [./a.yaml]\n"), 0o644)
	if _, err := Load(f); !errors.Is(err, ErrInvalid) {
		t.Fatalf("include of a file: %v", err)
	}
	if _, err := Load("no-such-bundle"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown bundle: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	bs, _ := List()
	for _, b := range bs {
		f.Add([]byte(b.Text))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse("fuzz", data)
		if err == nil && b.Name == "" {
			t.Fatal("a bundle without a name parsed")
		}
	})
}

// TestGuardPaths: the guard's paths default to harden's detection
// ("auto") and can all be pointed elsewhere (a private copy of the
// server laid out like a host, as the integration test and the demo do).
func TestGuardPaths(t *testing.T) {
	b, err := Load("skip-grant-guard")
	if err != nil {
		t.Fatal(err)
	}
	guardOf := func(sets map[string]string) *hardening.GuardStep {
		t.Helper()
		steps, err := b.Compile(sets, Env{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			if g, ok := s.(*hardening.GuardStep); ok {
				return g
			}
		}
		t.Fatal("no guard step")
		return nil
	}
	g := guardOf(map[string]string{"mysqld": "/usr/sbin/mariadbd"})
	if o := g.Options; o.GuardConfig != "/etc/mysecure/mysqld-guard.json" || o.Wrapper != "" || o.CnfDir != "" || o.UnitDirs != nil || o.DropInDir != "" || o.StatePath != "/etc/mysecure/harden-mysqld.json" {
		t.Fatalf("defaults: %+v", o)
	}
	g = guardOf(map[string]string{"mysqld": "/r/usr/sbin/mariadbd", "datadir": "/r/var/lib/mysql", "harden-state": "/r/state.json",
		"guard-config": "/r/guard.json", "guard-wrapper": "/r/usr/sbin/mariadbd-guard", "cnf-dir": "/r/etc/mysql/conf.d",
		"unit-dirs": "/r/lib/systemd/system, /r/etc/systemd/system", "dropin-dir": "/r/etc/systemd/system"})
	o := g.Options
	if o.Binary != "/r/usr/sbin/mariadbd" || o.DataDir != "/r/var/lib/mysql" || o.StatePath != "/r/state.json" || o.GuardConfig != "/r/guard.json" ||
		o.Wrapper != "/r/usr/sbin/mariadbd-guard" || o.CnfDir != "/r/etc/mysql/conf.d" || o.DropInDir != "/r/etc/systemd/system" ||
		strings.Join(o.UnitDirs, ":") != "/r/lib/systemd/system:/r/etc/systemd/system" {
		t.Fatalf("private paths: %+v", o)
	}
	if _, err := b.Compile(map[string]string{"mysqld": "/usr/sbin/mariadbd", "cnf-dir": "etc/mysql"}, Env{}); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("relative cnf-dir: %v", err)
	}
}

// datadir-mode=engine replaces the datadir's move with engine mode's
// steps (keys, the key rules, the option file); a bad choice is refused.
func TestHostPlanEngineMode(t *testing.T) {
	b, err := Load("mysql-host")
	if err != nil {
		t.Fatal(err)
	}
	sets := hostSets(t, b)
	sets["datadir-mode"] = "engine"
	steps, err := b.Compile(sets, Env{ConfigFile: "/etc/x.yaml", Harden: hardening.Options{Mount: "/var/lib/mysecure/encrypted"}})
	if err != nil {
		t.Fatal(err)
	}
	var descs []string
	for _, s := range steps {
		if _, ok := s.(*admin.EncryptStep); ok {
			t.Fatalf("engine mode moves the datadir: %s", s.Describe())
		}
		descs = append(descs, s.Describe())
	}
	all := strings.Join(descs, "\n")
	for _, want := range []string{"generate the engine keys into @protected", "add rule: ALLOW @protected etc/mysql/mysecure-engine/keys.txt " + sets["mysqld"] + " --user=mysql", "99-mysecure-engine.cnf"} {
		if !strings.Contains(all, want) {
			t.Errorf("plan lacks %q:\n%s", want, all)
		}
	}
	sets["datadir-mode"] = "both"
	if _, err := b.Compile(sets, Env{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "want one of mount, engine") {
		t.Fatalf("bad choice: %v", err)
	}
}

func TestParamLine(t *testing.T) {
	for _, tc := range []struct {
		vals map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"datadir": "/srv/mysql"}, "datadir=/srv/mysql"},
		{map[string]string{"stop": "true", "datadir": "/srv/a b", "backup_tool": ""}, "backup_tool= datadir=/srv/a b stop=true"},
	} {
		if got := ParamLine(tc.vals); got != tc.want {
			t.Errorf("ParamLine(%v) = %q, want %q", tc.vals, got, tc.want)
		}
	}
}
