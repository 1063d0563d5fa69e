package ndb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiscoverFiles: my.cnf names the connect string and config.ini;
// config.ini gives the directories with the cluster's defaults; a
// stand-in ndb_config (a shell script printing what the real one prints
// for --query=nodeid,type,host,datadir --fields=TAB) fills a node that
// config.ini lacks. No process runs.
func TestDiscoverFiles(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "config.ini")
	os.WriteFile(ini, []byte(`[ndbd default]
DataDir=/data/ndb
BackupDataDir=/data/ndb/backup   # inside DataDir: moves with it
[ndbd]
NodeId=3
HostName=localhost
FileSystemPathDD=/dd/ndb3
[ndbd]
NodeId=4
HostName=far.example
[ndb_mgmd]
NodeId=1
HostName=localhost
DataDir=/data/ndb/mgm
`), 0o644)
	cnf := filepath.Join(dir, "my.cnf")
	os.WriteFile(cnf, []byte("[mysql_cluster]\nndb-connectstring=mgm.example:1186\n[ndb_mgmd]\nconfig-file="+ini+"\n"), 0o644)
	ndbConfig := filepath.Join(dir, "ndb_config")
	os.WriteFile(ndbConfig, []byte("#!/bin/sh\nprintf '3\\tndbd\\tlocalhost\\t/data/ndb\\n5\\tndbd\\tlocalhost\\t/data/ndb5\\n50\\tmysqld\\t\\t\\n'\n"), 0o755)

	_, err := Discover(context.Background(), Options{MyCnf: []string{filepath.Join(dir, "missing.cnf"), cnf}, NdbConfig: ndbConfig,
		ProcRoot: filepath.Join(dir, "noproc-but-empty"), LocalNames: []string{"", "localhost"}})
	if err == nil || !strings.Contains(err.Error(), "failed to list processes") {
		t.Fatalf("a missing proc root: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "proc"), 0o755)
	st, err := Discover(context.Background(), Options{MyCnf: []string{filepath.Join(dir, "missing.cnf"), cnf}, NdbConfig: ndbConfig,
		ProcRoot: filepath.Join(dir, "proc"), LocalNames: []string{"", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.ConnectString != "mgm.example:1186" || st.ConfigIni != ini {
		t.Fatalf("from my.cnf: %q %q", st.ConnectString, st.ConfigIni)
	}
	var ids []int
	for _, n := range st.Nodes {
		ids = append(ids, n.ID)
	}
	if len(ids) != 4 || ids[0] != 1 || ids[1] != 3 || ids[2] != 4 || ids[3] != 5 {
		t.Fatalf("nodes %v, want 1 3 4 5 (not the API node)", ids)
	}
	n3 := st.Node(3)
	var roles []string
	for _, d := range n3.Dirs {
		roles = append(roles, d.Role+"="+d.Path+"<"+d.Covered)
	}
	want := "DataDir=/data/ndb< FileSystemPath=/data/ndb</data/ndb BackupDataDir=/data/ndb/backup</data/ndb FileSystemPathDD=/dd/ndb3< FileSystemPathDataFiles=/dd/ndb3</dd/ndb3 FileSystemPathUndoFiles=/dd/ndb3</dd/ndb3"
	if got := strings.Join(roles, " "); got != want {
		t.Fatalf("node 3 dirs:\n%s\nwant\n%s", got, want)
	}
	if r := n3.Roots(); len(r) != 2 || !n3.Local || n3.Running {
		t.Fatalf("node 3: roots %+v local %v running %v", r, n3.Local, n3.Running)
	}
	if n4 := st.Node(4); n4.Local {
		t.Fatal("node 4 on far.example counted as local")
	}
	if n5 := st.Node(5); n5.DataDir != "/data/ndb5" || !strings.Contains(strings.Join(n5.Sources, ","), "ndb_config") {
		t.Fatalf("node 5 from ndb_config: %+v", n5)
	}
	if m := st.Node(1); m.Kind != KindMgm || m.DataDir != "/data/ndb/mgm" {
		t.Fatalf("mgm: %+v", m)
	}

	// Selection.
	if _, err := selected(st, Selection{Node: 4}); err == nil || !strings.Contains(err.Error(), "is on host far.example") {
		t.Fatalf("remote node: %v", err)
	}
	if _, err := selected(st, Selection{Node: 1}); err == nil || !strings.Contains(err.Error(), "not a data node") {
		t.Fatalf("mgm node: %v", err)
	}
	if ns, err := selected(st, Selection{AllLocal: true}); err != nil || len(ns) != 2 {
		t.Fatalf("all-local: %d %v", len(ns), err)
	}
}

// TestEncryptedDir: a directory (or one above it) that is a symlink into
// Mount/Category is encrypted; a working directory inside the mount maps
// back to the configured path.
func TestEncryptedDir(t *testing.T) {
	dir := t.TempDir()
	o := Options{Mount: filepath.Join(dir, "mnt"), Category: "ndbdata"}
	data := filepath.Join(dir, "data")
	os.MkdirAll(filepath.Join(o.Mount, "ndbdata", data), 0o755)
	os.Symlink(filepath.Join(o.Mount, "ndbdata", data), data)
	if !o.encrypted(data) || !o.encrypted(filepath.Join(data, "backup")) || o.encrypted(dir) {
		t.Fatal("encrypted() wrong")
	}
	if got := o.unmount(filepath.Join(o.Mount, "ndbdata", data)); got != data {
		t.Fatalf("unmount: %s", got)
	}
}

// TestNodeGroups: node groups as the management server assigns them:
// NodeGroup when given, else NoOfReplicas nodes to a group in id order.
func TestNodeGroups(t *testing.T) {
	for _, tc := range []struct {
		name, ini string
		want      map[int]int // node id -> group; -1: none
	}{
		{"two replicas", "[ndbd default]\nNoOfReplicas=2\n[ndbd]\nNodeId=3\n[ndbd]\nNodeId=2\n[ndbd]\nNodeId=4\n[ndbd]\nNodeId=5\n", map[int]int{2: 0, 3: 0, 4: 1, 5: 1}},
		{"default replicas", "[ndbd]\nNodeId=2\n[ndbd]\nNodeId=3\n[ndbd]\nNodeId=4\n", map[int]int{2: 0, 3: 0, 4: 1}},
		{"explicit", "[ndbd default]\nNoOfReplicas=2\n[ndbd]\nNodeId=2\nNodeGroup=1\n[ndbd]\nNodeId=3\n[ndbd]\nNodeId=4\nNodeGroup=65536\n[ndbd]\nNodeId=5\n[ndbd]\nNodeId=6\nNodeGroup=1\n", map[int]int{2: 1, 3: 0, 4: -1, 5: 0, 6: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ini := filepath.Join(t.TempDir(), "config.ini")
			if err := os.WriteFile(ini, []byte(tc.ini), 0o644); err != nil {
				t.Fatal(err)
			}
			st, err := Discover(context.Background(), Options{ConfigIni: ini, NdbConfig: "-", MyCnf: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			for id, g := range tc.want {
				n := st.Node(id)
				switch {
				case n == nil:
					t.Fatalf("node %d missing", id)
				case g < 0 && n.NodeGroup != nil:
					t.Fatalf("node %d: group %d, want none", id, *n.NodeGroup)
				case g >= 0 && (n.NodeGroup == nil || *n.NodeGroup != g):
					t.Fatalf("node %d: group %v, want %d", id, n.NodeGroup, g)
				}
			}
		})
	}
}
