// Package sandbox starts private MariaDB (or MySQL) servers in a
// directory of their own, for tests and the demo: own datadir, socket,
// port, pid file and error log, running as the mysql user. Nothing is read
// from the system's option files.
//
// It is plumbing for tests and the demo only: it must not be used to run
// a production server.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options describe a sandbox server.
type Options struct {
	// Dir holds the socket, pid file and logs; it is made if missing.
	Dir string
	// DataDir is the datadir (default Dir/data). It may be a path on the
	// encrypted mount.
	DataDir string
	// Binary is the server program (default: mariadbd, else mysqld, on
	// PATH or in /usr/sbin).
	Binary string
	// Socket is the server's unix socket (default Dir/mysqld.sock); it
	// may be in the datadir, as on Red Hat style layouts.
	Socket string
	// User runs the server (default "mysql").
	User string
	// Args are extra server options (e.g. "--innodb-flush-log-at-trx-commit=1").
	Args []string
	// Defaults replace the leading "--no-defaults" (e.g.
	// "--defaults-file=F"); they must come first on the command line.
	Defaults []string
	// Stderr is the server's standard error (default /dev/null), as a
	// service manager or mysqld_safe --syslog would give it.
	Stderr io.Writer
}

// Server is a running sandbox server.
type Server struct {
	opts   Options
	Socket string
	Port   int
	cmd    *exec.Cmd
	exited chan error
}

func (o *Options) fill() error {
	if o.Dir == "" {
		return errors.New("sandbox: Dir is required")
	}
	if o.DataDir == "" {
		o.DataDir = filepath.Join(o.Dir, "data")
	}
	if o.User == "" {
		o.User = "mysql"
	}
	if o.Binary == "" {
		for _, name := range []string{"mariadbd", "mysqld"} {
			if p, err := exec.LookPath(name); err == nil {
				o.Binary = p
				break
			}
			if p := "/usr/sbin/" + name; fileExists(p) {
				o.Binary = p
				break
			}
		}
		if o.Binary == "" {
			return errors.New("sandbox: no mariadbd or mysqld found")
		}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// chownUser gives path to the server's user.
func chownUser(path, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("sandbox: no user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

// Init creates a fresh datadir with mariadb-install-db (root may log in
// over the socket as the OS user root).
func Init(ctx context.Context, o Options) error {
	if err := o.fill(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return err
	}
	if err := chownUser(o.DataDir, o.User); err != nil {
		return err
	}
	// A private tmpdir: the bootstrap's temporary tables must not meet
	// another server's (or a /tmp cleaner).
	tmp := filepath.Join(o.Dir, "tmp")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return err
	}
	if err := chownUser(tmp, o.User); err != nil {
		return err
	}
	install := "mariadb-install-db"
	if _, err := exec.LookPath(install); err != nil {
		install = "mysql_install_db"
	}
	cmd := exec.CommandContext(ctx, install, "--no-defaults",
		"--datadir="+o.DataDir, "--user="+o.User, "--basedir=/usr",
		"--auth-root-authentication-method=socket", "--skip-test-db", "--tmpdir="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sandbox: %s failed: %v\n%s", install, err, out)
	}
	return nil
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start runs the server and waits until it accepts connections on its
// socket.
func Start(ctx context.Context, o Options) (*Server, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	// The server (running as User) writes its socket, pid file and log here.
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := chownUser(o.Dir, o.User); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	sock := o.Socket
	if sock == "" {
		sock = filepath.Join(o.Dir, "mysqld.sock")
	}
	s := &Server{opts: o, Socket: sock, Port: port, exited: make(chan error, 1)}
	tmp := filepath.Join(o.Dir, "tmp")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return nil, err
	}
	if err := chownUser(tmp, o.User); err != nil {
		return nil, err
	}
	lead := []string{"--no-defaults"}
	if o.Defaults != nil {
		lead = o.Defaults
	}
	args := append(append([]string(nil), lead...),
		"--datadir="+o.DataDir,
		"--socket="+s.Socket,
		"--port="+strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--pid-file="+filepath.Join(o.Dir, "mysqld.pid"),
		"--log-error="+filepath.Join(o.Dir, "error.log"),
		"--user="+o.User,
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=48M",
		"--skip-name-resolve",
		"--tmpdir="+tmp,
	)
	args = append(args, o.Args...)
	s.cmd = exec.Command(o.Binary, args...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.Stderr = o.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("sandbox: failed to start %s: %w", o.Binary, err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("unix", s.Socket); err == nil {
			c.Close()
			return s, nil
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			return nil, fmt.Errorf("sandbox: server exited during start (%v); error log:\n%s", err, s.ErrorLog())
		case <-ctx.Done():
			s.Kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return nil, fmt.Errorf("sandbox: server not ready after 60 s; error log:\n%s", s.ErrorLog())
		}
	}
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// ErrorLog returns the tail of the server's error log.
func (s *Server) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(s.opts.Dir, "error.log"))
	lines := strings.Split(string(b), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// Stop shuts the server down cleanly (SIGTERM) and waits up to a minute.
func (s *Server) Stop() error {
	if s.cmd.ProcessState != nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err
		return nil
	case <-time.After(60 * time.Second):
		s.Kill()
		return errors.New("sandbox: server did not stop within 60 s; killed")
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits.
func (s *Server) Kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	err := <-s.exited
	s.exited <- err
}

// Exited reports whether the server process has ended.
func (s *Server) Exited() bool {
	select {
	case err := <-s.exited:
		s.exited <- err
		return true
	default:
		return false
	}
}

// Client runs the mariadb (or mysql) client as root over the socket with
// the SQL on stdin and returns its output (tab-separated, no headers).
func (s *Server) Client(ctx context.Context, sql string) (string, error) {
	client := "mariadb"
	if _, err := exec.LookPath(client); err != nil {
		client = "mysql"
	}
	cmd := exec.CommandContext(ctx, client, "--no-defaults", "--socket="+s.Socket, "-uroot", "--batch", "--skip-column-names")
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("sandbox: %s: %v: %s", client, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
