package ndb

import (
	"bytes"
	"context"
	"io"
	"strconv"
)

// RemoteRoll is `ndb enable|disable --rolling`: each host's own mysecure
// first says which data nodes it has (`ndb status --json`), then changes
// one node at a time (`ndb enable --node ID`), with NodeRoll's checks of
// the node groups in between.
type RemoteRoll struct {
	// Hosts[i] is the host of Given[i] (connected: see DialHosts).
	Hosts []Host
	Given []RollHost
	// Mysecure is the mysecure program on the hosts.
	Mysecure string
	Enable   bool
	// Stop, IncludeMgmd and DryRun are passed on as --stop,
	// --include-mgmd and --dry-run.
	Stop, IncludeMgmd, DryRun bool
	// Pass are discovery flags (--config-ini=PATH ...) every command
	// gets as given: paths are the hosts' own.
	Pass []string
	// NdbMgm is the management client on the hosts ("": ndb_mgm).
	NdbMgm string
	// Stdin is what each change reads on its standard input with
	// --credential-stdin (the master credential, encoded by the caller;
	// never argv). Without DryRun it is required.
	Stdin []byte
	// Begin, when set, is told of each node before its change.
	Begin func(RollNode)

	mgm map[string][]string // the management client of each host, by name
}

// Verb is "enable" or "disable".
func (r *RemoteRoll) Verb() string { return verb(r.Enable) }

// Nodes asks each host for its status, without showing the output, and
// returns the data nodes to change, in host order (see RollNodes).
func (r *RemoteRoll) Nodes(ctx context.Context) ([]RollNode, error) {
	quiet := make([]Host, len(r.Hosts))
	ids := make([][]int, len(r.Hosts))
	for i, h := range r.Hosts {
		quiet[i], ids[i] = indexedHost{Quiet(h), i}, r.Given[i].Nodes
	}
	nodes, sts, err := RollNodes(ctx, quiet, ids, append([]string{r.Mysecure, "ndb", "status", "--json"}, r.Pass...))
	if err != nil {
		return nil, err
	}
	r.mgm = map[string][]string{}
	for i, h := range r.Hosts {
		r.mgm[h.Name()] = Mgm{Program: r.NdbMgm, ConnectString: sts[i].ConnectString}.Argv()
	}
	// The changes show their output.
	for i := range nodes {
		nodes[i].Host = r.Hosts[nodes[i].Host.(indexedHost).i]
	}
	return nodes, nil
}

// Run changes nodes, from Nodes, one at a time (see NodeRoll.Run). A dry
// run does not ask the management server about the groups.
func (r *RemoteRoll) Run(ctx context.Context, nodes []RollNode) error {
	roll := &NodeRoll{Nodes: nodes, Argv: r.argv, Begin: r.Begin}
	if r.Stdin != nil {
		roll.Stdin = func() io.Reader { return bytes.NewReader(r.Stdin) }
	}
	if !r.DryRun {
		roll.Status = func(ctx context.Context, h Host, id int) (string, error) {
			return HostStatus(ctx, Quiet(h), r.mgm[h.Name()], id)
		}
	}
	_, err := roll.Run(ctx)
	return err
}

// argv is the command that changes node n on its host.
func (r *RemoteRoll) argv(n RollNode) []string {
	argv := []string{r.Mysecure, "ndb", r.Verb(), "--node", strconv.Itoa(n.Node)}
	for _, f := range []struct {
		on   bool
		name string
	}{{r.Stop, "--stop"}, {r.IncludeMgmd, "--include-mgmd"}, {r.DryRun, "--dry-run"}, {!r.DryRun, "--credential-stdin"}} {
		if f.on {
			argv = append(argv, f.name)
		}
	}
	return append(argv, r.Pass...)
}

// indexedHost is the host of RemoteRoll.Hosts[i].
type indexedHost struct {
	Host
	i int
}

// Argv is the management client's command line without its -e: for
// another host, where the program is not looked up here.
func (m Mgm) Argv() []string {
	argv := []string{"ndb_mgm"}
	if m.Program != "" {
		argv[0] = m.Program
	}
	if m.ConnectString != "" {
		argv = append(argv, "--ndb-connectstring="+m.ConnectString)
	}
	return argv
}
