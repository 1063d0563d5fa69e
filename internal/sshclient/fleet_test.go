package sshclient

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testServer is an SSH server of x/crypto on a loopback port (the
// integration tests use OpenSSH's sshd): it accepts one user key and
// answers "exec" requests with the command on stdout and exit status 0,
// or, for "fail N", exit status N.
type testServer struct {
	port       int
	knownHosts string
	identity   string
	sessions   atomic.Int32 // sessions open now
	maxOpen    atomic.Int32
	delay      time.Duration
}

func startServer(t *testing.T, delay time.Duration) *testServer {
	t.Helper()
	dir := t.TempDir()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	userPub, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	userKey, _ := ssh.NewPublicKey(userPub)
	blk, err := ssh.MarshalPrivateKey(userPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{identity: filepath.Join(dir, "id"), knownHosts: filepath.Join(dir, "known_hosts"), delay: delay}
	if err := os.WriteFile(s.identity, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(userKey.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s.port = ln.Addr().(*net.TCPAddr).Port
	line := fmt.Sprintf("[127.0.0.1]:%d %s", s.port, ssh.MarshalAuthorizedKey(hostSigner.PublicKey()))
	if err := os.WriteFile(s.knownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c, cfg)
		}
	}()
	return s
}

func (s *testServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for r := range creqs {
				if r.Type != "exec" {
					r.Reply(false, nil)
					continue
				}
				r.Reply(true, nil)
				n := s.sessions.Add(1)
				for m := s.maxOpen.Load(); n > m && !s.maxOpen.CompareAndSwap(m, n); m = s.maxOpen.Load() {
				}
				time.Sleep(s.delay)
				cmd := string(r.Payload[4:])
				status := uint32(0)
				if code, ok := strings.CutPrefix(cmd, "fail "); ok {
					fmt.Sscan(code, &status)
				}
				fmt.Fprintf(ch, "%s\n", cmd)
				s.sessions.Add(-1)
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
				return
			}
		}()
	}
}

func (s *testServer) target(name string) *Target {
	return &Target{HostConfig: HostConfig{Name: name, Host: "127.0.0.1", Port: s.port, User: "u",
		Identity: []string{s.identity}, KnownHosts: []string{s.knownHosts}, Keepalive: -1}}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

func TestFanOut(t *testing.T) {
	for _, tc := range []struct{ n, parallel, wantMax int }{{10, 3, 3}, {5, 0, 5}, {4, 1, 1}, {0, 0, 0}} {
		t.Run(fmt.Sprintf("%d/%d", tc.n, tc.parallel), func(t *testing.T) {
			var open, most atomic.Int32
			ran := make([]int32, tc.n)
			fanOut(tc.n, tc.parallel, func(i int) {
				n := open.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				// Each waits (2 s at most) until wantMax run at once:
				// they must, and no more.
				for end := time.Now().Add(2 * time.Second); most.Load() < int32(tc.wantMax) && time.Now().Before(end); {
					time.Sleep(time.Millisecond)
				}
				time.Sleep(time.Millisecond)
				atomic.AddInt32(&ran[i], 1)
				open.Add(-1)
			})
			if int(most.Load()) != tc.wantMax {
				t.Fatalf("%d ran at once, want %d", most.Load(), tc.wantMax)
			}
			for i, r := range ran {
				if r != 1 {
					t.Fatalf("fn(%d) ran %d times", i, r)
				}
			}
		})
	}
}

// TestFleet: results in the order of the targets, values from the hosts
// reached, dial errors for the others, Parallel respected, and each
// target's own options.
func TestFleet(t *testing.T) {
	srv := startServer(t, 50*time.Millisecond)
	down := &Target{HostConfig: HostConfig{Name: "down", Host: "127.0.0.1", Port: closedPort(t), User: "u",
		Identity: []string{srv.identity}, KnownHosts: []string{srv.knownHosts}}}
	f := &Fleet{Targets: []*Target{srv.target("a"), down, srv.target("b"), srv.target("c")}, Parallel: 2}
	var asked []string
	var mu sync.Mutex
	f.Options = func(t *Target) Options {
		mu.Lock()
		asked = append(asked, t.Name)
		mu.Unlock()
		return Options{Timeout: 5 * time.Second}
	}
	ctx := context.Background()
	vals, res := Gather(ctx, f, func(ctx context.Context, c *Client) (string, error) {
		var out strings.Builder
		err := c.Run(ctx, "echo "+c.Target().Name, nil, &out, nil)
		return out.String(), err
	})
	if len(vals) != 4 || vals[0] != "echo a\n" || vals[1] != "" || vals[2] != "echo b\n" || vals[3] != "echo c\n" {
		t.Fatalf("values %q", vals)
	}
	for i, want := range []string{"a", "down", "b", "c"} {
		if res[i].Host != want || (res[i].Err != nil) != (want == "down") {
			t.Fatalf("result %d: %+v", i, res[i])
		}
	}
	if !errors.Is(res[1].Err, ErrConnect) {
		t.Fatalf("unreachable host: %v", res[1].Err)
	}
	if len(asked) != 4 {
		t.Fatalf("options asked for %v", asked)
	}
	if m := srv.maxOpen.Load(); m < 1 || m > 2 {
		t.Fatalf("%d sessions at once with Parallel 2", m)
	}

	// Each, and Failure of its results: a failed command and an
	// unreachable host; the unreachable one is the worst.
	f.Targets = []*Target{srv.target("a"), srv.target("b"), down}
	res = f.Each(ctx, func(ctx context.Context, c *Client) error {
		if c.Target().Name == "a" {
			return c.Run(ctx, "fail 3", nil, nil, nil)
		}
		return c.Run(ctx, "true", nil, nil, nil)
	})
	err := Failure(res)
	var fe *FleetError
	var ee *ExitError
	if !errors.As(err, &fe) || err.Error() != "2 of 3 hosts failed" || len(fe.Failed) != 2 || fe.Failed[0].Host != "a" || fe.Failed[1].Host != "down" {
		t.Fatalf("failure: %v %+v", err, fe)
	}
	if !errors.Is(err, ErrConnect) || errors.As(err, &ee) {
		t.Fatalf("worst is not the unreachable host: %v", fe.Worst)
	}
	if !errors.As(fe.Failed[0].Err, &ee) || ee.Status != 3 {
		t.Fatalf("failed command: %v", fe.Failed[0].Err)
	}

	// DialAll: all or nothing, in order; the host that is down named.
	cs, err := f.DialAll(ctx)
	if cs != nil || !errors.Is(err, ErrConnect) || !strings.HasPrefix(err.Error(), "down: ") {
		t.Fatalf("DialAll with a host down: %v %v", cs, err)
	}
	f.Targets = f.Targets[:2]
	cs, err = f.DialAll(ctx)
	if err != nil || len(cs) != 2 || cs[0].Target().Name != "a" || cs[1].Target().Name != "b" {
		t.Fatalf("DialAll: %v %v", cs, err)
	}
	for _, c := range cs {
		if err := c.Run(ctx, "true", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

func TestFailure(t *testing.T) {
	exit1, exit2 := &ExitError{Status: 1}, &ExitError{Status: 2}
	for _, tc := range []struct {
		name  string
		res   []Result
		worst error // nil: no error
		fleet bool
	}{
		{"all ok", []Result{{Host: "a"}, {Host: "b"}}, nil, false},
		{"none", nil, nil, false},
		{"one host", []Result{{Host: "a", Err: exit1}}, exit1, false},
		{"first of equals", []Result{{Host: "a", Err: exit1}, {Host: "b", Err: exit2}}, exit1, true},
		{"unreachable wins", []Result{{Host: "a", Err: exit1}, {Host: "b", Err: ErrAuth}, {Host: "c", Err: ErrConnect}}, ErrAuth, true},
		{"command does not replace unreachable", []Result{{Host: "a", Err: ErrHostKey}, {Host: "b", Err: exit1}}, ErrHostKey, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Failure(tc.res)
			var fe *FleetError
			switch {
			case tc.worst == nil && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tc.fleet && (!errors.As(err, &fe) || fe.Worst != tc.worst || fe.Hosts != len(tc.res)):
				t.Fatalf("got %v, want a FleetError with worst %v", err, tc.worst)
			case !tc.fleet && err != tc.worst:
				t.Fatalf("got %v, want %v itself", err, tc.worst)
			}
		})
	}
}

func TestOutputs(t *testing.T) {
	var out, errb strings.Builder
	one := NewOutputs(&out, &errb, 1)
	o, e, flush := one.For("db1")
	if o != &out || e != &errb {
		t.Fatal("one host: not the writers themselves")
	}
	flush()

	two := NewOutputs(&out, &errb, 2)
	o1, e1, flush1 := two.For("db1")
	o2, _, _ := two.For("db2")
	o1.Write([]byte("a\npart"))
	e1.Write([]byte("oops"))
	o2.Write([]byte("b\nlast"))
	flush1()
	two.Flush()
	if out.String() != "db1: a\ndb2: b\ndb1: part\ndb2: last\n" || errb.String() != "db1: oops\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
	}
}

func TestResolveAll(t *testing.T) {
	s := &Settings{Hosts: []HostConfig{{Name: "db1", Host: "10.0.0.1"}, {Name: "db2", Host: "10.0.0.2", Jump: "db1"}}}
	ts, err := s.ResolveAll([]string{"db2", "root@10.0.0.3:2222"})
	if err != nil || len(ts) != 2 || ts[0].Jump == nil || ts[0].Jump.Name != "db1" || ts[1].Port != 2222 {
		t.Fatalf("%+v %v", ts, err)
	}
	if _, err := s.ResolveAll([]string{"db1", "bad host"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad name: %v", err)
	}
}

func TestWire(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
		back error
	}{
		{&HostKeyError{Host: "h"}, CodeHostKey, ErrHostKey},
		{fmt.Errorf("x: %w", ErrConfig), CodeConfig, ErrConfig},
		{ErrAuth, CodeFailed, ErrConnect},
		{ErrConnect, CodeFailed, ErrConnect},
		{&ForwardError{Err: errors.New("refused")}, CodeFailed, ErrConnect},
		{&ExitError{Status: 1}, "", nil},
		{errors.New("other"), "", nil},
	} {
		if c := WireCode(tc.err); c != tc.code || WireError(c) != tc.back {
			t.Errorf("%v: code %q back %v, want %q %v", tc.err, c, WireError(c), tc.code, tc.back)
		}
	}
	if WireError("not_found") != nil {
		t.Error("another package's code decoded")
	}
}
