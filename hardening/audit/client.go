package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrNoClient: neither the mariadb nor the mysql client is installed.
var ErrNoClient = errors.New("no mariadb or mysql client found")

// Client says how to reach the server with its command-line client.
// Credentials come from DefaultsFile, never from argv.
type Client struct {
	Program      string // "" finds mariadb, else mysql, on PATH
	DefaultsFile string
	Socket       string
	User         string
}

// Query returns a Query that runs SQL with the client in batch mode (raw
// values, no column names).
func (c Client) Query() (Query, error) {
	prog := c.Program
	if prog == "" {
		for _, name := range []string{"mariadb", "mysql"} {
			if p, err := exec.LookPath(name); err == nil {
				prog = p
				break
			}
		}
	}
	if prog == "" {
		return nil, ErrNoClient
	}
	var base []string
	if c.DefaultsFile != "" {
		base = append(base, "--defaults-file="+c.DefaultsFile)
	}
	if c.Socket != "" {
		base = append(base, "--socket="+c.Socket)
	}
	if c.User != "" {
		base = append(base, "--user="+c.User)
	}
	base = append(base, "--batch", "--skip-column-names", "--raw")
	return func(ctx context.Context, sql string) ([][]string, error) {
		cmd := exec.CommandContext(ctx, prog, base...)
		cmd.Stdin = strings.NewReader(sql)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", prog, err, clientError(errb.String()))
		}
		return batchRows(out.String()), nil
	}, nil
}

// clientError is the client's error message without the statement it
// echoes before it in batch mode ("--------------\nSELECT ...\n
// --------------\n\nERROR 1142 ..."): the ERROR line, or all of stderr
// when there is none.
func clientError(stderr string) string {
	s := strings.TrimSpace(stderr)
	if i := strings.LastIndex(s, "ERROR "); i >= 0 {
		s, _, _ = strings.Cut(s[i:], "\n")
	}
	return s
}

// batchRows splits the client's --batch --raw output into rows of
// tab-separated columns. Every row ends in a newline, and a row of one
// empty column is an empty line (SELECT @@log_error on Debian's default):
// it is a row, not nothing.
func batchRows(out string) [][]string {
	if out == "" {
		return nil
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		rows = append(rows, strings.Split(l, "\t"))
	}
	return rows
}

// ErrConnect: the client could not log in to the server.
var ErrConnect = errors.New("cannot connect to the server")

// Connect is Query after a first statement went through: it fails early,
// with ErrConnect and the client's message, when the client cannot log
// in.
func (c Client) Connect(ctx context.Context) (Query, error) {
	q, err := c.Query()
	if err != nil {
		return nil, err
	}
	if _, err := q(ctx, "SELECT 1"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnect, err)
	}
	return q, nil
}
