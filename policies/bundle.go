// Package policies holds the policy bundles (YAML embedded in the
// binary, or a user's own file) and turns a bundle into a plan of steps
// (package internal/plan) declared by the modules: encfs categories,
// moves and rules (encfs/admin), backup schedules with their retention
// (backup/schedule) and the skip-grant-tables guard (hardening).
//
// Bundles are decoded strictly: an unknown key, a reference to an
// undeclared parameter or an unknown --set name is an error naming the
// line. The package never prints and does not import cobra or viper.
package policies

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mysecure/mysecure/backup/schedule"
)

//go:embed bundles/*.yaml
var builtin embed.FS

// ErrInvalid marks a bundle file or parameter that is wrong (a usage
// error: the message names the file and line).
var ErrInvalid = errors.New("invalid policy bundle")

// ErrUnknown: no built-in bundle has that name (and it is no file).
var ErrUnknown = errors.New("no such policy bundle")

// Param is a parameter of a bundle: its value is --set NAME=VALUE, else
// Default, else the first of Find that is an executable file on the host.
type Param struct {
	Default     string   `yaml:"default"`
	Find        []string `yaml:"find"`
	Description string   `yaml:"description"`
	// Choices, when set, are the only values the parameter takes.
	Choices []string `yaml:"choices"`
}

// Encrypt is a path moved into a category.
type Encrypt struct {
	Category string `yaml:"category"`
	Path     string `yaml:"path"`
	// When, "NAME=VALUE", limits the entry to plans where the parameter
	// NAME has that value.
	When string `yaml:"when"`
}

// Engine is engine mode (package engine): the server's own encryption
// with its keys in @protected, readable only by the server binary.
type Engine struct {
	Flavor string `yaml:"flavor"` // mariadb (default) or mysql
	Binary string `yaml:"binary"`
	User   string `yaml:"user"`
	// CnfDir is the conf.d directory the server reads (default: engine's).
	CnfDir string `yaml:"cnf-dir"`
	// HardenState: when it exists, the key rule names the real binary
	// behind the guard.
	HardenState string `yaml:"harden-state"`
	When        string `yaml:"when"`
}

// Harden is a hardening step; Guard names what is guarded ("mysqld": the
// skip-grant-tables guard of 'mysecure harden mysqld'). The optional
// fields are the paths harden otherwise detects (its --guard-config,
// --wrapper, --cnf-dir, --unit-dirs and --dropin-dir); the value "auto"
// (or leaving the field out) keeps the detection.
type Harden struct {
	Guard       string `yaml:"guard"`
	Binary      string `yaml:"binary"`
	DataDir     string `yaml:"datadir"`
	State       string `yaml:"state"`
	GuardConfig string `yaml:"guard-config"`
	Wrapper     string `yaml:"wrapper"`
	CnfDir      string `yaml:"cnf-dir"`
	UnitDirs    string `yaml:"unit-dirs"` // comma-separated
	DropInDir   string `yaml:"dropin-dir"`
}

// NDB onboards MySQL Cluster data nodes of the host (what `mysecure ndb
// enable` does): Nodes is "all-local" or a node id; Stop and IncludeMgmd
// are "true" or "false"; ConfigIni is a config.ini, or "auto" for the one
// my.cnf names.
type NDB struct {
	Nodes       string `yaml:"nodes"`
	Stop        string `yaml:"stop"`
	IncludeMgmd string `yaml:"include-mgmd"`
	ConfigIni   string `yaml:"config-ini"`
}

// Boot makes a database unit wait for the mount at boot (a systemd
// drop-in, hardening.BootOrderStep). DropInDir "auto" (or empty) is
// /etc/systemd/system.
type Boot struct {
	Unit      string `yaml:"unit"`
	DropInDir string `yaml:"dropin-dir"`
	When      string `yaml:"when"`
}

// Bundle is one policy bundle as written.
type Bundle struct {
	Name        string           `yaml:"name"`
	Description string           `yaml:"description"`
	Include     []string         `yaml:"include"`
	Params      map[string]Param `yaml:"params"`
	Categories  []string         `yaml:"categories"`
	Encrypt     []Encrypt        `yaml:"encrypt"`
	Rules       []string         `yaml:"rules"`
	Schedules   []schedule.Job   `yaml:"schedules"`
	Harden      []Harden         `yaml:"harden"`
	NDB         []NDB            `yaml:"ndb"`
	Boot        []Boot           `yaml:"boot"`
	Engine      []Engine         `yaml:"engine"`

	// Source is "built-in" or the file it was read from.
	Source string `yaml:"-"`
	// Text is the bundle as written.
	Text string `yaml:"-"`

	included []*Bundle
}

var (
	nameRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
	paramRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
	refRE   = regexp.MustCompile(`\$\{([^}]*)\}`)
)

// List returns the built-in bundles, sorted by name.
func List() ([]*Bundle, error) {
	ents, err := fs.ReadDir(builtin, "bundles")
	if err != nil {
		return nil, err
	}
	var out []*Bundle
	for _, e := range ents {
		b, err := Load(strings.TrimSuffix(e.Name(), ".yaml"))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// IsFile reports whether ref names a bundle file rather than a built-in
// bundle (it contains a slash or ends in .yaml/.yml).
func IsFile(ref string) bool {
	return strings.Contains(ref, "/") || strings.HasSuffix(ref, ".yaml") || strings.HasSuffix(ref, ".yml")
}

// Load returns a built-in bundle by name, or reads a bundle file (see
// IsFile), with its includes.
func Load(ref string) (*Bundle, error) {
	return load(ref, nil)
}

func load(ref string, stack []string) (*Bundle, error) {
	if slices.Contains(stack, ref) {
		return nil, fmt.Errorf("%w: include loop: %s -> %s", ErrInvalid, strings.Join(stack, " -> "), ref)
	}
	var data []byte
	var src string
	var err error
	if IsFile(ref) {
		src = ref
		if data, err = os.ReadFile(ref); err != nil {
			return nil, fmt.Errorf("failed to read policy bundle: %w", err)
		}
	} else {
		src = "built-in " + ref
		if data, err = builtin.ReadFile(path.Join("bundles", ref+".yaml")); err != nil {
			return nil, fmt.Errorf("%w: %q", ErrUnknown, ref)
		}
	}
	b, err := Parse(src, data)
	if err != nil {
		return nil, err
	}
	if !IsFile(ref) && b.Name != ref {
		return nil, fmt.Errorf("%w: %s is named %q", ErrInvalid, src, b.Name)
	}
	for _, inc := range b.Include {
		if IsFile(inc) {
			return nil, fmt.Errorf("%w: %s: include names built-in bundles only, not %q", ErrInvalid, src, inc)
		}
		ib, err := load(inc, append(stack, ref))
		if err != nil {
			return nil, fmt.Errorf("%s: include %s: %w", src, inc, err)
		}
		b.included = append(b.included, ib)
	}
	return b, nil
}

// Parse decodes and validates one bundle (without its includes). src
// names it in errors.
func Parse(src string, data []byte) (*Bundle, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalid, src, strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: ")), " "))
	}
	b.Source, b.Text = src, string(data)
	if !nameRE.MatchString(b.Name) {
		return nil, fmt.Errorf("%w: %s: name %q: use lower-case letters, digits and '-'", ErrInvalid, src, b.Name)
	}
	for name, p := range b.Params {
		if !paramRE.MatchString(name) || strings.HasSuffix(name, "-rel") || strings.HasSuffix(name, "_rel") {
			return nil, fmt.Errorf("%w: %s: parameter name %q: use lower-case letters, digits and '-'", ErrInvalid, src, name)
		}
		if p.Default != "" && len(p.Find) > 0 {
			return nil, fmt.Errorf("%w: %s: parameter %s has both default and find", ErrInvalid, src, name)
		}
	}
	// Every ${NAME} must be declared here or in an include: checked with
	// the line numbers of the text.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, src, err)
	}
	if err := checkRefs(src, &root, b.declared()); err != nil {
		return nil, err
	}
	for i, j := range b.Schedules {
		if j.Name == "" || j.Schedule == "" {
			return nil, fmt.Errorf("%w: %s: schedule %d needs a name and a schedule", ErrInvalid, src, i+1)
		}
	}
	for i, e := range b.Encrypt {
		if e.Category == "" || e.Path == "" {
			return nil, fmt.Errorf("%w: %s: encrypt %d needs a category and a path", ErrInvalid, src, i+1)
		}
	}
	for i, n := range b.NDB {
		if n.Nodes == "" {
			return nil, fmt.Errorf("%w: %s: ndb %d needs nodes (all-local or a node id)", ErrInvalid, src, i+1)
		}
	}
	for i, e := range b.Engine {
		if e.Binary == "" {
			return nil, fmt.Errorf("%w: %s: engine %d needs a binary", ErrInvalid, src, i+1)
		}
		if e.Flavor != "" && !strings.Contains(e.Flavor, "${") && e.Flavor != "mariadb" && e.Flavor != "mysql" {
			return nil, fmt.Errorf("%w: %s: engine %d: flavor %q (want mariadb or mysql)", ErrInvalid, src, i+1, e.Flavor)
		}
	}
	for i, h := range b.Harden {
		if h.Guard != "mysqld" {
			return nil, fmt.Errorf("%w: %s: harden %d: guard %q (want mysqld)", ErrInvalid, src, i+1, h.Guard)
		}
	}
	return &b, nil
}

// declared returns the parameters a bundle may reference before its
// includes are loaded: its own; references to an include's parameters
// are checked when the plan is made.
func (b *Bundle) declared() func(string) bool {
	return func(name string) bool {
		if _, ok := b.Params[name]; ok {
			return true
		}
		return len(b.Include) > 0
	}
}

// refName returns the parameter a reference names: NAME or NAME_rel.
func refName(ref string) string { return strings.TrimSuffix(ref, "_rel") }

func checkRefs(src string, n *yaml.Node, ok func(string) bool) error {
	if n.Kind == yaml.ScalarNode {
		for _, m := range refRE.FindAllStringSubmatch(n.Value, -1) {
			if !ok(refName(m[1])) {
				return fmt.Errorf("%w: %s: line %d: unknown parameter ${%s} (declare it under params:)", ErrInvalid, src, n.Line, m[1])
			}
		}
	}
	for _, c := range n.Content {
		if err := checkRefs(src, c, ok); err != nil {
			return err
		}
	}
	return nil
}

// AllParams returns the parameters of the bundle and its includes (the
// bundle's own declaration wins), by name.
func (b *Bundle) AllParams() map[string]Param {
	out := map[string]Param{}
	var walk func(*Bundle)
	walk = func(x *Bundle) {
		for _, inc := range x.included {
			walk(inc)
		}
		for k, v := range x.Params {
			out[k] = v
		}
	}
	walk(b)
	return out
}

// ParamNames returns the parameter names, sorted.
func (b *Bundle) ParamNames() []string {
	var names []string
	for k := range b.AllParams() {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Included returns the bundles b includes, in order.
func (b *Bundle) Included() []*Bundle { return b.included }
