package ndb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrMgmUnreachable: the management client could not reach the
// management server (ndb_mgm exits 255 with error 2002).
var ErrMgmUnreachable = errors.New("the management server is not reachable")

// ErrMgmRefused: the management server refused to stop a node, as it
// does when the node's group would have no node left ("Node shutdown
// would cause system crash"). The node must not be stopped another way.
var ErrMgmRefused = errors.New("the management server refused to stop the node")

// ErrMgmMissing: no ndb_mgm program.
var ErrMgmMissing = errors.New("ndb_mgm not found")

// Mgm runs the management client, ndb_mgm -e "COMMAND".
type Mgm struct {
	Program       string // "" looks up ndb_mgm in PATH
	ConnectString string // "" lets ndb_mgm use its own (my.cnf, localhost:1186)
}

// program returns the client's path, or ErrMgmMissing.
func (m Mgm) program() (string, error) {
	if m.Program != "" {
		if _, err := exec.LookPath(m.Program); err != nil {
			return "", fmt.Errorf("%w: %v", ErrMgmMissing, err)
		}
		return m.Program, nil
	}
	p, err := exec.LookPath("ndb_mgm")
	if err != nil {
		return "", fmt.Errorf("%w in PATH", ErrMgmMissing)
	}
	return p, nil
}

// Available reports ErrMgmMissing when there is no client to run: a
// node's restart could not be confirmed.
func (m Mgm) Available() error {
	_, err := m.program()
	return err
}

func (m Mgm) run(ctx context.Context, command string) (string, error) {
	prog, err := m.program()
	if err != nil {
		return "", err
	}
	args := []string{}
	if m.ConnectString != "" {
		args = append(args, "--ndb-connectstring="+m.ConnectString)
	}
	args = append(args, "-e", command)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	c := exec.CommandContext(ctx, prog, args...)
	c.Stdout, c.Stderr = &out, &out
	err = c.Run()
	s := out.String()
	var ee *exec.ExitError
	switch {
	// Error 2002 is both "Connect failed" and "Stop failed": the text
	// decides, never the code alone. A refused stop falling back to
	// SIGTERM would do what the management server refused to do.
	case refusedStop(s):
		return s, fmt.Errorf("%w: ndb_mgm -e %q: %s", ErrMgmRefused, command, refusalLine(s))
	case errors.As(err, &ee) && (ee.ExitCode() == 255 || strings.Contains(s, "Connect failed") || strings.Contains(s, "Unable to connect")):
		return s, fmt.Errorf("%w: ndb_mgm -e %q: %s", ErrMgmUnreachable, command, lastLine(s))
	case errors.Is(err, exec.ErrNotFound):
		return s, fmt.Errorf("%w: %v", ErrMgmMissing, err)
	case err != nil:
		return s, fmt.Errorf("ndb_mgm -e %q: %w: %s", command, err, lastLine(s))
	}
	return s, nil
}

var statusRE = regexp.MustCompile(`(?m)^\s*Node (\d+): ([a-z][a-z ]*[a-z])`)

// Status returns what `ndb_mgm -e "ID STATUS"` says of node id: "started",
// "starting", "not connected", "shutting down" ...
func (m Mgm) Status(ctx context.Context, id int) (string, error) {
	out, err := m.run(ctx, fmt.Sprintf("%d STATUS", id))
	if err != nil {
		return "", err
	}
	return parseStatus(out, id)
}

// parseStatus finds node id's state in the output of "ID STATUS".
func parseStatus(out string, id int) (string, error) {
	for _, sm := range statusRE.FindAllStringSubmatch(out, -1) {
		if sm[1] == strconv.Itoa(id) {
			return sm[2], nil
		}
	}
	return "", fmt.Errorf("ndb_mgm -e \"%d STATUS\": no status of node %d in %q", id, id, lastLine(out))
}

// Stop asks the management server to stop node id and waits for it to
// say "Node ID has shutdown."
func (m Mgm) Stop(ctx context.Context, id int) error {
	out, err := m.run(ctx, fmt.Sprintf("%d STOP", id))
	if err != nil {
		return err
	}
	if !strings.Contains(out, fmt.Sprintf("Node %d has shutdown", id)) {
		return fmt.Errorf("ndb_mgm -e \"%d STOP\": %s", id, lastLine(out))
	}
	return nil
}

// refusedStop tells a stop the management server refused (the real
// client prints "Shutdown of node N failed." then "*  2002: Stop failed"
// and the reason, such as "Node shutdown would cause system crash").
func refusedStop(out string) bool {
	if strings.Contains(out, "would cause system crash") {
		return true
	}
	// A node the server does not see ("Node N is not connected") may be
	// stopped by a signal: it is not part of the cluster.
	return (strings.Contains(out, "Stop failed") || strings.Contains(out, "Shutdown of node") && strings.Contains(out, "failed")) &&
		!strings.Contains(out, "not connected")
}

// refusalLine is the reason the client gave, else its last line.
func refusalLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "would cause system crash") {
			return strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "*"))
		}
	}
	return lastLine(out)
}
