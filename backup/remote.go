package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mysecure/mysecure/internal/sshclient"
)

// Remote backups (docs/ssh.md). A server on another host is reached over
// SSH in one of two ways:
//
//   - tunnel (default): the tools run here, against a listener on
//     127.0.0.1:0 that the SSH connection forwards to the server's
//     127.0.0.1:PORT or unix socket on the remote host. The credentials
//     reach the tools through a pipe as for a local server; the
//     connection options added to argv (--host=127.0.0.1, --port) hold
//     no secret.
//   - remote dump: the dump tool runs on the remote host and its stdout
//     comes back over the SSH channel. The remote command line is fixed
//     and holds no secret: the option file travels on the session's
//     stdin, which the remote shell moves to fd 3 before giving the tool
//     /dev/null as stdin; the tool reads --defaults-extra-file=/dev/fd/3
//     to EOF at start. The password never reaches the remote command
//     line, environment or disk.
//
// Either way the stream is compressed and encrypted here, into this
// host's store, with the usual manifest and catalog.

// SSHOptions run a backup or a restore against a server on another host.
type SSHOptions struct {
	// Host is a name of the ssh: section or user@host[:port].
	Host string `json:"host"`
	// MySQLPort and MySQLSocket say where the server listens on the
	// remote host (default: the ssh host's settings, else 127.0.0.1:3306).
	MySQLPort   int    `json:"mysql_port,omitempty"`
	MySQLSocket string `json:"mysql_socket,omitempty"`
	// RemoteDump runs the dump tool on the remote host (logical only).
	RemoteDump bool `json:"remote_dump,omitempty"`
}

// SSHDialer connects to an SSH host by name; the CLI builds it from the
// ssh: section of the configuration.
type SSHDialer func(ctx context.Context, host string) (*sshclient.Client, error)

// RemoteInfo is recorded in the manifest of a backup taken over SSH.
type RemoteInfo struct {
	SSHHost string `json:"ssh_host"`
	Mode    string `json:"mode"`             // "tunnel" or "remote-dump"
	Server  string `json:"server,omitempty"` // tcp 127.0.0.1:3306 or unix PATH, as seen on that host
}

func (o *SSHOptions) validate(typ string) error {
	if o == nil {
		return nil
	}
	if strings.TrimSpace(o.Host) == "" {
		return usageErr("--ssh needs a host (user@host[:port] or a name of the ssh: section)")
	}
	if typ == Physical {
		return usageErr("physical backups read the server's files: run mysecure on that host (--ssh is for logical backups)")
	}
	if o.MySQLPort < 0 || o.MySQLPort > 65535 {
		return usageErr("MySQL port %d is out of range", o.MySQLPort)
	}
	if o.MySQLSocket != "" && !path.IsAbs(o.MySQLSocket) {
		return usageErr("remote MySQL socket %q must be an absolute path", o.MySQLSocket)
	}
	return nil
}

// remoteConn is where the tools reach the server: here (zero value), or
// over SSH.
type remoteConn struct {
	client *sshclient.Client
	fwd    *sshclient.Forward
	// args are added to the tools' arguments (tunnel).
	args []string
	info *RemoteInfo
	// remoteDump: the tools run on the remote host.
	remoteDump bool
	socket     string
	port       int
}

// connect opens the SSH connection (and the tunnel unless the dump runs
// remotely). The caller closes the result.
func (s *Service) connect(ctx context.Context, o *SSHOptions) (*remoteConn, error) {
	if o == nil {
		return &remoteConn{}, nil
	}
	if s.SSH == nil {
		return nil, usageErr("SSH is not available here")
	}
	c, err := s.SSH(ctx, o.Host)
	if err != nil {
		return nil, err
	}
	rc := &remoteConn{client: c, remoteDump: o.RemoteDump, socket: o.MySQLSocket, port: o.MySQLPort}
	t := c.Target()
	if rc.socket == "" && rc.port == 0 {
		rc.socket, rc.port = t.MySQLSocket, t.MySQLPort
	}
	rc.info = &RemoteInfo{SSHHost: t.Label(), Mode: "tunnel"}
	network, addr := "tcp", "127.0.0.1:"+strconv.Itoa(max(rc.port, 0))
	if rc.port == 0 {
		addr = "127.0.0.1:3306"
	}
	if rc.socket != "" {
		network, addr = "unix", rc.socket
	}
	rc.info.Server = network + " " + addr
	if o.RemoteDump {
		rc.info.Mode = "remote-dump"
		// The remote tools use the option file's own host/port/socket
		// unless told where the server is.
		switch {
		case o.MySQLSocket != "" || (o.MySQLPort == 0 && t.MySQLSocket != ""):
			rc.args = []string{"--socket=" + rc.socket, "--protocol=SOCKET"}
		case rc.port != 0:
			rc.args = []string{"--host=127.0.0.1", "--port=" + strconv.Itoa(rc.port), "--protocol=TCP"}
		default:
			rc.info.Server = "as in the credentials"
		}
		return rc, nil
	}
	fwd, err := c.Forward(ctx, network, addr)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w (is the MySQL server listening there? set mysql-port or mysql-socket of the ssh host)", err)
	}
	rc.fwd = fwd
	rc.args = []string{"--host=127.0.0.1", "--port=" + strconv.Itoa(fwd.Addr().Port), "--protocol=TCP"}
	s.log().Info("ssh tunnel open", "ssh_host", t.Label(), "local", fwd.Addr().String(), "remote", rc.info.Server)
	return rc, nil
}

// explain adds why the SSH connection ended to the failure of a tool
// that ran through the tunnel: the tool only saw its MySQL connection
// drop. (A remote tool's failure says it already.)
func (rc *remoteConn) explain(err error) error {
	if err == nil || rc.client == nil || rc.remoteDump {
		return err
	}
	lost := rc.client.Lost()
	if lost == nil {
		return err
	}
	return fmt.Errorf("%w: %s: %v; %w", sshclient.ErrConnect, rc.client.Target().Label(), lost, err)
}

func (rc *remoteConn) Close() {
	if rc.fwd != nil {
		rc.fwd.Close()
	}
	if rc.client != nil {
		rc.client.Close()
	}
}

// runningTool is a tool started for a backup, here or on the remote host.
type runningTool interface {
	Start() error
	Wait() error
	Lines() []string
}

// Lines are the last lines the tool wrote to stderr.
func (tc *toolCmd) Lines() []string { return tc.stderr.Lines() }

// prepareTool makes the backup tool's process and returns its stdout.
func (s *Service) prepareTool(ctx context.Context, rc *remoteConn, tool string, cnf []byte, mode credMode, args []string) (runningTool, io.Reader, error) {
	if !rc.remoteDump {
		tc, err := s.Tools.newToolCmd(ctx, tool, cnf, mode, args...)
		if err != nil {
			return nil, nil, err
		}
		stdout, err := tc.cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		return tc, stdout, nil
	}
	rt := &remoteTool{ctx: ctx, c: rc.client, name: path.Base(tool), stderr: &tail{max: 12},
		command: remoteToolCommand(tool, args), cnf: cnf}
	return rt, &rt.stdout, nil
}

// remoteToolCommand is the fixed remote command line: no secret in it.
// The login shell (POSIX) moves stdin, which carries the option file and
// then EOF, to fd 3, gives the tool /dev/null as stdin, drops variables
// that would override the credentials and points HOME where no ~/.my.cnf
// can be.
func remoteToolCommand(tool string, args []string) string {
	return "umask 077; unset MYSQL_PWD MYSQL_HOST MYSQL_TCP_PORT MYSQL_UNIX_PORT MYSQL_TEST_LOGIN_FILE MYSQL_HOME MARIADB_HOME; " +
		"HOME=/nonexistent; export HOME; exec 3<&0 </dev/null; exec " +
		sshclient.Quote(append([]string{tool, "--defaults-extra-file=/dev/fd/3"}, args...)...)
}

// remoteTool is a tool running on the remote host.
type remoteTool struct {
	ctx     context.Context
	c       *sshclient.Client
	name    string
	command string
	cnf     []byte
	stderr  *tail
	proc    *sshclient.Process
	stdout  lateReader
}

// lateReader reads from a reader that exists only once Start ran.
type lateReader struct{ r io.Reader }

func (l *lateReader) Read(p []byte) (int, error) {
	if l.r == nil {
		return 0, io.ErrClosedPipe
	}
	return l.r.Read(p)
}

func (rt *remoteTool) Start() error {
	p, err := rt.c.Start(rt.ctx, rt.command, bytes.NewReader(rt.cnf), nil, rt.stderr)
	if err != nil {
		return err
	}
	rt.proc, rt.stdout.r = p, p.Stdout
	return nil
}

func (rt *remoteTool) Lines() []string { return rt.stderr.Lines() }

func (rt *remoteTool) Wait() error {
	err := rt.proc.Wait()
	if err == nil {
		return nil
	}
	var ee *sshclient.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	status := "exit status " + strconv.Itoa(ee.Status)
	if ee.Signal != "" {
		status = "signal " + ee.Signal
	}
	te := &ToolError{Tool: rt.name + " on " + rt.c.Target().Label(), Status: status, Stderr: rt.stderr.Lines()}
	for _, l := range te.Stderr {
		if strings.Contains(l, "Access denied") || strings.Contains(l, "1045") {
			te.AccessDenied = true
		}
	}
	return te
}

// remoteProgram finds the first of names on the remote host's PATH and
// returns its path and version line.
func remoteProgram(ctx context.Context, c *sshclient.Client, names ...string) (string, string, error) {
	var script strings.Builder
	script.WriteString("for t in")
	for _, n := range names {
		script.WriteString(" " + sshclient.Quote(n))
	}
	script.WriteString(`; do p=$(command -v "$t") && { echo "$p"; "$p" --version; exit 0; }; done; exit 127`)
	var out, errb bytes.Buffer
	err := c.Run(ctx, script.String(), nil, &out, &errb)
	var ee *sshclient.ExitError
	if errors.As(err, &ee) && ee.Status == 127 {
		return "", "", fmt.Errorf("%w on %s: %s (install it there, or use the tunnel: drop --remote-dump)", ErrToolMissing, c.Target().Label(), strings.Join(names, " or "))
	}
	if err != nil {
		return "", "", err
	}
	lines := strings.SplitN(strings.TrimSpace(out.String()), "\n", 3)
	if len(lines) < 1 || !filepath.IsAbs(lines[0]) {
		return "", "", fmt.Errorf("unexpected answer from %s looking for %s: %q", c.Target().Label(), names[0], out.String())
	}
	version := ""
	if len(lines) > 1 {
		version = lines[1]
	}
	return lines[0], version, nil
}

// findDump returns the dump tool and its version, here or remotely.
func (s *Service) findDump(ctx context.Context, rc *remoteConn) (string, string, error) {
	if rc.remoteDump {
		return remoteProgram(ctx, rc.client, "mariadb-dump", "mysqldump")
	}
	tool, err := s.Tools.dump()
	if err != nil {
		return "", "", err
	}
	return tool, toolVersion(ctx, tool), nil
}

// query runs one statement where the backup's tools run.
func (s *Service) query(ctx context.Context, rc *remoteConn, cnf []byte, sql string) ([][]string, error) {
	if !rc.remoteDump {
		return s.Tools.query(ctx, cnf, rc.args, sql)
	}
	client, _, err := remoteProgram(ctx, rc.client, "mariadb", "mysql")
	if err != nil {
		return nil, err
	}
	args := append(append([]string(nil), rc.args...), "--batch", "--skip-column-names", "--raw", "-e", sql)
	rt := &remoteTool{ctx: ctx, c: rc.client, name: path.Base(client), stderr: &tail{max: 12},
		command: remoteToolCommand(client, args), cnf: cnf}
	if err := rt.Start(); err != nil {
		return nil, err
	}
	b, rerr := io.ReadAll(&rt.stdout)
	if err := rt.Wait(); err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, rerr
	}
	return splitRows(string(b)), nil
}

func splitRows(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows
}
