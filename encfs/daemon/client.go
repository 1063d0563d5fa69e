package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/mysecure/mysecure/encfs/volume"
)

// ErrNotRunning: nothing answers on the control socket.
var ErrNotRunning = errors.New("the mysecure daemon is not running (volume not mounted)")

// Client talks to a daemon's control socket.
type Client struct {
	socket string
	hc     *http.Client
	// jobErr turns a code of the job module back into its error.
	jobErr func(code string) error
}

// WithJobErrors sets how the codes of errors of jobs (Jobs.Code on the
// daemon's side) turn back into the job module's errors, and returns c.
func (c *Client) WithJobErrors(decode func(code string) error) *Client {
	c.jobErr = decode
	return c
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	// Argon2 for a credential check takes about a second; moves of large
	// directories take as long as they take.
	return &Client{socket: path, hc: &http.Client{Transport: tr, Timeout: 24 * time.Hour}}
}

// checkSocket makes sure the socket belongs to root, in a directory only
// root can write, before any credential is sent to it.
func (c *Client) checkSocket() error {
	var st syscall.Stat_t
	if err := syscall.Lstat(c.socket, &st); err != nil {
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("cannot reach the daemon's socket %s: %w", c.socket, err)
		}
		return fmt.Errorf("%w (no daemon on %s)", ErrNotRunning, c.socket)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK || st.Uid != 0 {
		return fmt.Errorf("%s is not a socket owned by root: refusing to talk to it", c.socket)
	}
	return checkSocketDir(filepath.Dir(c.socket))
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	if err := c.checkSocket(); err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		defer clear(b)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://mysecure"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if dialNotRunning(err) {
			return fmt.Errorf("%w (no daemon on %s)", ErrNotRunning, c.socket)
		}
		return fmt.Errorf("failed to reach the daemon: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("failed to read the daemon's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var ae APIError
		if json.Unmarshal(data, &ae) == nil && ae.Message != "" {
			return ae.resolve(nil)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Status asks for the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// Denials asks for the recent denials q selects, grouped by program.
func (c *Client) Denials(ctx context.Context, q DenialQuery) (DenialsResponse, error) {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Pgid > 0 {
		v.Set("pgid", strconv.Itoa(q.Pgid))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var r DenialsResponse
	err := c.do(ctx, http.MethodGet, "/v1/denials?"+v.Encode(), nil, &r)
	return r, err
}

// Umount asks the daemon to unmount and exit.
func (c *Client) Umount(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/umount", struct{}{}, nil)
}

// ACLList returns the rules.
func (c *Client) ACLList(ctx context.Context) (ACLResponse, error) {
	var r ACLResponse
	err := c.do(ctx, http.MethodGet, "/v1/acl", nil, &r)
	return r, err
}

// ACL changes the rules.
func (c *Client) ACL(ctx context.Context, req ACLRequest) (ACLResponse, error) {
	var r ACLResponse
	err := c.admin(ctx, "/v1/acl", &req.Credential, &req, &r)
	return r, err
}

// SetMode changes the mode and returns the previous one.
func (c *Client) SetMode(ctx context.Context, req ModeRequest) (string, error) {
	var r map[string]string
	err := c.admin(ctx, "/v1/mode", &req.Credential, &req, &r)
	return r["previous"], err
}

// Categories lists the categories.
func (c *Client) Categories(ctx context.Context) (CategoryResponse, error) {
	var r CategoryResponse
	err := c.do(ctx, http.MethodGet, "/v1/categories", nil, &r)
	return r, err
}

// Category adds or removes a category.
func (c *Client) Category(ctx context.Context, req CategoryRequest) (CategoryResponse, error) {
	var r CategoryResponse
	err := c.admin(ctx, "/v1/categories", &req.Credential, &req, &r)
	return r, err
}

// BeginMove starts a move session for the calling process.
func (c *Client) BeginMove(ctx context.Context, req MoveBeginRequest) (MoveSession, error) {
	var r MoveSession
	err := c.admin(ctx, "/v1/move/begin", &req.Credential, &req, &r)
	return r, err
}

// EndMove ends the calling process's move session.
func (c *Client) EndMove(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/move/end", struct{}{}, nil)
}

// admin posts in, a request whose master credential *cred is replaced by
// its proof for the request (see proof).
func (c *Client) admin(ctx context.Context, path string, cred **Credential, in, out any) error {
	p, done, err := c.proof(ctx, *cred)
	if err != nil {
		return err
	}
	defer done()
	*cred = p
	return c.do(ctx, http.MethodPost, path, in, out)
}

// proof returns what to send for the master credential cred: a passphrase
// becomes the key of the passphrase slot it opens, derived here (Argon2id,
// a second or so) from the volume config of the daemon's store, so that
// the passphrase and salt never reach the daemon. When it opens no slot
// the proof is empty, and the daemon answers as to a wrong passphrase.
// Other credentials, and a passphrase to a daemon that does not take slot
// keys (Status.SlotKeys), go as they are. done wipes what proof made.
func (c *Client) proof(ctx context.Context, cred *Credential) (p *Credential, done func(), err error) {
	if cred == nil || cred.Type != CredentialPassphrase {
		return cred, func() {}, nil
	}
	s, err := c.Status(ctx)
	if err != nil {
		return nil, nil, err
	}
	if !s.SlotKeys {
		return cred, func() {}, nil
	}
	v, err := volume.Load(s.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the volume config to check the passphrase: %w", err)
	}
	p = &Credential{Type: CredentialSlotKey}
	sk, err := v.PassphraseSlotKey(volume.Passphrase{Passphrase: cred.Passphrase, Salt: cred.Salt})
	switch {
	case err == nil:
		p.Slot, p.SlotKey = sk.Slot, sk.Key
	case !errors.Is(err, volume.ErrIncorrectCredentials):
		return nil, nil, err
	}
	return p, p.Wipe, nil
}

// dialNotRunning reports whether a request failed because nothing
// listens on the socket (as opposed to, say, a permission error).
func dialNotRunning(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && ne.Op == "dial" &&
		(errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT))
}
