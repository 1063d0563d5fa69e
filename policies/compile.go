package policies

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mysecure/mysecure/backup/schedule"
	"github.com/mysecure/mysecure/encfs/admin"
	"github.com/mysecure/mysecure/engine"
	"github.com/mysecure/mysecure/hardening"
	"github.com/mysecure/mysecure/internal/plan"
	"github.com/mysecure/mysecure/ndb"
)

// Env is the host a plan is made for.
type Env struct {
	// Conn reaches the daemon, with the credential for changes.
	Conn admin.Conn
	// ConfigFile is where schedules are written.
	ConfigFile string
	// Harden is the base of the guard's options (mount, audit log,
	// guard program); binary, datadir, state and the optional paths come
	// from the bundle.
	Harden hardening.Options
	// NDB makes the steps of ndb entries: its Planner (with Control and
	// Binaries set; Conn is set here) and where discovery looks (ConfigIni
	// comes from the bundle). Nil: a bundle with ndb entries is refused.
	NDB *NDBEnv
	// HardenReport, when set, gets the steps of the harden procedure.
	HardenReport func(hardening.Event)
	// EngineState is where engine steps record what they applied
	// (default engine.DefaultStatePath).
	EngineState string
}

// NDBEnv is what ndb entries need.
type NDBEnv struct {
	Planner   *ndb.Planner
	Discovery ndb.Options
}

// ndbSteps discovers the nodes and returns the steps of ndb enable for
// them, one node after the other.
func ndbSteps(n NDB, env Env) ([]plan.Step, error) {
	if env.NDB == nil {
		return nil, fmt.Errorf("%w: ndb steps are not available here", ErrInvalid)
	}
	sel := ndb.Selection{AllLocal: n.Nodes == "all-local"}
	if !sel.AllLocal {
		id, err := strconv.Atoi(n.Nodes)
		if err != nil || id < 1 || id > 255 {
			return nil, fmt.Errorf("%w: ndb nodes %q: want all-local or a node id", ErrInvalid, n.Nodes)
		}
		sel.Node = id
	}
	for _, b := range []struct {
		v   string
		dst *bool
	}{{n.Stop, &sel.Stop}, {n.IncludeMgmd, &sel.IncludeMgmd}} {
		switch b.v {
		case "", "false":
		case "true":
			*b.dst = true
		default:
			return nil, fmt.Errorf("%w: ndb: %q is not true or false", ErrInvalid, b.v)
		}
	}
	o := env.NDB.Discovery
	if n.ConfigIni != "" && n.ConfigIni != "auto" {
		o.ConfigIni = n.ConfigIni
	}
	ctx := context.Background()
	st, err := ndb.Discover(ctx, o)
	if err != nil {
		return nil, err
	}
	p := *env.NDB.Planner
	p.Conn = env.Conn
	if p.Control != nil && p.Control.Mgm.ConnectString == "" {
		c := *p.Control
		c.Mgm.ConnectString = st.ConnectString
		p.Control = &c
	}
	plans, err := p.Enable(ctx, st, sel)
	if err != nil {
		return nil, err
	}
	var out []plan.Step
	for _, np := range plans {
		out = append(out, np.Steps...)
	}
	return out, nil
}

// ParseSets parses --set NAME=VALUE arguments.
func ParseSets(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: --set %q: want NAME=VALUE", ErrInvalid, a)
		}
		out[k] = v
	}
	return out, nil
}

// ParamLine shows resolved parameters on one line: NAME=VALUE pairs
// sorted by name, separated by spaces.
func ParamLine(vals map[string]string) string {
	kv := make([]string, 0, len(vals))
	for k, v := range vals {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, " ")
}

// Values resolves the parameters of b: --set, else the default, else the
// first executable of find on the host ("" when none is). An unknown
// --set name is an error.
func (b *Bundle) Values(sets map[string]string) (map[string]string, error) {
	params := b.AllParams()
	var unknown []string
	for k := range sets {
		if _, ok := params[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%w: %s has no parameter %s (it has: %s)", ErrInvalid, b.Name, strings.Join(unknown, ", "), strings.Join(b.ParamNames(), ", "))
	}
	out := map[string]string{}
	for k, p := range params {
		switch v, ok := sets[k]; {
		case ok:
			out[k] = v
		case len(p.Find) > 0:
			out[k] = findExecutable(p.Find)
		default:
			out[k] = p.Default
		}
		if len(p.Choices) > 0 && !slices.Contains(p.Choices, out[k]) {
			return nil, fmt.Errorf("%w: parameter %s is %q: want one of %s", ErrInvalid, k, out[k], strings.Join(p.Choices, ", "))
		}
	}
	return out, nil
}

func findExecutable(cands []string) string {
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	return ""
}

// expander substitutes ${NAME} and ${NAME_rel} (the value without its
// leading '/': a path's place in its category).
type expander struct {
	b    *Bundle
	vals map[string]string
	err  error
}

func (e *expander) s(in string) string {
	return refRE.ReplaceAllStringFunc(in, func(m string) string {
		ref := m[2 : len(m)-1]
		name := refName(ref)
		v, ok := e.vals[name]
		switch {
		case !ok:
			e.fail(fmt.Errorf("%w: %s: unknown parameter ${%s}", ErrInvalid, e.b.Source, ref))
		case v == "" && len(e.b.AllParams()[name].Find) > 0:
			e.fail(fmt.Errorf("%w: parameter %s: none of %s is on this host: pass --set %s=PATH", ErrInvalid, name, strings.Join(e.b.AllParams()[name].Find, ", "), name))
		case v == "":
			e.fail(fmt.Errorf("%w: parameter %s is empty: pass --set %s=VALUE", ErrInvalid, name, name))
		}
		if ref != name {
			return strings.TrimPrefix(filepath.Clean(v), "/")
		}
		return v
	})
}

// when reports whether an entry's condition ("NAME=VALUE", or none)
// holds.
func (e *expander) when(cond string) bool {
	if cond == "" {
		return true
	}
	name, want, ok := strings.Cut(cond, "=")
	v, known := e.vals[strings.TrimSpace(name)]
	if !ok || !known {
		e.fail(fmt.Errorf("%w: %s: when %q: want NAME=VALUE with a declared parameter", ErrInvalid, e.b.Source, cond))
		return false
	}
	return v == strings.TrimSpace(want)
}

func (e *expander) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// auto is path for an optional path: "" or "auto" is "" (detected).
func (e *expander) auto(in string) string {
	if in == "" {
		return ""
	}
	if v := e.s(in); v == "auto" || e.err != nil {
		return ""
	}
	return e.path(in)
}

func (e *expander) path(in string) string {
	p := e.s(in)
	if e.err == nil && !filepath.IsAbs(p) {
		e.fail(fmt.Errorf("%w: %s: path %q is not absolute", ErrInvalid, e.b.Source, p))
	}
	return filepath.Clean(p)
}

// Compile turns b (with its includes) into a plan for env: the categories
// it needs, then the moves, the guard, the rules and the schedules. A
// step that two included bundles share appears once.
func (b *Bundle) Compile(sets map[string]string, env Env) ([]plan.Step, error) {
	vals, err := b.Values(sets)
	if err != nil {
		return nil, err
	}
	e := &expander{b: b, vals: vals}
	var cats, moves, guards, engines, rules, boots, scheds, ndbs []plan.Step
	var walk func(x *Bundle)
	walk = func(x *Bundle) {
		for _, inc := range x.included {
			walk(inc)
		}
		for _, c := range x.Categories {
			cats = append(cats, &admin.CategoryStep{Conn: env.Conn, Category: strings.TrimPrefix(e.s(c), "@")})
		}
		for _, m := range x.Encrypt {
			if !e.when(m.When) {
				continue
			}
			moves = append(moves, &admin.EncryptStep{Conn: env.Conn, Category: strings.TrimPrefix(e.s(m.Category), "@"), Path: e.path(m.Path)})
		}
		for _, h := range x.Harden {
			o := env.Harden
			o.Binary, o.DataDir, o.StatePath = e.path(h.Binary), e.path(h.DataDir), e.path(h.State)
			o.GuardConfig, o.Wrapper, o.CnfDir, o.DropInDir = e.auto(h.GuardConfig), e.auto(h.Wrapper), e.auto(h.CnfDir), e.auto(h.DropInDir)
			if dirs := strings.TrimSpace(h.UnitDirs); dirs != "" {
				if v := e.s(dirs); v != "auto" {
					o.UnitDirs = nil
					for _, d := range strings.Split(v, ",") {
						o.UnitDirs = append(o.UnitDirs, e.path(strings.TrimSpace(d)))
					}
				}
			}
			guards = append(guards, &hardening.GuardStep{Options: o, Client: env.Conn.Client, Cred: env.Conn.Cred, Report: env.HardenReport})
		}
		for _, en := range x.Engine {
			if !e.when(en.When) {
				continue
			}
			o := engine.Options{Flavor: engine.Flavor(e.s(en.Flavor)), Binary: e.path(en.Binary), User: e.s(en.User),
				Mount: env.Harden.Mount, StatePath: env.EngineState}
			if en.CnfDir != "" {
				o.CnfDir = e.path(en.CnfDir)
			}
			if en.HardenState != "" {
				o.HardenState = e.path(en.HardenState)
			}
			s, err := engine.NewSetup(o, env.Conn)
			if err != nil {
				e.fail(fmt.Errorf("%w: %s: engine: %v", ErrInvalid, x.Source, err))
				continue
			}
			engines = append(engines, s.Steps()...)
		}
		for _, bo := range x.Boot {
			if !e.when(bo.When) {
				continue
			}
			unit := e.s(bo.Unit)
			if unit == "" || strings.ContainsAny(unit, "/ ") || !strings.HasSuffix(unit, ".service") {
				e.fail(fmt.Errorf("%w: %s: boot: unit %q (want NAME.service)", ErrInvalid, x.Source, unit))
				continue
			}
			boots = append(boots, &hardening.BootOrderStep{Unit: unit, DropInDir: e.auto(bo.DropInDir)})
		}
		for _, r := range x.Rules {
			rules = append(rules, &admin.RuleStep{Conn: env.Conn, Rule: e.s(r)})
		}
		for _, j := range x.Schedules {
			j.Name, j.Schedule, j.Type, j.Credentials = e.s(j.Name), e.s(j.Schedule), e.s(j.Type), e.s(j.Credentials)
			j.Timezone, j.PreHook, j.PostHook, j.Webhook = e.s(j.Timezone), e.s(j.PreHook), e.s(j.PostHook), e.s(j.Webhook)
			j.Databases = append([]string(nil), j.Databases...)
			for i := range j.Databases {
				j.Databases[i] = e.s(j.Databases[i])
			}
			if err := j.Validate(); err != nil && e.err == nil {
				e.fail(fmt.Errorf("%w: %s: %v", ErrInvalid, x.Source, err))
			}
			scheds = append(scheds, &schedule.Step{ConfigFile: env.ConfigFile, Job: j})
		}
		for _, n := range x.NDB {
			n.Nodes, n.Stop, n.IncludeMgmd, n.ConfigIni = e.s(n.Nodes), e.s(n.Stop), e.s(n.IncludeMgmd), e.s(n.ConfigIni)
			if e.err != nil {
				return
			}
			steps, err := ndbSteps(n, env)
			if err != nil {
				e.fail(err)
				return
			}
			ndbs = append(ndbs, steps...)
		}
	}
	walk(b)
	if e.err != nil {
		return nil, e.err
	}
	var out []plan.Step
	seen := map[string]bool{}
	// A node's stop, moves, rules and start stay together, after the
	// categories they need.
	for _, group := range [][]plan.Step{cats, moves, guards, engines, rules, boots, scheds, ndbs} {
		for _, s := range group {
			if !seen[s.ID()] {
				seen[s.ID()] = true
				out = append(out, s)
			}
		}
	}
	return out, nil
}
