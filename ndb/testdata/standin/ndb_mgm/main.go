// Command ndb_mgm is a STAND-IN for the MySQL Cluster management client,
// for tests only (MySQL Cluster is not packaged here). It answers
// `ndb_mgm -e "ID STATUS"` and `ndb_mgm -e "ID STOP"` with the lines the
// real one prints:
//
//	Node 2: started (mysql-8.0.35 ndb-8.0.35)
//	Node 2: not connected
//	Node 2 has shutdown.
//
// from the files the stand-in ndbd keeps in $NDB_STANDIN_STATE. While the
// file mgmd-down exists there, it refuses as the real client does when no
// management server answers: error 2002, exit code 255. While a file
// refuse-stop-<ID> exists there, "ID STOP" is refused as the real server
// refuses to stop the last node of a node group: "Node shutdown would
// cause system crash" under error 2002 (Stop failed), exit code 255 (the
// same code as an unreachable server: only the text tells them apart).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var state = os.Getenv("NDB_STANDIN_STATE")

func main() {
	cmd := ""
	for i, a := range os.Args[1:] {
		if (a == "-e" || a == "--execute") && i+2 < len(os.Args) {
			cmd = os.Args[i+2]
		} else if v, ok := strings.CutPrefix(a, "--execute="); ok {
			cmd = v
		}
	}
	if _, err := os.Stat(filepath.Join(state, "mgmd-down")); state == "" || err == nil {
		fmt.Fprintln(os.Stderr, "Unable to connect with connect string: nodeid=0,localhost:1186")
		fmt.Fprintln(os.Stderr, "Retrying every 5 seconds. Attempts left: 2 1, failed.")
		fmt.Fprintln(os.Stderr, "*  2002: Connect failed")
		fmt.Fprintln(os.Stderr, "*        Unable to connect with connect string: nodeid=0,localhost:1186")
		os.Exit(255)
	}
	f := strings.Fields(cmd)
	if len(f) != 2 {
		fmt.Println("Connected to Management Server at: localhost:1186")
		fmt.Printf("Invalid command: %s\n", cmd)
		os.Exit(1)
	}
	id, err := strconv.Atoi(f[0])
	if err != nil {
		fmt.Printf("Invalid command: %s\n", cmd)
		os.Exit(1)
	}
	fmt.Println("Connected to Management Server at: localhost:1186")
	switch strings.ToUpper(f[1]) {
	case "STATUS":
		s, _ := status(id)
		switch s {
		case "started":
			fmt.Printf("Node %d: started (mysql-8.0.35 ndb-8.0.35)\n", id)
		case "starting":
			fmt.Printf("Node %d: starting (Last completed phase 4) (mysql-8.0.35 ndb-8.0.35)\n", id)
		default:
			fmt.Printf("Node %d: not connected\n", id)
		}
	case "STOP":
		s, pid := status(id)
		if s != "started" && s != "starting" {
			fmt.Printf("Shutdown of node %d failed.\n*  2002: Stop failed\n*        Node %d is not connected\n", id, id)
			os.Exit(1)
		}
		if _, err := os.Stat(filepath.Join(state, fmt.Sprintf("refuse-stop-%d", id))); err == nil {
			fmt.Printf("Shutdown of node %d failed.\n*  2002: Stop failed\n*        Node shutdown would cause system crash: Permanent error: Application error\n", id)
			os.Exit(255)
		}
		os.WriteFile(filepath.Join(state, fmt.Sprintf("stop-%d", id)), nil, 0o644)
		for i := 0; i < 600 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		fmt.Printf("Node %d has shutdown.\n", id)
	default:
		fmt.Printf("Invalid command: %s\n", cmd)
		os.Exit(1)
	}
}

// status reads node-ID.status: "started PID", "starting PID", ... A pid
// that is gone is a node not connected.
func status(id int) (string, int) {
	b, err := os.ReadFile(filepath.Join(state, fmt.Sprintf("node-%d.status", id)))
	if err != nil {
		return "", 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return "", 0
	}
	pid, _ := strconv.Atoi(f[1])
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return "", 0
	}
	return f[0], pid
}
