package sshclient

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// Forward is a local listener on 127.0.0.1 whose connections are carried
// to a remote address over the SSH connection.
type Forward struct {
	c       *Client
	ln      net.Listener
	network string
	remote  string
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	err   error
}

// Forward listens on 127.0.0.1:0 and forwards each connection to remote:
// network "tcp" (host:port as seen from the remote host) or "unix" (a
// socket path on the remote host). Only processes of this host can
// connect to the listener; anyone there who can should be trusted with
// the server (the tools authenticate to MySQL as usual).
func (c *Client) Forward(ctx context.Context, network, remote string) (*Forward, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Forward{c: c, ln: ln, network: network, remote: remote, conns: map[net.Conn]bool{}}
	// Fail early: a remote that refuses the channel (no server there,
	// forwarding disabled) is an error now, not at the tool's connect.
	probe, err := c.DialContext(ctx, network, remote)
	if err != nil {
		ln.Close()
		return nil, &ForwardError{Network: network, Remote: remote, Err: err}
	}
	probe.Close()
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// ForwardError is a remote end the SSH server could not connect to.
type ForwardError struct {
	Network, Remote string
	Err             error
}

func (e *ForwardError) Error() string {
	return "ssh forwarding to " + e.Network + " " + e.Remote + " on the remote host failed: " + e.Err.Error()
}

func (e *ForwardError) Unwrap() error { return e.Err }

// Addr is the local listener's address (127.0.0.1:port).
func (f *Forward) Addr() *net.TCPAddr { return f.ln.Addr().(*net.TCPAddr) }

// Err is the first error forwarding a connection met (nil if none).
func (f *Forward) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *Forward) setErr(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *Forward) track(c net.Conn, on bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		if f.conns == nil {
			return false // closed
		}
		f.conns[c] = true
	} else if f.conns != nil {
		delete(f.conns, c)
	}
	return true
}

func (f *Forward) serve() {
	defer f.wg.Done()
	for {
		lc, err := f.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.setErr(err)
			}
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer lc.Close()
			rc, err := f.c.DialContext(context.Background(), f.network, f.remote)
			if err != nil {
				f.setErr(&ForwardError{Network: f.network, Remote: f.remote, Err: err})
				f.c.log().Warn("ssh forward failed", "remote", f.remote, "err", err)
				return
			}
			defer rc.Close()
			if !f.track(lc, true) {
				return
			}
			f.track(rc, true)
			defer f.track(lc, false)
			defer f.track(rc, false)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(rc, lc)
				if cw, ok := rc.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
			}()
			io.Copy(lc, rc)
			if tc, ok := lc.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			wg.Wait()
		}()
	}
}

// Close stops listening and cuts the forwarded connections.
func (f *Forward) Close() error {
	err := f.ln.Close()
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	f.wg.Wait()
	return err
}
