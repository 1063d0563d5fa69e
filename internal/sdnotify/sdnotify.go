// Package sdnotify sends service manager notifications (sd_notify(3)):
// one datagram, such as "READY=1", to the socket systemd names in
// $NOTIFY_SOCKET for a Type=notify service.
//
// It does not read the environment: the caller takes the socket name from
// NOTIFY_SOCKET once, and unsets it so that the programs it starts do not
// notify in its name.
package sdnotify

import (
	"fmt"
	"net"
	"strings"
)

// Ready and Stopping are the states the daemon reports.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Send sends state (newline-separated VAR=value assignments) to socket, a
// path or an abstract socket name starting with '@'. An empty socket (not
// run under a service manager) sends nothing.
func Send(socket, state string) error {
	if socket == "" {
		return nil
	}
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		return fmt.Errorf("notify socket %q: not an absolute path or an abstract name", socket)
	}
	// A leading '@' is the abstract namespace: the net package turns it
	// into the leading NUL byte the kernel expects.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("failed to reach the notify socket %s: %w", socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("failed to notify %s: %w", socket, err)
	}
	return nil
}
