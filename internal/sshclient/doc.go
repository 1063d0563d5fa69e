// Package sshclient is mysecure's SSH client, on golang.org/x/crypto/ssh:
// host keys checked against known_hosts (strict by default), public key
// authentication from key files (encrypted ones ask for their passphrase
// through a callback) and ssh-agent, an optional jump host, keepalives and
// one reconnect. On a connection it forwards local TCP listeners to a
// remote TCP address or unix socket (the MySQL tunnel of remote backups)
// and runs remote commands (remote dumps, `mysecure remote`, multi-host
// operations such as NDB onboarding). A Fleet works on several hosts at
// a time: results in the hosts' order, the worst failure deciding how
// the run ends (Failure), each host's output lines prefixed (Outputs).
//
// It never prints and never prompts: passphrases come from the caller's
// callback, events go to the *slog.Logger it is given. Secrets sent to a
// remote command travel on its stdin, never in the command line or the
// remote environment. It must not import cobra, viper or any mysecure
// module.
package sshclient
