package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mysecure/mysecure/internal/procfs"
)

// LocalServer is a MySQL/MariaDB server process on this host.
type LocalServer struct {
	Pid    int
	Exe    string // /proc/PID/exe
	Socket string // from its command line, or the Debian default
}

// serverNames are the server programs' base names.
var serverNames = map[string]bool{"mariadbd": true, "mysqld": true}

// LocalServers lists the running server processes (by the base name of
// their executable), with the socket their command line names.
func LocalServers() []LocalServer {
	pids, _ := procfs.Pids()
	var out []LocalServer
	for _, pid := range pids {
		exe, err := procfs.Exe(pid)
		if err != nil {
			continue
		}
		exe = procfs.TrimDeleted(exe)
		if !serverNames[filepath.Base(exe)] {
			continue
		}
		s := LocalServer{Pid: pid, Exe: exe, Socket: "/run/mysqld/mysqld.sock"}
		if args, err := procfs.Cmdline(pid); err == nil {
			for _, a := range args {
				if v, ok := strings.CutPrefix(a, "--socket="); ok {
					s.Socket = v
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// FilePrivRisk says what a FILE holder can read through a server that the
// mount's rules let open encrypted files, judged by its secure_file_priv:
// "" when file import and export are limited to a directory outside the
// mount (or disabled). LOAD_FILE runs inside the allowed server, so the
// rules cannot tell it from the server's own reads.
func FilePrivRisk(ctx context.Context, q Query, mount string) (string, error) {
	rows, err := q(ctx, "SELECT @@secure_file_priv IS NULL, IFNULL(@@secure_file_priv, ''), VERSION()")
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 3 {
		return "", fmt.Errorf("query secure_file_priv: got %d rows", len(rows))
	}
	isNull, v, version := rows[0][0] == "1", rows[0][1], rows[0][2]
	maria := strings.Contains(strings.ToLower(version), "mariadb")
	mount = filepath.Clean(mount)
	switch {
	case isNull && !maria:
		return "", nil // MySQL: import and export disabled
	case isNull || v == "":
		return "secure_file_priv is unset: an account with the FILE privilege can LOAD_FILE any file this server may open, the encrypted ones behind the mount included", nil
	case filepath.Clean(v) == mount || strings.HasPrefix(filepath.Clean(v), mount+"/"):
		return fmt.Sprintf("secure_file_priv = %s is inside the mount: an account with the FILE privilege can LOAD_FILE encrypted files there through this server", v), nil
	}
	// A directory outside the mount may still be a symlink into it.
	if real, err := filepath.EvalSymlinks(v); err == nil && (real == mount || strings.HasPrefix(real, mount+"/")) {
		return fmt.Sprintf("secure_file_priv = %s leads into the mount (%s): an account with the FILE privilege can LOAD_FILE encrypted files there through this server", v, real), nil
	}
	return "", nil
}
