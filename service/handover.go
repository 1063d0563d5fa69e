package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mysecure/mysecure/encfs/daemon"
)

// A detached `mysecure mount` starts the daemon as a child: it hands the
// child the credential over a pipe (never argv or the environment), and
// the child reports over another pipe whether the mount came up. These
// are the two messages, JSON on the pipe.

// maxHandover bounds the credential message read from the parent.
const maxHandover = 1 << 20

// Credential is the volume credential a detached parent hands the daemon
// it starts. All fields empty: the child unlocks another way (a key
// file, kms).
type Credential struct {
	Passphrase  []byte `json:"passphrase,omitempty"`
	Salt        []byte `json:"salt,omitempty"`
	RSAPEM      []byte `json:"rsa_pem,omitempty"`
	RSAPassword []byte `json:"rsa_password,omitempty"`
}

// Wipe clears the secrets.
func (c *Credential) Wipe() {
	clear(c.Passphrase)
	clear(c.Salt)
	clear(c.RSAPEM)
	clear(c.RSAPassword)
}

// SendCredential writes c to the child's pipe, clearing its encoding.
func SendCredential(w io.Writer, c *Credential) error {
	enc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	defer clear(enc)
	_, err = w.Write(enc)
	return err
}

// ReceiveCredential reads the parent's message: the credential, as the
// daemon's master credential (passphrase, or rsa when a PEM came). The
// caller wipes it.
func ReceiveCredential(r io.Reader) (*daemon.Credential, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxHandover))
	defer clear(data)
	if err != nil {
		return nil, err
	}
	var c Credential
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("bad credential handover: %w", err)
	}
	mc := &daemon.Credential{Type: daemon.CredentialPassphrase, Passphrase: c.Passphrase, Salt: c.Salt, RSAPEM: c.RSAPEM, RSAPassword: c.RSAPassword}
	if len(c.RSAPEM) > 0 {
		mc.Type = daemon.CredentialRSA
	}
	return mc, nil
}

// Report is the child's report to the detached parent: the mount is
// ready, or the error (one line), its hint and the exit code.
type Report struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// ErrNoReport means the child exited without reporting.
var ErrNoReport = errors.New("the daemon exited before the mount was ready")

// Send writes the report.
func (r Report) Send(w io.Writer) error { return json.NewEncoder(w).Encode(r) }

// ReadyPipe is the child's end of the report pipe: the first report
// sent is the one the parent reads (the pipe closes after it), later ones
// are dropped. A nil *ReadyPipe (no parent waits) drops every report.
type ReadyPipe struct {
	mu sync.Mutex
	w  io.WriteCloser
}

// NewReadyPipe is the pipe on w.
func NewReadyPipe(w io.WriteCloser) *ReadyPipe { return &ReadyPipe{w: w} }

// Send sends r and closes the pipe, unless a report went already.
func (p *ReadyPipe) Send(r Report) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil {
		return
	}
	r.Send(p.w)
	p.w.Close()
	p.w = nil
}

// ReadReport reads the child's report until the pipe closes.
func ReadReport(r io.Reader) (Report, error) {
	data, _ := io.ReadAll(r)
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return Report{}, ErrNoReport
	}
	return rep, nil
}
