package sshclient

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrHostKey marks a host key that known_hosts does not vouch for.
var ErrHostKey = errors.New("host key not trusted")

// HostKeyError is a host whose key is unknown (Changed false) or differs
// from the one known_hosts holds (Changed true). Line is the known_hosts
// line that would trust the offered key.
type HostKeyError struct {
	Host        string   // host:port as dialled
	Fingerprint string   // SHA256:... of the offered key
	KeyType     string   // ssh-ed25519, ...
	Line        string   // the known_hosts line for the offered key
	Files       []string // the known_hosts files read
	Changed     bool
	Known       []string // for Changed: "file:line" of the keys on record
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("%v: the host key of %s CHANGED: it offered %s %s, known_hosts has another key (%s); this may be an attack",
			ErrHostKey, e.Host, e.KeyType, e.Fingerprint, strings.Join(e.Known, ", "))
	}
	return fmt.Sprintf("%v: %s is not in known_hosts (%s); it offered %s %s; if that is the host's key, add this line: %s",
		ErrHostKey, e.Host, strings.Join(e.Files, ", "), e.KeyType, e.Fingerprint, e.Line)
}

func (e *HostKeyError) Unwrap() error { return ErrHostKey }

// hostKeyChecker verifies host keys against known_hosts files; with
// acceptNew an unknown host's key is appended to the first file.
type hostKeyChecker struct {
	files     []string
	acceptNew bool
	mu        sync.Mutex
}

func newHostKeyChecker(files []string, acceptNew bool) *hostKeyChecker {
	if len(files) == 0 {
		files = DefaultKnownHosts()
	}
	return &hostKeyChecker{files: files, acceptNew: acceptNew}
}

// callback is read fresh for each connection: a line added since (by
// accept-new or by hand) counts.
func (h *hostKeyChecker) callback() (ssh.HostKeyCallback, error) {
	var existing []string
	for _, f := range h.files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	if len(existing) == 0 {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return nil, fmt.Errorf("failed to read known_hosts: %w", err)
	}
	return cb, nil
}

// Check is an ssh.HostKeyCallback.
func (h *hostKeyChecker) Check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	cb, err := h.callback()
	if err != nil {
		return err
	}
	err = cb(hostname, remote, key)
	var ke *knownhosts.KeyError
	if err == nil || !errors.As(err, &ke) {
		return err
	}
	he := &HostKeyError{
		Host: hostname, Fingerprint: ssh.FingerprintSHA256(key), KeyType: key.Type(),
		Line: knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key), Files: h.files,
		Changed: len(ke.Want) > 0,
	}
	for _, w := range ke.Want {
		he.Known = append(he.Known, fmt.Sprintf("%s:%d", w.Filename, w.Line))
	}
	if he.Changed || !h.acceptNew {
		return he
	}
	if err := h.add(he.Line); err != nil {
		return fmt.Errorf("%w (and adding it failed: %v)", he, err)
	}
	return nil
}

func (h *hostKeyChecker) add(line string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.files[0]
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return err
	}
	fd, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := fd.WriteString(line + "\n"); err != nil {
		fd.Close()
		return err
	}
	return fd.Close()
}
