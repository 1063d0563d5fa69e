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
	"syscall"
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
	// lost says why the connection ended without Close (nil while it
	// is up).
	lost error
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
	keys, err := loadSigners(t, c.opts.Auth)
	if err != nil {
		return err
	}
	// The agent signs during the handshake only.
	defer keys.close()
	hk := newHostKeyChecker(t.KnownHosts, t.HostKeyCheck == "accept-new")
	cfg := &ssh.ClientConfig{
		User:            t.userName(),
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(keys.signers...)},
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
		return handshakeError(t, cfg.User, err, keys)
	}
	raw.SetDeadline(time.Time{})
	c.conn = ssh.NewClient(sc, chans, reqs)
	c.stopKA = make(chan struct{})
	c.lost = nil
	go c.keepalive(c.conn, c.stopKA)
	go c.watch(c.conn)
	c.log().Debug("ssh connected", "addr", t.Addr(), "user", cfg.User)
	return nil
}

func handshakeError(t *Target, user string, err error, keys *signerSet) error {
	var he *HostKeyError
	if errors.As(err, &he) {
		return he
	}
	msg := err.Error()
	if strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "no supported methods remain") {
		extra := " (" + strings.Join(keys.offered, ", ") + ")"
		if len(keys.skipped) > 0 {
			extra += "; not tried: " + strings.Join(keys.skipped, ", ")
		}
		return fmt.Errorf("%w: %s@%s accepted none of the keys offered%s", ErrAuth, user, t.Addr(), extra)
	}
	return fmt.Errorf("%w: %s: %v", ErrConnect, t.Addr(), err)
}

// signerSet is the keys offered to a server: the agent's, then the key
// files'. offered names them for errors (never their contents), skipped
// says what could not be used and why.
type signerSet struct {
	signers []ssh.Signer
	offered []string
	skipped []string
	agent   net.Conn // open while the agent's keys are in use
}

func (s *signerSet) close() {
	if s.agent != nil {
		s.agent.Close()
		s.agent = nil
	}
}

// loadSigners returns the keys to offer to t.
func loadSigners(t *Target, a Auth) (*signerSet, error) {
	keys := &signerSet{}
	if a.AgentSocket != "" {
		keys.addAgent(a.AgentSocket)
	}
	files := t.Identity
	explicit := len(files) > 0
	if !explicit {
		files = DefaultIdentities()
	}
	for _, f := range files {
		s, skip, err := loadKeyFile(f, a, explicit)
		if err != nil {
			keys.close()
			return nil, err
		}
		if s == nil {
			if skip != "" {
				keys.skipped = append(keys.skipped, f+" ("+skip+")")
			}
			continue
		}
		keys.signers = append(keys.signers, s)
		keys.offered = append(keys.offered, f)
	}
	if len(keys.signers) == 0 {
		keys.close()
		why := "no key files and no ssh-agent"
		if len(keys.skipped) > 0 {
			why = strings.Join(keys.skipped, ", ")
		}
		return nil, fmt.Errorf("%w: no key to offer to %s: %s", ErrAuth, t.Label(), why)
	}
	return keys, nil
}

// addAgent adds the keys of the ssh-agent listening on socket.
func (s *signerSet) addAgent(socket string) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		s.skipped = append(s.skipped, "ssh-agent (cannot connect to SSH_AUTH_SOCK "+socket+")")
		return
	}
	signers, err := agent.NewClient(conn).Signers()
	switch {
	case err != nil:
		conn.Close()
		s.skipped = append(s.skipped, "ssh-agent ("+err.Error()+")")
	case len(signers) == 0:
		conn.Close()
		s.skipped = append(s.skipped, "ssh-agent (it holds no keys: ssh-add adds one)")
	default:
		s.agent = conn
		s.signers = append(s.signers, signers...)
		s.offered = append(s.offered, fmt.Sprintf("%d from ssh-agent", len(signers)))
	}
}

// loadKeyFile reads one identity file. A key it cannot use without
// failing the connection comes back nil with the reason to report (""
// for a default key file that vanished).
func loadKeyFile(f string, a Auth, explicit bool) (ssh.Signer, string, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		if explicit {
			return nil, "", fmt.Errorf("%w: identity file %s: %v", ErrConfig, f, err)
		}
		return nil, "", nil
	}
	defer clear(b)
	s, err := ssh.ParsePrivateKey(b)
	var pm *ssh.PassphraseMissingError
	if errors.As(err, &pm) {
		if a.Passphrase == nil {
			return nil, "encrypted, no passphrase given", nil
		}
		pp, perr := a.Passphrase(f)
		if perr != nil {
			return nil, "", fmt.Errorf("passphrase of %s: %w", f, perr)
		}
		s, err = ssh.ParsePrivateKeyWithPassphrase(b, pp)
		clear(pp)
		if err != nil {
			return nil, "", fmt.Errorf("%w: identity file %s: wrong passphrase or unreadable key: %v", ErrAuth, f, err)
		}
	} else if err != nil {
		return nil, "", fmt.Errorf("%w: identity file %s: %v", ErrConfig, f, err)
	}
	return s, "", nil
}

// keepalive sends a keepalive@openssh.com request every interval (one
// at a time) and closes the connection when none has been answered for
// interval × count: a server that stops answering is noticed at most
// that long after its last answer, and the connection's users then see
// their channels end (the next channel reconnects).
func (c *Client) keepalive(conn *ssh.Client, stop chan struct{}) {
	every, count := c.target.keepalive()
	if every < 0 {
		return
	}
	limit := every * time.Duration(count)
	tick := time.NewTicker(every)
	defer tick.Stop()
	dead := time.NewTimer(limit)
	defer dead.Stop()
	answers := make(chan error, 1)
	inFlight := false
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if !inFlight {
				inFlight = true
				go func() {
					_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
					answers <- err
				}()
			}
		case err := <-answers:
			inFlight = false
			if err != nil {
				// The connection ended some other way: its users see
				// that error.
				return
			}
			dead.Reset(limit)
		case <-dead.C:
			lost := fmt.Errorf("the server answered no keepalive for %s (keepalive %s × %d)", limit, every, count)
			c.log().Warn("ssh keepalives unanswered: closing the connection", "after", limit.String())
			c.mu.Lock()
			if c.conn == conn {
				c.lost = lost
			}
			c.mu.Unlock()
			conn.Close()
			return
		}
	}
}

// stopKeepalive ends the keepalives of the current connection; c.mu is
// held.
func (c *Client) stopKeepalive() {
	if c.stopKA != nil {
		close(c.stopKA)
		c.stopKA = nil
	}
}

// watch records that conn ended when nobody closed it.
func (c *Client) watch(conn *ssh.Client) {
	err := conn.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != conn || c.closed || c.lost != nil || c.stopKA == nil {
		return
	}
	switch {
	case err == nil || errors.Is(err, io.EOF):
		c.lost = errors.New("the server closed the connection")
	case errors.Is(err, syscall.ECONNRESET):
		c.lost = errors.New("the server reset the connection")
	default:
		c.lost = fmt.Errorf("the connection failed: %v", err)
	}
}

// Lost says why the connection ended, when it ended without Close and
// has not been re-established (nil otherwise): a tunnelled tool only
// sees its own connection drop, this says why.
func (c *Client) Lost() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// lostReason says why conn ended, for an error message ("" when it is
// not known, or conn is no longer the current connection).
func (c *Client) lostReason(conn *ssh.Client) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn && c.lost != nil {
		return ": " + c.lost.Error()
	}
	return ""
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
	why := ""
	if c.lost != nil {
		why = " (" + c.lost.Error() + ")"
	}
	if c.reconnects >= c.opts.Reconnects {
		if c.reconnects == 0 {
			return nil, fmt.Errorf("%w: %s: the connection was lost%s (reconnects are off)", ErrConnect, c.target.Label(), why)
		}
		return nil, fmt.Errorf("%w: %s: the connection was lost again after %d reconnect(s), the most allowed%s", ErrConnect, c.target.Label(), c.reconnects, why)
	}
	c.reconnects++
	c.stopKeepalive()
	c.conn.Close()
	c.log().Info("ssh connection lost: reconnecting", "reason", strings.TrimPrefix(why, " "))
	if err := c.connect(ctx); err != nil {
		return nil, fmt.Errorf("%s: the connection was lost%s; reconnecting: %w", c.target.Label(), why, err)
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
	c.stopKeepalive()
	err := c.conn.Close()
	if c.jump != nil {
		c.jump.Close()
	}
	return err
}
