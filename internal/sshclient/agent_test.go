package sshclient

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh/agent"
)

// serveAgent serves keyring on a unix socket (the agent protocol of
// x/crypto; integration/ssh_test.go uses OpenSSH's ssh-agent).
func serveAgent(t *testing.T, keyring agent.Agent) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	return sock
}

func TestLoadSignersAgent(t *testing.T) {
	target := &Target{HostConfig: HostConfig{Name: "db1", Host: "h", Identity: []string{filepath.Join(t.TempDir(), "none")}}}
	// An explicit identity file that is missing is a configuration error.
	if _, err := loadSigners(target, Auth{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("missing identity file: %v", err)
	}
	// No identity: the agent's keys and the user's default key files
	// (none on a test machine; where there are, they are offered too and
	// the messages below are not checked).
	target.Identity = nil

	keyring := agent.NewKeyring()
	sock := serveAgent(t, keyring)
	_, err := loadSigners(target, Auth{AgentSocket: sock})
	if len(DefaultIdentities()) == 0 && (!errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "ssh-agent (it holds no keys")) {
		t.Fatalf("empty agent: %v", err)
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	keys, err := loadSigners(target, Auth{AgentSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.close()
	if len(keys.signers) < 1 || keys.offered[0] != "1 from ssh-agent" || keys.agent == nil {
		t.Fatalf("agent with one key: %d signers, offered %v", len(keys.signers), keys.offered)
	}

	_, err = loadSigners(target, Auth{AgentSocket: sock + ".gone"})
	if len(DefaultIdentities()) == 0 && (err == nil || !strings.Contains(err.Error(), "cannot connect to SSH_AUTH_SOCK "+sock+".gone")) {
		t.Fatalf("dead agent socket: %v", err)
	}
}
