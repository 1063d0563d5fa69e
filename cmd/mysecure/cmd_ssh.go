package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"

	"github.com/mysecure/mysecure/backup"
	"github.com/mysecure/mysecure/internal/sshclient"
)

// sshFlags are the --ssh options of backup and restore (docs/ssh.md).
type sshFlags struct {
	Host           string
	MySQLPort      int
	MySQLSocket    string
	RemoteDump     bool
	PassphraseFile string
}

func (s *sshFlags) AddFlags(f *pflag.FlagSet, backupCmd bool) {
	f.StringVar(&s.Host, "ssh", "", "reach the server over SSH: `HOST` is user@host[:port] or a name of the ssh: section")
	f.IntVar(&s.MySQLPort, "ssh-mysql-port", 0, "with --ssh: the server's `PORT` on the remote host's 127.0.0.1 (default 3306)")
	f.StringVar(&s.MySQLSocket, "ssh-mysql-socket", "", "with --ssh: the server's unix socket `PATH` on the remote host")
	f.StringVar(&s.PassphraseFile, "ssh-key-passphrase-file", "", "with --ssh and --local: read the passphrase of encrypted SSH keys from `FILE`")
	if backupCmd {
		f.BoolVar(&s.RemoteDump, "remote-dump", false, "with --ssh: run the dump tool on the remote host and stream its output back")
	}
}

// options returns the backup module's SSH options (nil without --ssh).
func (s *sshFlags) options() (*backup.SSHOptions, error) {
	if s.Host == "" {
		if s.MySQLPort != 0 || s.MySQLSocket != "" || s.RemoteDump || s.PassphraseFile != "" {
			return nil, usagef("--ssh-mysql-port, --ssh-mysql-socket, --remote-dump and --ssh-key-passphrase-file need --ssh HOST")
		}
		return nil, nil
	}
	if s.MySQLPort != 0 && s.MySQLSocket != "" {
		return nil, usagef("give --ssh-mysql-port or --ssh-mysql-socket, not both")
	}
	return &backup.SSHOptions{Host: s.Host, MySQLPort: s.MySQLPort, MySQLSocket: s.MySQLSocket, RemoteDump: s.RemoteDump}, nil
}

// sshDialer connects to the configured hosts. interactive (a CLI run in
// this process) adds the ssh-agent of SSH_AUTH_SOCK and a passphrase
// prompt on the terminal; the daemon and cron use key files that need no
// passphrase or whose passphrase-file is configured.
func sshDialer(g *globalOptions, interactive bool, passFile string, log *slog.Logger) backup.SSHDialer {
	return func(ctx context.Context, host string) (*sshclient.Client, error) {
		t, err := g.sshSettings().Resolve(host)
		if err != nil {
			return nil, err
		}
		return sshclient.Dial(ctx, t, sshclient.Options{Auth: sshAuth(t, interactive, passFile), Log: log})
	}
}

// sshSettings is the ssh: section in force: the one the daemon's last
// schedule reload read, else the one read at start.
func (g *globalOptions) sshSettings() *sshclient.Settings {
	if s := g.sshReloaded.Load(); s != nil {
		return s
	}
	return &g.cfg.SSH
}

func sshAuth(t *sshclient.Target, interactive bool, passFile string) sshclient.Auth {
	a := sshclient.Auth{Passphrase: func(keyFile string) ([]byte, error) {
		for _, f := range []string{passFile, t.PassphraseFile} {
			if f != "" {
				return readSecretFile(f, "SSH key passphrase")
			}
		}
		if interactive {
			if tt := openTTY(); tt != nil {
				defer tt.Close()
				return tt.readSecret(fmt.Sprintf("Passphrase for SSH key %s: ", keyFile))
			}
		}
		return nil, fmt.Errorf("%w: the key is encrypted and there is no terminal to ask on", sshclient.ErrAuth)
	}}
	if interactive {
		a.AgentSocket = os.Getenv("SSH_AUTH_SOCK")
	}
	return a
}

const (
	hintHostKey = "check the fingerprint with the host's administrator (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub there), then add the line shown to known_hosts"
	hintSSH     = "check the host, port, user and key ('ssh -v USER@HOST' shows the same); docs/ssh.md"
)

// classifySSH maps SSH failures, here or reported by the daemon (whose
// errors unwrap to sshclient's sentinels: backup.WireError).
func classifySSH(err error) (int, string, bool) {
	var ee *sshclient.ExitError
	switch {
	case errors.Is(err, sshclient.ErrHostKey):
		return exitSSH, hintHostKey, true
	case errors.Is(err, sshclient.ErrConfig):
		return exitUsage, "docs/ssh.md describes the ssh: section and --ssh", true
	case errors.Is(err, sshclient.ErrAuth), errors.Is(err, sshclient.ErrConnect):
		return exitSSH, hintSSH, true
	case errors.As(err, &ee):
		return exitRemote, "the remote command's output is above", true
	}
	var fe *sshclient.ForwardError
	if errors.As(err, &fe) {
		return exitSSH, "is the MySQL server listening there? set mysql-port or mysql-socket of the ssh host, or --ssh-mysql-port/--ssh-mysql-socket", true
	}
	return 0, "", false
}
