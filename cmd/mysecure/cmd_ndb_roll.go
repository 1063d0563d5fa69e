package main

// Output rules of `ndb enable|disable --rolling`: the roll's own lines
// ("roll: ...") go to stdout; each host's output goes to ours as it
// comes, every line prefixed "HOST: " when there are several hosts. A
// stop prints one error line naming the node, what was changed before it
// and what was not touched. The exit code is the failing host's own
// (the same table: 18 for a node that did not stop or come back, 3 for a
// wrong credential ...), 16 when a host could not be reached, 18 when a
// node's group had another node down.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mysecure/mysecure/encfs/daemon"
	"github.com/mysecure/mysecure/internal/sshclient"
	"github.com/mysecure/mysecure/ndb"
)

type rollOptions struct {
	Rolling        bool
	Hosts          []string
	Remote         string
	PassphraseFile string
	CredStdin      bool
}

func (o *rollOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Rolling, "rolling", false, "change the data nodes of --hosts over SSH, one node at a time")
	f.StringSliceVar(&o.Hosts, "hosts", nil, "with --rolling: `HOST[=ID[+ID]]`,... (ssh: names or user@host[:port]; the node ids on it, default: its data nodes)")
	f.StringVar(&o.Remote, "remote-mysecure", "mysecure", "with --rolling: the mysecure `PROGRAM` on the hosts")
	f.StringVar(&o.PassphraseFile, "ssh-key-passphrase-file", "", "with --rolling: read the passphrase of encrypted SSH keys from `FILE`")
	f.BoolVar(&o.CredStdin, "credential-stdin", false, "read the master credential as JSON from stdin (what --rolling sends to each host)")
}

// passThrough are the flags a roll hands on to each host as given (the
// paths are the hosts' paths).
var passThrough = []string{"config-ini", "my-cnf", "ndbd", "ndbmtd", "ndb-mgmd", "ndb-mgm", "ndb-config", "ndb-connectstring", "start-timeout", "stop-timeout"}

func passedFlags(f *pflag.FlagSet) []string {
	var out []string
	f.Visit(func(fl *pflag.Flag) {
		if !slices.Contains(passThrough, fl.Name) {
			return
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+fl.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+fl.Name+"="+fl.Value.String())
	})
	return out
}

// readStdinCredential reads the credential a roll sends (JSON of
// daemon.Credential) from stdin.
func readStdinCredential() (*daemon.Credential, error) {
	b, err := io.ReadAll(io.LimitReader(os.Stdin, maxSecretFile+1))
	defer clear(b)
	if err != nil {
		return nil, fmt.Errorf("failed to read the credential from stdin: %w", err)
	}
	if len(b) > maxSecretFile {
		return nil, usagef("the credential on stdin is too large")
	}
	var c daemon.Credential
	if err := json.Unmarshal(b, &c); err != nil || (c.Type != "passphrase" && c.Type != "rsa") {
		return nil, usagef("--credential-stdin: stdin holds no credential (JSON with type passphrase or rsa)")
	}
	return &c, nil
}

func runNDBRoll(ctx context.Context, cmd *cobra.Command, g *globalOptions, o *ndbChangeOptions, enable bool) error {
	if o.Node != 0 || o.AllLocal {
		return usagef("--rolling takes the nodes from --hosts HOST=ID+ID or each host's discovery, not --node or --all-local")
	}
	if len(o.roll.Hosts) == 0 {
		return usagef("--rolling needs --hosts HOST,...")
	}
	hosts, err := ndb.ParseRollHosts(o.roll.Hosts)
	if err != nil {
		return usageErr(fmt.Errorf("--hosts: %w", err))
	}
	verb := "enable"
	if !enable {
		verb = "disable"
	}
	var targets []*sshclient.Target
	for _, h := range hosts {
		t, err := g.cfg.SSH.Resolve(h.Spec)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	// Every host is connected before anything changes.
	var mu sync.Mutex
	var sshHosts []*ndb.SSHHost
	defer func() {
		for _, h := range sshHosts {
			h.Client.Close()
		}
	}()
	var flushers []*sshclient.PrefixWriter
	defer func() {
		for _, f := range flushers {
			f.Flush()
		}
	}()
	for _, t := range targets {
		c, err := sshclient.Dial(ctx, t, sshclient.Options{Auth: sshAuth(t, true, o.roll.PassphraseFile), Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			return fmt.Errorf("%s: %w (nothing was changed)", t.Label(), err)
		}
		h := &ndb.SSHHost{Client: c, Stdout: g.p.out, Stderr: g.p.err}
		if len(targets) > 1 {
			po := &sshclient.PrefixWriter{W: g.p.out, Prefix: t.Label() + ": ", Mu: &mu}
			pe := &sshclient.PrefixWriter{W: g.p.err, Prefix: t.Label() + ": ", Mu: &mu}
			flushers = append(flushers, po, pe)
			h.Stdout, h.Stderr = po, pe
		}
		sshHosts = append(sshHosts, h)
	}
	pass := passedFlags(cmd.Flags())
	mgmArgv := func(st *ndb.Status) []string {
		argv := []string{"ndb_mgm"}
		if o.NdbMgm != "" {
			argv[0] = o.NdbMgm
		}
		if st.ConnectString != "" {
			argv = append(argv, "--ndb-connectstring="+st.ConnectString)
		}
		return argv
	}
	// Each host says which data nodes it has and their groups.
	quiet := make([]ndb.Host, len(sshHosts))
	ids := make([][]int, len(hosts))
	for i, h := range sshHosts {
		quiet[i], ids[i] = &ndb.SSHHost{Client: h.Client}, hosts[i].Nodes
	}
	nodes, sts, err := ndb.RollNodes(ctx, quiet, ids, append([]string{o.roll.Remote, "ndb", "status", "--json"}, pass...))
	var se *ndb.StatusError
	switch {
	case errors.As(err, &se):
		return &childError{msg: se.Error(), code: remoteCode(se.Exit), hint: "run 'mysecure ndb status' on that host"}
	case errors.Is(err, ndb.ErrNoDataNode):
		return withHint(usageErr(err), "name its nodes: --hosts HOST=ID")
	case errors.Is(err, ndb.ErrNotDataNode):
		return withHint(usageErr(err), "'mysecure ndb status' on that host lists its nodes")
	case errors.Is(err, ndb.ErrNodeTwice):
		return withHint(usageErr(err), "name each host's nodes: --hosts HOST=ID+ID,...")
	case err != nil:
		return err
	}
	// Status was asked quietly; the changes print.
	loud := map[ndb.Host]ndb.Host{}
	mgmOf := map[string][]string{}
	for i, h := range sshHosts {
		loud[quiet[i]] = h
		mgmOf[h.Name()] = mgmArgv(sts[i])
	}
	for i := range nodes {
		nodes[i].Host = loud[nodes[i].Host]
	}
	for _, n := range nodes {
		grp := "?"
		if n.Group != nil {
			grp = strconv.Itoa(*n.Group)
		}
		fmt.Fprintf(g.p.out, "roll: node %d on %s (node group %s)\n", n.Node, n.Host.Name(), grp)
	}
	var cred []byte
	if !o.DryRun {
		c, err := o.creds.masterCredential()
		if err != nil {
			return err
		}
		cred, err = json.Marshal(c)
		c.Wipe()
		if err != nil {
			return err
		}
		defer clear(cred)
	}
	roll := &ndb.NodeRoll{
		Nodes: nodes,
		Argv: func(n ndb.RollNode) []string {
			argv := []string{o.roll.Remote, "ndb", verb, "--node", strconv.Itoa(n.Node)}
			for _, f := range []struct {
				on   bool
				name string
			}{{o.Stop, "--stop"}, {o.IncludeMgmd, "--include-mgmd"}, {o.DryRun, "--dry-run"}, {!o.DryRun, "--credential-stdin"}} {
				if f.on {
					argv = append(argv, f.name)
				}
			}
			return append(argv, pass...)
		},
		Begin: func(n ndb.RollNode) { fmt.Fprintf(g.p.out, "roll: %s node %d on %s\n", verb, n.Node, n.Host.Name()) },
	}
	if cred != nil {
		roll.Stdin = func() io.Reader { return strings.NewReader(string(cred)) }
	}
	if !o.DryRun {
		roll.Status = func(ctx context.Context, h ndb.Host, id int) (string, error) {
			return ndb.HostStatus(ctx, &ndb.SSHHost{Client: h.(*ndb.SSHHost).Client}, mgmOf[h.Name()], id)
		}
	}
	_, err = roll.Run(ctx)
	for _, f := range flushers {
		f.Flush()
	}
	var re *ndb.RollError
	if errors.As(err, &re) {
		code, hint := exitNodeDown, "the node's group must keep a started node: start the other node (or wait for it), then run the roll again; it skips what is done"
		if !errors.Is(err, ndb.ErrGroupDown) && !errors.Is(err, ndb.ErrNotStarted) {
			code, hint = remoteCode(re.Exit), "the host's own error is above; nodes already changed stay changed, running again skips them"
			if re.Err != nil {
				code, hint = classify(re.Err)
			}
		}
		return &childError{msg: re.Error(), code: code, hint: hint}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.p.out, "roll: %d node(s) on %d host(s) %sd\n", len(nodes), len(sshHosts), verb)
	return nil
}

// remoteCode is the exit code of a roll that a host's mysecure ended
// with code: the same table, except what is not mysecure's (127: not
// installed, -1: no status).
func remoteCode(code int) int {
	if code > 0 && code <= exitNodeDown {
		return code
	}
	return exitRemote
}
