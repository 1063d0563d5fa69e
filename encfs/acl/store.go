package acl

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/mysecure/mysecure/internal/atomicfile"
)

// Rule file format, version 2 (for docs/format.md; version 1 below).
//
// The rules are stored in one JSON file, mode 0600, written atomically
// (temp file in the same directory, fsync, rename, fsync of the directory):
//
//	{
//	  "format": "mysecure-rules",
//	  "version": 2,
//	  "generation": 7,
//	  "rules": [
//	    {"action": "ALLOW", "category": "mysqlbackup", "pattern": "*",
//	     "exe": {"path": "/usr/bin/mysqldump", "sha256": "64 hex digits"}},
//	    {"action": "ALLOW", "category": "mysql", "pattern": "*",
//	     "exe": {"path": "/opt/scripts/report.sh", "sha256": "..."},
//	     "shell": {"path": "/bin/bash", "sha256": "..."},
//	     "children": [{"path": "/bin/df", "sha256": "..."}],
//	     "users": [27]}
//	  ],
//	  "mac": "base64 of HMAC-SHA256"
//	}
//
// A rule's fields are those of Rule: action (ALLOW or DENY), category
// (without '@'; "*" for every category), pattern, exe (the program; the
// script for a --shell rule), shell (the interpreter, optional), children
// (optional), users (uids, optional; none means any uid). Fingerprints are
// SHA-256 of the file, lower-case hex; an empty one never allows anything.
// Order matters only for the rule numbers shown to users: a DENY rule
// always wins over an ALLOW rule.
//
// generation counts the saves of the rule file; the caller sets it (one
// more than the last one seen) and keeps the last seen outside the store
// (encfs/rollback), so an older copy put back is recognised.
//
// mac is HMAC-SHA256, keyed with the volume's rules subkey (HKDF purpose
// "rules"), over
//
//	"mysecure-rules v2" || 0x00 || generation (uint64 big endian) || rules
//
// where rules is the "rules" array as stored with insignificant white
// space removed (json.Compact: key order and string escapes stay exactly
// as written). It covers the generation, the rules and their
// fingerprints, not "format" or "version" (those only select the parser;
// the prefix keeps a version 2 MAC from passing as a version 1 one). A
// mismatch means the file was changed outside mysecure (ErrTampered); the
// daemon then denies all access until the rules are saved again with the
// master credential.
//
// Version 1 had no "generation" and its mac covered the compacted "rules"
// array alone. It still opens, as generation 0 (a "generation" field in a
// version 1 file is not authenticated and is ignored); saving writes
// version 2.
//
// Reading order: parse the outer object, check format and version (a newer
// version is ErrUnsupported, not corrupt), check the MAC, then decode the
// rules strictly (an unknown field is corruption) and validate each one.
const (
	// RulesFormat is the "format" value of a rule file.
	RulesFormat = "mysecure-rules"
	// RulesVersion is the rule file version this build writes and the
	// newest it reads.
	RulesVersion = 2

	// maxRulesFile bounds what LoadRules reads, so a planted huge file
	// cannot exhaust the daemon's memory.
	maxRulesFile = 16 << 20
)

// Errors LoadRules returns; callers branch on them with errors.Is.
var (
	// ErrTampered: the file parses but its MAC does not match the key.
	ErrTampered = errors.New("rule file was modified outside mysecure (MAC mismatch)")
	// ErrCorrupt: the file cannot be parsed or holds an invalid rule.
	ErrCorrupt = errors.New("rule file is corrupt")
	// ErrUnsupported: the file was written by a newer mysecure.
	ErrUnsupported = errors.New("unsupported rule file version")
)

// RuleSet is an ordered list of rules. Rule numbers shown to users are
// 1-based indexes into Rules.
type RuleSet struct {
	Rules []Rule `json:"rules"`
	// Generation is the file's save counter (0 for a version 1 file or
	// no file). SaveRules writes it as it is: the caller chooses it.
	Generation uint64 `json:"-"`
}

// Clone returns a deep copy of rs (nil for nil).
func (rs *RuleSet) Clone() *RuleSet {
	if rs == nil {
		return nil
	}
	c := &RuleSet{Rules: make([]Rule, len(rs.Rules)), Generation: rs.Generation}
	for i, r := range rs.Rules {
		c.Rules[i] = r.clone()
	}
	return c
}

// Find returns the index of the first rule Equal to r, or -1.
func (rs *RuleSet) Find(r Rule) int {
	if rs == nil {
		return -1
	}
	for i, x := range rs.Rules {
		if x.Equal(r) {
			return i
		}
	}
	return -1
}

type rulesFile struct {
	Format     string          `json:"format"`
	Version    int             `json:"version"`
	Generation uint64          `json:"generation,omitempty"`
	Rules      json.RawMessage `json:"rules"`
	MAC        string          `json:"mac"`
}

// LoadRules reads and authenticates the rule file at path with macKey. A
// missing file is an empty RuleSet and no error (a new volume has no
// rules). A file that does not parse, or holds an invalid rule, gives an
// error wrapping ErrCorrupt; a MAC mismatch gives ErrTampered; a newer
// format version gives ErrUnsupported.
func LoadRules(path string, macKey []byte) (*RuleSet, error) {
	if len(macKey) == 0 {
		return nil, errors.New("failed to load rules: empty MAC key")
	}
	data, err := readRuleFile(path)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return &RuleSet{}, nil
	}
	return parseRules(data, macKey)
}

// readRuleFile reads the rule file, at most maxRulesFile bytes; a
// missing file reads as nil.
func readRuleFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open rule file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRulesFile+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read rule file: %w", err)
	}
	if len(data) > maxRulesFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, path, maxRulesFile)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

func parseRules(data, macKey []byte) (*RuleSet, error) {
	var rf rulesFile
	if err := json.Unmarshal(data, &rf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if rf.Format != RulesFormat {
		return nil, fmt.Errorf("%w: format is %q, want %q", ErrCorrupt, rf.Format, RulesFormat)
	}
	if rf.Version > RulesVersion || rf.Version < 1 {
		return nil, fmt.Errorf("%w: version %d (this mysecure reads 1 to %d)", ErrUnsupported, rf.Version, RulesVersion)
	}
	if len(rf.Rules) == 0 {
		return nil, fmt.Errorf("%w: no \"rules\" array", ErrCorrupt)
	}
	mac, err := base64.StdEncoding.DecodeString(rf.MAC)
	if err != nil || len(mac) != sha256.Size {
		return nil, fmt.Errorf("%w: bad mac field", ErrCorrupt)
	}
	var body bytes.Buffer
	if err := json.Compact(&body, rf.Rules); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	gen := rf.Generation
	want := rulesMACv2(macKey, gen, body.Bytes())
	if rf.Version == 1 {
		gen = 0
		want = rulesMAC(macKey, body.Bytes())
	}
	if !hmac.Equal(want, mac) {
		return nil, ErrTampered
	}
	var rules []Rule
	dec := json.NewDecoder(bytes.NewReader(body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if rules == nil {
		return nil, fmt.Errorf("%w: \"rules\" is not an array", ErrCorrupt)
	}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%w: rule %d: %v", ErrCorrupt, i+1, err)
		}
	}
	return &RuleSet{Rules: rules, Generation: gen}, nil
}

// rulesMAC is the version 1 MAC: the rules array alone.
func rulesMAC(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

// rulesMACv2 is the version 2 MAC: a prefix, the generation and the
// rules array.
func rulesMACv2(key []byte, gen uint64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("mysecure-rules v2\x00"))
	m.Write(binary.BigEndian.AppendUint64(nil, gen))
	m.Write(body)
	return m.Sum(nil)
}

// SaveRules validates rs, authenticates it and its Generation with
// macKey and writes it to path atomically with mode 0600, as version 2. A
// nil rs is saved as an empty set with generation 0.
func SaveRules(path string, rs *RuleSet, macKey []byte) error {
	if len(macKey) == 0 {
		return errors.New("failed to save rules: empty MAC key")
	}
	rules := []Rule{}
	if rs != nil && rs.Rules != nil {
		rules = rs.Rules
	}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("failed to save rules: rule %d: %w", i+1, err)
		}
	}
	body, err := json.Marshal(rules)
	if err != nil {
		return fmt.Errorf("failed to encode rules: %w", err)
	}
	var gen uint64
	if rs != nil {
		gen = rs.Generation
	}
	data, err := json.MarshalIndent(rulesFile{
		Format:     RulesFormat,
		Version:    RulesVersion,
		Generation: gen,
		Rules:      body,
		MAC:        base64.StdEncoding.EncodeToString(rulesMACv2(macKey, gen, body)),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode rule file: %w", err)
	}
	data = append(data, '\n')
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("failed to write rule file: %w", err)
	}
	return nil
}
