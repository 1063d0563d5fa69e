package sshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ErrAuth marks a server that accepted none of the keys offered.
var ErrAuth = errors.New("ssh authentication failed")

// ErrConnect marks a host that could not be reached or that dropped the
// connection.
var ErrConnect = errors.New("ssh connection failed")

// Auth says how to authenticate; the zero value uses the target's key
// files only.
type Auth struct {
	// Passphrase is asked for the passphrase of an encrypted key file.
	// When nil, encrypted key files are skipped (and said so in the
	// error if nothing else works).
	Passphrase func(keyFile string) ([]byte, error)
	// AgentSocket is the ssh-agent socket (the CLI passes $SSH_AUTH_SOCK);
	// "" for none.
	AgentSocket string
}

// Options are the connection's behaviour.
type Options struct {
	Auth Auth
	// Timeout bounds the TCP connect and the SSH handshake (default 15s).
	Timeout time.Duration
	// Reconnects is how many times a dropped connection is re-established
	// when a new channel is opened (default 1; negative: never).
	Reconnects int
	Log        *slog.Logger
}

// Client is a connection to a target that keeps itself alive and
// reconnects (up to Options.Reconnects times) when a new channel finds it
// gone. Its methods are safe for concurrent use.
type Client struct {
	target *Target
	opts   Options

	mu         sync.Mutex
	conn       *ssh.Client
	jump       *Client
	reconnects int
	closed     bool
	stopKA     chan struct{}
}

// Dial connects and authenticates to t.
func Dial(ctx context.Context, t *Target, o Options) (*Client, error) {
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Reconnects == 0 {
		o.Reconnects = 1
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c := &Client{target: t, opts: o}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Target is what the client connects to.
func (c *Client) Target() *Target { return c.target }

func (c *Client) log() *slog.Logger { return c.opts.Log.With("ssh_host", c.target.Label()) }

// connect (re)establishes the connection; c.mu is held or c is new.
func (c *Client) connect(ctx context.Context) error {
	t := c.target
	signers, skipped, err := loadSigners(t, c.opts.Auth)
	if err != nil {
		return err
	}
	hk := newHostKeyChecker(t.KnownHosts, t.HostKeyCheck == "accept-new")
	cfg := &ssh.ClientConfig{
		User:            t.userName(),
		Auth:            []ssh.AuthMethod{ssh.PublicKeysCallback(signers)},
		HostKeyCallback: hk.Check,
		Timeout:         c.opts.Timeout,
		ClientVersion:   "SSH-2.0-mysecure",
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var raw net.Conn
	if t.Jump != nil {
		if c.jump == nil {
			j, err := Dial(ctx, t.Jump, c.opts)
			if err != nil {
				return fmt.Errorf("jump host %s: %w", t.Jump.Label(), err)
			}
			c.jump = j
		}
		raw, err = c.jump.DialContext(ctx, "tcp", t.Addr())
		if err != nil {
			return fmt.Errorf("%w: %s through jump host %s: %v", ErrConnect, t.Addr(), t.Jump.Label(), err)
		}
	} else {
		d := net.Dialer{KeepAlive: 30 * time.Second}
		raw, err = d.DialContext(ctx, "tcp", t.Addr())
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrConnect, t.Addr(), err)
		}
	}
	// The handshake has no context: the deadline bounds it.
	raw.SetDeadline(time.Now().Add(c.opts.Timeout))
	sc, chans, reqs, err := ssh.NewClientConn(raw, t.Addr(), cfg)
	if err != nil {
		raw.Close()
		return handshakeError(t, cfg.User, err, skipped)
	}
	raw.SetDeadline(time.Time{})
	c.conn = ssh.NewClient(sc, chans, reqs)
	c.stopKA = make(chan struct{})
	go c.keepalive(c.conn, c.stopKA)
	c.log().Debug("ssh connected", "addr", t.Addr(), "user", cfg.User)
	return nil
}

func handshakeError(t *Target, user string, err error, skipped []string) error {
	var he *HostKeyError
	if errors.As(err, &he) {
		return he
	}
	msg := err.Error()
	if strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "no supported methods remain") {
		extra := ""
		if len(skipped) > 0 {
			extra = "; not tried: " + strings.Join(skipped, ", ")
		}
		return fmt.Errorf("%w: %s@%s accepted none of the keys offered%s", ErrAuth, user, t.Addr(), extra)
	}
	return fmt.Errorf("%w: %s: %v", ErrConnect, t.Addr(), err)
}

// loadSigners returns the agent's keys, then the key files'; skipped
// lists what could not be used and why.
func loadSigners(t *Target, a Auth) (func() ([]ssh.Signer, error), []string, error) {
	var signers []ssh.Signer
	var skipped []string
	if a.AgentSocket != "" {
		if conn, err := net.Dial("unix", a.AgentSocket); err == nil {
			if s, err := agent.NewClient(conn).Signers(); err == nil {
				signers = append(signers, s...)
			} else {
				skipped = append(skipped, "ssh-agent ("+err.Error()+")")
			}
		} else {
			skipped = append(skipped, "ssh-agent (cannot connect to its socket)")
		}
	}
	files := t.Identity
	explicit := len(files) > 0
	if !explicit {
		files = DefaultIdentities()
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if explicit {
				return nil, nil, fmt.Errorf("%w: identity file %s: %v", ErrConfig, f, err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			if a.Passphrase == nil {
				skipped = append(skipped, f+" (encrypted, no passphrase given)")
				clear(b)
				continue
			}
			pp, perr := a.Passphrase(f)
			if perr != nil {
				clear(b)
				return nil, nil, fmt.Errorf("passphrase of %s: %w", f, perr)
			}
			s, err = ssh.ParsePrivateKeyWithPassphrase(b, pp)
			clear(pp)
			if err != nil {
				clear(b)
				return nil, nil, fmt.Errorf("%w: identity file %s: wrong passphrase or unreadable key: %v", ErrAuth, f, err)
			}
		} else if err != nil {
			clear(b)
			return nil, nil, fmt.Errorf("%w: identity file %s: %v", ErrConfig, f, err)
		}
		clear(b)
		signers = append(signers, s)
	}
	if len(signers) == 0 {
		why := "no key files and no ssh-agent"
		if len(skipped) > 0 {
			why = strings.Join(skipped, ", ")
		}
		return nil, nil, fmt.Errorf("%w: no key to offer to %s: %s", ErrAuth, t.Label(), why)
	}
	return func() ([]ssh.Signer, error) { return signers, nil }, skipped, nil
}

// keepalive sends keepalive@openssh.com requests; three unanswered in a
// row close the connection (its users then see it fail, and the next
// channel reconnects).
func (c *Client) keepalive(conn *ssh.Client, stop chan struct{}) {
	every := c.target.Keepalive
	if every == 0 {
		every = 15 * time.Second
	}
	if every < 0 {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	missed := 0
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				c.log().Warn("ssh connection lost", "err", err)
				conn.Close()
				return
			}
			missed = 0
		case <-time.After(every):
			missed++
			if missed >= 3 {
				c.log().Warn("ssh keepalives unanswered: closing the connection")
				conn.Close()
				return
			}
		case <-stop:
			return
		}
	}
}

// current returns the live connection, reconnecting once it is gone and
// reconnects are left.
func (c *Client) current(ctx context.Context, failed *ssh.Client) (*ssh.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: the client is closed", ErrConnect)
	}
	if failed == nil || c.conn != failed {
		return c.conn, nil
	}
	if c.reconnects >= c.opts.Reconnects {
		return nil, fmt.Errorf("%w: %s: the connection was lost", ErrConnect, c.target.Label())
	}
	c.reconnects++
	close(c.stopKA)
	c.conn.Close()
	c.log().Info("ssh reconnecting")
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c.conn, nil
}

// with runs fn on the connection; if it fails because the connection is
// gone, it reconnects and tries once more.
func with[T any](ctx context.Context, c *Client, fn func(*ssh.Client) (T, error)) (T, error) {
	conn, err := c.current(ctx, nil)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := fn(conn)
	if err == nil || !connGone(err) {
		return v, err
	}
	conn, err2 := c.current(ctx, conn)
	if err2 != nil {
		var zero T
		return zero, err2
	}
	return fn(conn)
}

// connGone reports errors that mean the transport is dead (a refused
// channel is not one of them).
func connGone(err error) bool {
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection") ||
		strings.Contains(err.Error(), "connection reset")
}

// DialContext opens a connection from the remote host to addr: network
// "tcp" (host:port) or "unix" (a socket path, direct-streamlocal).
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return with(ctx, c, func(conn *ssh.Client) (net.Conn, error) {
		return conn.DialContext(ctx, network, addr)
	})
}

// Close ends the connection (and the jump host's).
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	close(c.stopKA)
	err := c.conn.Close()
	if c.jump != nil {
		c.jump.Close()
	}
	return err
}
