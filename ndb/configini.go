package ndb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrConfig marks a config.ini (or my.cnf setting) that cannot be used.
var ErrConfig = errors.New("invalid cluster configuration")

// Node kinds.
const (
	KindData = "ndbd"     // a data node (ndbd or ndbmtd)
	KindMgm  = "ndb_mgmd" // a management node
	KindAPI  = "mysqld"   // an API or SQL node
)

// Section is one section of a config.ini: a node, or the defaults of a
// kind. Params maps canonical (lower-case) names to values.
type Section struct {
	Kind    string // KindData, KindMgm, KindAPI, or "tcp", "shm", "system", "computer"
	Default bool   // [ndbd default] and the like
	Line    int
	Params  map[string]string
}

// Config is a parsed config.ini.
type Config struct {
	File     string
	Sections []Section
}

// sectionKinds maps the section names (lower case) to kinds; the old
// names ([DB], [MGM], [API]) are accepted too.
var sectionKinds = map[string]string{
	"ndbd": KindData, "db": KindData,
	"ndb_mgmd": KindMgm, "mgm": KindMgm,
	"mysqld": KindAPI, "api": KindAPI,
	"tcp": "tcp", "shm": "shm", "system": "system", "computer": "computer",
}

// knownParams are the parameters accepted in each kind of section, lower
// case. Data node parameters are many; this list has those of the
// reference manual's data node table that a DBA commonly sets, and
// anything else is refused (a misspelt DataDir must not go unnoticed).
var knownParams = map[string][]string{
	"common": {"nodeid", "id", "hostname", "datadir", "executeoncomputer", "arbitrationrank", "arbitrationdelay",
		"heartbeatintervalmgmdmgmd", "heartbeatthreadpriority", "totalsendbuffermemory", "extrasendbuffermemory",
		"wan", "nodegroup", "location_domain_id", "locationdomainid", "dedicated", "nodeid"},
	KindData: {"filesystempath", "backupdatadir", "filesystempathdd", "filesystempathdatafiles", "filesystempathundofiles",
		"noofreplicas", "datamemory", "indexmemory", "transactionmemory", "sharedglobalmemory", "redobuffer", "undoindexbuffer", "undodatabuffer",
		"noofloggroups", "nooffragmentlogfiles", "fragmentlogfilesize", "nooffragmentlogparts", "initfragmentlogfiles",
		"maxnoofconcurrentoperations", "maxnoofconcurrenttransactions", "maxnooflocaloperations", "maxnooftables",
		"maxnoofattributes", "maxnooforderedindexes", "maxnoofuniquehashindexes", "maxnooftriggers", "maxnoofconcurrentscans",
		"maxnooflocalscans", "batchsizeperlocalscan", "maxnoofexecutionthreads", "threadconfig", "lockpagesinmainmemory",
		"lockexecutethreadtocpu", "lockmaintthreadstocpu", "stoponerror", "restartonerrorinsert", "diskpageBufferMemory",
		"diskpagebuffermemory", "diskpagebufferentries", "diskcheckpointspeed", "diskcheckpointspeedinrestart",
		"diskiothreadpool", "diskless", "odirect", "odirectsyncflag", "compressedbackup", "compressedlcp",
		"backupmemory", "backupdatabuffersize", "backuplogbuffersize", "backupwritesize", "backupmaxwritesize",
		"timebetweenlocalcheckpoints", "timebetweenglobalcheckpoints", "timebetweenepochs", "timebetweenepochstimeout",
		"timebetweenwatchdogcheck", "timebetweenwatchdogcheckinitial", "timebetweeninactivetransactionabortcheck",
		"transactioninactivetimeout", "transactiondeadlockdetectiontimeout", "heartbeatintervaldbdb", "heartbeatintervaldbapi",
		"starttimeout", "startpartialtimeout", "startpartitionedtimeout", "startfailuretimeout", "startfailretrydelay",
		"maxstartfailretries", "startnoNodegroupTimeout", "startnonodegrouptimeout", "arbitrationtimeout", "arbitration",
		"realtimescheduler", "schedulerexecutiontimer", "schedulerspintimer", "schedulerresponsiveness", "memreportfrequency",
		"startupstatusreportfrequency", "loglevelstartup", "loglevelshutdown", "loglevelstatistic", "loglevelcheckpoint",
		"loglevelnoderestart", "loglevelconnection", "loglevelcongestion", "loglevelerror", "loglevelinfo",
		"maxbuffereddepth", "maxallocate", "maxdmloperationspertransaction", "longmessagebuffer", "numa", "serverport",
		"enablepartialLcp", "enablepartiallcp", "recoverworkpercentage", "maxlcpstartdelay", "enableredocontrol",
		"encryptedfilesystem", "requireencryptedbackup", "automaticthreadconfig", "numcpus", "partitionsperNode",
		"partitionspernode", "classicfragmentation", "maxdiskwritespeed", "maxdiskwritespeedothernoderestart",
		"maxdiskwritespeedownrestart", "mindiskwritespeed", "initialnoofopenfiles", "maxnoofopenfiles",
		"maxnoofsavedmessages", "stringmemory", "hashmapsize", "twopassinitialnoderestartcopy", "buildindexthreads",
		"batchsizeperlocalscan", "maxreorgbuildbatchsize", "maxuibuildbatchsize", "maxfkbuildbatchsize",
		"initiallogfilegroup", "initialtablespace", "maxparallelscanspfragment", "maxparallelcopyinstances",
		"lcpscanprogresstimeout", "connectcheckintervaldelay", "mtschedulerspintimer", "crashondiskio"},
	KindMgm: {"portnumber", "logdestination", "maxnoofsavedevents", "totalsendbuffermemory", "heartbeatintervalmgmdmgmd"},
	KindAPI: {"autoreconnect", "batchbytesize", "batchsize", "maxscanbatchsize", "connectionmap", "defaultoperationredoproblemaction",
		"defaulthashmapsize", "apiverbose", "heartbeatthreadpriority", "connectbackoffmaxtime", "startconnectbackoffmaxtime"},
	"tcp": {"nodeid1", "nodeid2", "hostname1", "hostname2", "sendbuffermemory", "receivebuffermemory", "sendsignalid",
		"checksum", "overloadlimit", "preferipversion", "tcp_maxseg_size", "tcp_rcv_buf_size", "tcp_snd_buf_size", "group",
		"nodeidserver", "proxy", "portnumber", "usetls"},
	"shm": {"nodeid1", "nodeid2", "hostname1", "hostname2", "shmkey", "shmsize", "shmspintime", "sendbuffermemory",
		"checksum", "overloadlimit", "signum", "nodeidserver", "preferipversion"},
	"system":   {"name", "primarymgmnode", "configgenerationnumber"},
	"computer": {"id", "hostname"},
}

var known = func() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for kind := range knownParams {
		if kind == "common" {
			continue
		}
		m := map[string]bool{}
		for _, p := range knownParams[kind] {
			m[strings.ToLower(p)] = true
		}
		if kind == KindData || kind == KindMgm || kind == KindAPI {
			for _, p := range knownParams["common"] {
				m[p] = true
			}
		}
		out[kind] = m
	}
	return out
}()

// maxConfigSize bounds how much of a config.ini is read.
const maxConfigSize = 4 << 20

// ParseConfig parses a config.ini as ndb_mgmd reads it: "[section]"
// lines, "name=value" or "name: value" lines, '#' comments (a whole line,
// or from '#' to the end of a value), blank lines. Section and parameter
// names and the names of kinds are case-insensitive. A parameter given
// twice in a section, an unknown parameter or section, a parameter outside
// any section and a line that is none of these are errors naming the file
// and line. Id is read as NodeId.
func ParseConfig(r io.Reader, name string) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrConfig, name, maxConfigSize)
	}
	// A file saved by a Windows editor: a byte order mark, CRLF lines
	// (the CR goes with the blanks around values).
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	c := &Config{File: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxConfigSize+1)
	line := 0
	var cur *Section
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s:%d: %s", ErrConfig, name, line, fmt.Sprintf(format, a...))
	}
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s[0] == '[' {
			end := strings.IndexByte(s, ']')
			if end < 0 || strings.TrimSpace(s[end+1:]) != "" {
				return nil, fail("a section header is [NAME]")
			}
			words := strings.Fields(strings.ToLower(s[1:end]))
			def := false
			if len(words) == 2 && words[1] == "default" {
				def, words = true, words[:1]
			}
			if len(words) != 1 {
				return nil, fail("unknown section [%s]", s[1:end])
			}
			kind, ok := sectionKinds[words[0]]
			if !ok {
				return nil, fail("unknown section [%s]", s[1:end])
			}
			c.Sections = append(c.Sections, Section{Kind: kind, Default: def, Line: line, Params: map[string]string{}})
			cur = &c.Sections[len(c.Sections)-1]
			continue
		}
		i := strings.IndexAny(s, "=:")
		if i < 0 {
			return nil, fail("want NAME=VALUE or NAME: VALUE")
		}
		k, v := strings.ToLower(strings.TrimSpace(s[:i])), strings.TrimSpace(s[i+1:])
		if k == "" {
			return nil, fail("a parameter without a name")
		}
		if cur == nil {
			return nil, fail("parameter %s outside any section", k)
		}
		if !known[cur.Kind][k] {
			return nil, fail("unknown parameter %s in a [%s] section", s[:i], cur.Kind)
		}
		if k == "id" {
			k = "nodeid"
		}
		if _, dup := cur.Params[k]; dup {
			return nil, fail("parameter %s given twice in the section of line %d", strings.TrimSpace(s[:i]), cur.Line)
		}
		if k == "nodeid" {
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 255 {
				return nil, fail("NodeId %q is not a number from 1 to 255", v)
			}
		}
		cur.Params[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", name, err)
	}
	return c, nil
}

// ConfigNode is a node of a config.ini with its kind's defaults applied.
type ConfigNode struct {
	Kind   string
	ID     int // 0 when the file does not give one
	Line   int
	Params map[string]string
}

// Get returns a parameter (canonical lower-case name).
func (n ConfigNode) Get(name string) string { return n.Params[strings.ToLower(name)] }

// Nodes returns the node sections with the [KIND default] sections that
// come before them applied, and checks that node ids are unique.
func (c *Config) Nodes() ([]ConfigNode, error) {
	defs := map[string]map[string]string{}
	ids := map[int]int{}
	var out []ConfigNode
	for _, s := range c.Sections {
		if s.Kind != KindData && s.Kind != KindMgm && s.Kind != KindAPI {
			continue
		}
		if s.Default {
			if defs[s.Kind] == nil {
				defs[s.Kind] = map[string]string{}
			}
			for k, v := range s.Params {
				defs[s.Kind][k] = v
			}
			continue
		}
		n := ConfigNode{Kind: s.Kind, Line: s.Line, Params: map[string]string{}}
		for k, v := range defs[s.Kind] {
			n.Params[k] = v
		}
		for k, v := range s.Params {
			n.Params[k] = v
		}
		if v, ok := s.Params["nodeid"]; ok {
			n.ID, _ = strconv.Atoi(v)
			if prev, dup := ids[n.ID]; dup {
				return nil, fmt.Errorf("%w: %s:%d: NodeId %d is also the node of line %d", ErrConfig, c.File, s.Line, n.ID, prev)
			}
			ids[n.ID] = s.Line
		}
		delete(n.Params, "nodeid") // a default section has no say in it
		out = append(out, n)
	}
	return out, nil
}
