package ndb

import (
	"errors"
	"strings"
	"testing"
)

const sampleIni = `# a cluster
[ndbd default]
NoOfReplicas=2
DataMemory: 80M
datadir = /var/lib/mysql-cluster

[ndb_mgmd]
NodeId=1
HostName=127.0.0.1
DataDir=/var/lib/mysql-cluster/mgm   # the management server's

[NDBD]
Id: 2
hostname=127.0.0.1
FileSystemPath=/srv/ndb/fs2

[DB]
NodeId=3
HostName=otherhost
BackupDataDir=/backup/ndb3

[mysqld]
NodeId=50
[API]
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(sampleIni), "config.ini")
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := c.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 5 {
		t.Fatalf("got %d nodes, want 5: %+v", len(nodes), nodes)
	}
	tests := []struct {
		i           int
		kind        string
		id          int
		param, want string
	}{
		{0, KindMgm, 1, "DataDir", "/var/lib/mysql-cluster/mgm"},
		{1, KindData, 2, "FileSystemPath", "/srv/ndb/fs2"},
		{1, KindData, 2, "datadir", "/var/lib/mysql-cluster"}, // from [ndbd default]
		{1, KindData, 2, "DataMemory", "80M"},                 // ':' separator
		{2, KindData, 3, "hostname", "otherhost"},
		{2, KindData, 3, "BackupDataDir", "/backup/ndb3"},
		{3, KindAPI, 50, "hostname", ""},
		{4, KindAPI, 0, "hostname", ""},
	}
	for _, tt := range tests {
		n := nodes[tt.i]
		if n.Kind != tt.kind || n.ID != tt.id || n.Get(tt.param) != tt.want {
			t.Errorf("node %d: kind %s id %d %s=%q, want %s %d %q", tt.i, n.Kind, n.ID, tt.param, n.Get(tt.param), tt.kind, tt.id, tt.want)
		}
	}
}

func TestParseConfigWindows(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("\xef\xbb\xbf[ndbd]\r\nNodeId=2\r\nDataDir = /a b\r\n"), "c.ini")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Nodes(); len(n) != 1 || n[0].ID != 2 || n[0].Get("DataDir") != "/a b" {
		t.Fatalf("nodes %+v", n)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"duplicate", "[ndbd]\nNodeId=2\nDataDir=/a\ndatadir=/b\n", ":4: parameter datadir given twice"},
		{"unknown param", "[ndbd]\nDataDri=/a\n", ":2: unknown parameter DataDri"},
		{"unknown section", "[ndbx]\nNodeId=2\n", ":1: unknown section [ndbx]"},
		{"outside", "DataDir=/a\n[ndbd]\n", ":1: parameter datadir outside any section"},
		{"no separator", "[ndbd]\nDataDir /a\n", ":2: want NAME=VALUE"},
		{"bad id", "[ndbd]\nNodeId=x\n", ":2: NodeId \"x\" is not a number"},
		{"bad header", "[ndbd\n", ":1: a section header is [NAME]"},
		{"duplicate id", "[ndbd]\nNodeId=2\n[ndb_mgmd]\nId=2\n", ":3: NodeId 2 is also the node of line 1"},
		{"id and nodeid", "[ndbd]\nId=2\nNodeId=3\n", ":3: parameter NodeId given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(strings.NewReader(tt.in), "c.ini")
			if err == nil {
				_, err = c.Nodes()
			}
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrConfig containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// FuzzParseConfig: any input parses or fails with ErrConfig; a parsed
// config gives nodes with ids in range, and parsing is deterministic.
func FuzzParseConfig(f *testing.F) {
	f.Add(sampleIni)
	f.Add("[ndbd default]\nDataDir=/x\n[ndbd]\nNodeId=2\n")
	f.Add("[tcp default]\nSendBufferMemory=2M\n[system]\nName=c1\n")
	f.Add("[ndbd]\nId=2 # c\n\n#x\nHostName: h:1186\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseConfig(strings.NewReader(in), "f.ini")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error not ErrConfig: %v", err)
			}
			return
		}
		nodes, err := c.Nodes()
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error not ErrConfig: %v", err)
			}
			return
		}
		for _, n := range nodes {
			if n.ID < 0 || n.ID > 255 {
				t.Fatalf("node id %d out of range", n.ID)
			}
			for k := range n.Params {
				if k != strings.ToLower(k) {
					t.Fatalf("parameter %q not canonical", k)
				}
			}
		}
		c2, err := ParseConfig(strings.NewReader(in), "f.ini")
		if err != nil || len(c2.Sections) != len(c.Sections) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}
