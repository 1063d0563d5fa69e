package ndb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mysecure/mysecure/internal/mycnf"

	"github.com/mysecure/mysecure/internal/procfs"
)

// Dir is a directory a node writes, and whether it is encrypted.
type Dir struct {
	Role      string `json:"role"` // DataDir, FileSystemPath, BackupDataDir, FileSystemPathDD, ...
	Path      string `json:"path"`
	Encrypted bool   `json:"encrypted"`
	// Covered names the directory of this node that holds this one (it
	// moves with it), when there is one.
	Covered string `json:"covered_by,omitempty"`
}

// Node is a data or management node as discovered.
type Node struct {
	ID      int    `json:"id"`
	Kind    string `json:"kind"` // KindData or KindMgm
	Host    string `json:"host,omitempty"`
	Local   bool   `json:"local"`
	Running bool   `json:"running"`
	Program string `json:"program,omitempty"` // the running binary
	Angel   *Proc  `json:"angel,omitempty"`
	Worker  *Proc  `json:"worker,omitempty"`
	DataDir string `json:"datadir,omitempty"`
	// NodeGroup is the data node's node group, from config.ini (nil when
	// config.ini does not describe the node or puts it in no group).
	NodeGroup *int     `json:"nodegroup,omitempty"`
	Dirs      []Dir    `json:"dirs"`
	Sources   []string `json:"sources"`

	params  map[string]string
	fromIni bool // config.ini describes the node
}

// Options say where discovery looks.
type Options struct {
	// ConfigIni is a config.ini to read; "" reads the one my.cnf names
	// ([ndb_mgmd] config-file), if any.
	ConfigIni string
	// MyCnf are option files to read; a missing one is skipped.
	MyCnf []string
	// NdbConfig is the ndb_config program; "" looks it up in PATH, "-"
	// does not run it.
	NdbConfig string
	// ConnectString is the management server; "" takes it from my.cnf.
	ConnectString string
	// Mount and Category tell encrypted directories: a symlink into
	// Mount/Category.
	Mount    string
	Category string
	// Programs maps more program paths to kinds (stand-ins, binaries
	// renamed): KindData or KindMgm.
	Programs map[string]string
	// ProcRoot is /proc unless a test says otherwise.
	ProcRoot string
	// LocalNames are the host names and addresses of this host; nil
	// takes the host name, localhost and the interfaces' addresses.
	LocalNames []string
}

// Status is what discovery found.
type Status struct {
	ConnectString string   `json:"connectstring,omitempty"`
	ConfigIni     string   `json:"config_ini,omitempty"`
	Nodes         []*Node  `json:"nodes"`
	Warnings      []string `json:"warnings,omitempty"`
}

// Node returns the node with id, or nil.
func (s *Status) Node(id int) *Node {
	for _, n := range s.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

func localNames() []string {
	names := []string{"", "localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
		if i := strings.IndexByte(h, '.'); i > 0 {
			names = append(names, h[:i])
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				names = append(names, ipn.IP.String())
			}
		}
	}
	return names
}

// Discover finds the NDB nodes of this host. Sources are merged by node
// id: a running process tells the program, command line and DataDir (its
// working directory); config.ini and ndb_config tell the directories and
// host of every node; my.cnf tells the connect string and config.ini.
func Discover(ctx context.Context, o Options) (*Status, error) {
	if o.ProcRoot == "" {
		o.ProcRoot = procfs.Root
	}
	if o.LocalNames == nil {
		o.LocalNames = localNames()
	}
	st := &Status{ConnectString: o.ConnectString, ConfigIni: o.ConfigIni}
	byID := map[int]*Node{}
	get := func(id int, kind string) *Node {
		n := byID[id]
		if n == nil {
			n = &Node{ID: id, Kind: kind, params: map[string]string{}}
			byID[id] = n
		}
		return n
	}

	// my.cnf: the connect string, and the config.ini of ndb_mgmd.
	for _, f := range o.MyCnf {
		opts, err := mycnf.Load(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		for _, op := range mycnf.Select(opts, "mysql_cluster", "ndbd", "ndb_mgmd", "ndbmtd") {
			switch op.Canonical() {
			case "ndb-connectstring", "connect-string", "ndb-mgmd-host":
				if o.ConnectString == "" {
					st.ConnectString = op.Value
				}
			case "config-file", "ndb-config-file":
				if o.ConfigIni == "" && op.Group == "ndb_mgmd" {
					st.ConfigIni = op.Value
				}
			}
		}
	}

	// Running processes: angel and worker pairs.
	procs, kinds, err := scanProcs(o.ProcRoot, o.Programs)
	if err != nil {
		return nil, err
	}
	byPid := map[int]Proc{}
	for _, p := range procs {
		byPid[p.Pid] = p
	}
	for _, p := range procs {
		if par, ok := byPid[p.PPid]; ok && par.Exe == p.Exe && slicesEqual(par.Args, p.Args) {
			continue // a worker: taken with its angel
		}
		angel := p
		var worker *Proc
		for _, c := range procs {
			if c.PPid == p.Pid && c.Exe == p.Exe && slicesEqual(c.Args, p.Args) {
				w := c
				worker = &w
			}
		}
		id := nodeIDOf(angel)
		if id == 0 {
			st.Warnings = append(st.Warnings, fmt.Sprintf("process %d (%s) has no node id: no --ndb-nodeid and no ndb_<ID>.pid holding its pid in %s", p.Pid, p.Exe, p.Cwd))
			continue
		}
		n := get(id, kinds[p.Pid])
		if n.Running {
			st.Warnings = append(st.Warnings, fmt.Sprintf("node %d: processes %d and %d both claim it; using %d", id, n.Angel.Pid, angel.Pid, angel.Pid))
		}
		n.Running, n.Local, n.Program = true, true, angel.Exe
		n.Angel, n.Worker = &angel, worker
		n.DataDir = o.unmount(angel.Cwd)
		n.Sources = append(n.Sources, fmt.Sprintf("process %d", angel.Pid))
	}

	// config.ini.
	if st.ConfigIni != "" {
		f, err := os.Open(st.ConfigIni)
		if err != nil {
			return nil, fmt.Errorf("failed to read config.ini: %w", err)
		}
		cfg, err := ParseConfig(f, st.ConfigIni)
		f.Close()
		if err != nil {
			return nil, err
		}
		nodes, err := cfg.Nodes()
		if err != nil {
			return nil, err
		}
		for _, cn := range nodes {
			if cn.Kind == KindAPI {
				continue
			}
			if cn.ID == 0 {
				st.Warnings = append(st.Warnings, fmt.Sprintf("%s:%d: a [%s] section without NodeId is skipped", st.ConfigIni, cn.Line, cn.Kind))
				continue
			}
			n := get(cn.ID, cn.Kind)
			for k, v := range cn.Params {
				n.params[k] = v
			}
			n.Host = cn.Get("hostname")
			n.fromIni = true
			n.Sources = append(n.Sources, fmt.Sprintf("%s:%d", st.ConfigIni, cn.Line))
		}
	}

	// ndb_config, when there is one and a config to ask.
	if o.NdbConfig != "-" && (st.ConfigIni != "" || st.ConnectString != "") {
		rows, err := queryNdbConfig(ctx, o.NdbConfig, st.ConfigIni, st.ConnectString)
		if err != nil && !errors.Is(err, exec.ErrNotFound) {
			st.Warnings = append(st.Warnings, "ndb_config: "+oneLine(err))
		}
		for _, r := range rows {
			if r.kind == KindAPI {
				continue
			}
			n := get(r.id, r.kind)
			if n.params["datadir"] == "" && r.datadir != "" {
				n.params["datadir"] = r.datadir
			}
			if n.Host == "" {
				n.Host = r.host
			}
			n.Sources = append(n.Sources, "ndb_config")
		}
	}

	local := map[string]bool{}
	for _, h := range o.LocalNames {
		local[strings.ToLower(h)] = true
	}
	for _, n := range byID {
		if !n.Running {
			n.Local = local[strings.ToLower(n.Host)]
		}
		if n.DataDir == "" {
			n.DataDir = n.params["datadir"]
		}
		n.Dirs = o.dirsOf(n)
		st.Nodes = append(st.Nodes, n)
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].ID < st.Nodes[j].ID })
	assignNodeGroups(st.Nodes)
	return st, nil
}

// assignNodeGroups sets the NodeGroup of the data nodes that config.ini
// describes, as the management server does: NodeGroup when given, else
// the nodes without one fill groups 0, 1, ... in node id order,
// NoOfReplicas (default 2) to a group. A node with NodeGroup=65536 (no
// group) and nodes config.ini does not describe keep nil.
func assignNodeGroups(nodes []*Node) {
	used := map[int]int{}
	var implicit []*Node
	replicas := 0
	for _, n := range nodes {
		if n.Kind != KindData || !n.fromIni {
			continue
		}
		if r, err := strconv.Atoi(n.params["noofreplicas"]); err == nil && r > 0 && replicas == 0 {
			replicas = r
		}
		if v, ok := n.params["nodegroup"]; ok {
			if g, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && g >= 0 && g < 65536 {
				n.NodeGroup = &g
				used[g]++
			}
			continue
		}
		implicit = append(implicit, n)
	}
	if replicas == 0 {
		replicas = 2
	}
	g := 0
	for _, n := range implicit {
		for used[g] >= replicas {
			g++
		}
		gg := g
		n.NodeGroup = &gg
		used[g]++
	}
}

// unmount maps a path inside Mount/Category back to the configured path
// (a node's working directory resolves the symlink).
func (o Options) unmount(p string) string {
	if o.Mount == "" || o.Category == "" {
		return p
	}
	base := filepath.Join(o.Mount, o.Category)
	if rest, ok := strings.CutPrefix(p, base+"/"); ok {
		return "/" + rest
	}
	return p
}

// dirsOf lists a node's directories with the defaults of MySQL Cluster:
// FileSystemPath defaults to DataDir, BackupDataDir and FileSystemPathDD
// to FileSystemPath, the data and undo file paths to FileSystemPathDD.
func (o Options) dirsOf(n *Node) []Dir {
	if n.DataDir == "" {
		return nil
	}
	abs := func(v, def string) string {
		switch {
		case v == "":
			return def
		case !filepath.IsAbs(v):
			return filepath.Join(n.DataDir, v)
		}
		return filepath.Clean(v)
	}
	type rp struct{ role, path string }
	list := []rp{{"DataDir", filepath.Clean(n.DataDir)}}
	if n.Kind == KindData {
		fsp := abs(n.params["filesystempath"], n.DataDir)
		dd := abs(n.params["filesystempathdd"], fsp)
		list = append(list,
			rp{"FileSystemPath", fsp},
			rp{"BackupDataDir", abs(n.params["backupdatadir"], fsp)},
			rp{"FileSystemPathDD", dd},
			rp{"FileSystemPathDataFiles", abs(n.params["filesystempathdatafiles"], dd)},
			rp{"FileSystemPathUndoFiles", abs(n.params["filesystempathundofiles"], dd)})
	}
	var out []Dir
	var roots []string
	for _, x := range list {
		d := Dir{Role: x.role, Path: x.path}
		for _, r := range roots {
			if x.path == r || strings.HasPrefix(x.path, r+"/") {
				d.Covered = r
				break
			}
		}
		if d.Covered == "" {
			roots = append(roots, x.path)
		}
		d.Encrypted = o.encrypted(x.path)
		out = append(out, d)
	}
	return out
}

// encrypted reports whether p, or a directory above it, is a symlink
// into Mount/Category.
func (o Options) encrypted(p string) bool {
	if o.Mount == "" {
		return false
	}
	base := filepath.Join(o.Mount, o.Category)
	for q := p; q != "/" && q != "."; q = filepath.Dir(q) {
		if t, err := os.Readlink(q); err == nil {
			return t == filepath.Join(base, q)
		}
	}
	return false
}

// Roots returns the directories of n that move (those not inside
// another of its directories).
func (n *Node) Roots() []Dir {
	var out []Dir
	for _, d := range n.Dirs {
		if d.Covered == "" {
			out = append(out, d)
		}
	}
	return out
}

// nodeIDOf finds a process's node id: --ndb-nodeid (or --nodeid), else the
// ndb_<ID>.pid file in its working directory that holds its pid.
func nodeIDOf(p Proc) int {
	if v, ok := argValue(p.Args, "ndb-nodeid", "nodeid"); ok {
		if id, err := strconv.Atoi(v); err == nil {
			return id
		}
	}
	if p.Cwd == "" {
		return 0
	}
	m, _ := filepath.Glob(filepath.Join(p.Cwd, "ndb_*.pid"))
	for _, f := range m {
		b, err := os.ReadFile(f)
		if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(p.Pid) {
			continue
		}
		s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "ndb_"), ".pid")
		if id, err := strconv.Atoi(s); err == nil {
			return id
		}
	}
	return 0
}

type ndbConfigRow struct {
	id                  int
	kind, host, datadir string
}

// queryNdbConfig runs ndb_config --query=nodeid,type,host,datadir on the
// config.ini, or on the management server.
func queryNdbConfig(ctx context.Context, prog, configIni, connect string) ([]ndbConfigRow, error) {
	if prog == "" {
		p, err := exec.LookPath("ndb_config")
		if err != nil {
			return nil, err
		}
		prog = p
	}
	args := []string{"--query=nodeid,type,host,datadir", "--fields=\t", "--rows=\n"}
	if configIni != "" {
		args = append(args, "--config-file="+configIni)
	} else {
		args = append(args, "--ndb-connectstring="+connect)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	c := exec.CommandContext(ctx, prog, args...)
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", prog, err, lastLine(errb.String()))
	}
	var rows []ndbConfigRow
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 4 {
			continue
		}
		id, err := strconv.Atoi(strings.TrimSpace(f[0]))
		if err != nil {
			continue
		}
		rows = append(rows, ndbConfigRow{id: id, kind: strings.TrimSpace(f[1]), host: strings.TrimSpace(f[2]), datadir: strings.TrimSpace(f[3])})
	}
	return rows, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
