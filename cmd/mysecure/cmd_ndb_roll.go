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
	"os"
	"slices"
	"strconv"

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
	c, err := daemon.ReadCredential(os.Stdin, maxSecretFile)
	switch {
	case errors.Is(err, daemon.ErrCredentialSize):
		return nil, usagef("the credential on stdin is too large")
	case errors.Is(err, daemon.ErrNoCredential):
		return nil, usagef("--credential-stdin: stdin holds no credential (JSON with type passphrase or rsa)")
	case err != nil:
		return nil, fmt.Errorf("failed to read the credential from stdin: %w", err)
	}
	return c, nil
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
	specs := make([]string, len(hosts))
	for i, h := range hosts {
		specs[i] = h.Spec
	}
	targets, err := g.cfg.SSH.ResolveAll(specs)
	if err != nil {
		return err
	}
	// Every host is connected before anything changes.
	outs := sshclient.NewOutputs(g.p.out, g.p.err, len(targets))
	defer outs.Flush()
	sshHosts, closeAll, err := ndb.DialHosts(ctx, &sshclient.Fleet{Targets: targets, Options: func(t *sshclient.Target) sshclient.Options {
		return sshclient.Options{Auth: sshAuth(t, true, o.roll.PassphraseFile)}
	}}, outs)
	if err != nil {
		return err
	}
	defer closeAll()
	roll := &ndb.RemoteRoll{Hosts: sshHosts, Given: hosts, Mysecure: o.roll.Remote, Enable: enable,
		Stop: o.Stop, IncludeMgmd: o.IncludeMgmd, DryRun: o.DryRun, Pass: passedFlags(cmd.Flags()), NdbMgm: o.NdbMgm}
	roll.Begin = func(n ndb.RollNode) {
		fmt.Fprintf(g.p.out, "roll: %s node %d on %s\n", roll.Verb(), n.Node, n.Host.Name())
	}
	// Each host says which data nodes it has and their groups.
	nodes, err := roll.Nodes(ctx)
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
	for _, n := range nodes {
		grp := "?"
		if n.Group != nil {
			grp = strconv.Itoa(*n.Group)
		}
		fmt.Fprintf(g.p.out, "roll: node %d on %s (node group %s)\n", n.Node, n.Host.Name(), grp)
	}
	if !o.DryRun {
		c, err := o.creds.masterCredential()
		if err != nil {
			return err
		}
		roll.Stdin, err = json.Marshal(c)
		c.Wipe()
		if err != nil {
			return err
		}
		defer clear(roll.Stdin)
	}
	err = roll.Run(ctx, nodes)
	outs.Flush()
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
	fmt.Fprintf(g.p.out, "roll: %d node(s) on %d host(s) %sd\n", len(nodes), len(sshHosts), roll.Verb())
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
