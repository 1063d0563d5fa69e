package acl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var testMACKey = bytes.Repeat([]byte{0x42}, 32)

func mustParse(t testing.TB, line string) Rule {
	t.Helper()
	r, err := ParseRule(line)
	if err != nil {
		t.Fatalf("ParseRule(%q): %v", line, err)
	}
	return r
}

func testRuleSet(t testing.TB) *RuleSet {
	t.Helper()
	a := mustParse(t, "ALLOW @mysqlbackup * /usr/bin/mysqldump")
	a.Exe.SHA256 = strings.Repeat("1f", 32)
	b := mustParse(t, "DENY @* *.cnf /usr/bin/cat")
	c := mustParse(t, "ALLOW @mysql * /opt/scripts/report.sh --shell=/bin/bash --children=/bin/df,/bin/ls --user=0,27")
	c.Shell.SHA256 = strings.Repeat("2e", 32)
	return &RuleSet{Rules: []Rule{a, b, c}}
}

func TestSaveLoadRules(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.json")

	t.Run("missing file is empty", func(t *testing.T) {
		rs, err := LoadRules(path, testMACKey)
		if err != nil {
			t.Fatal(err)
		}
		if rs == nil || len(rs.Rules) != 0 {
			t.Fatalf("LoadRules of a missing file = %#v, want an empty set", rs)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		want := testRuleSet(t)
		if err := SaveRules(path, want, testMACKey); err != nil {
			t.Fatal(err)
		}
		got, err := LoadRules(path, testMACKey)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("loaded %#v, want %#v", got, want)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Errorf("temp file left behind: %v", entries)
		}
	})
	t.Run("empty set", func(t *testing.T) {
		p := filepath.Join(dir, "empty.json")
		if err := SaveRules(p, &RuleSet{}, testMACKey); err != nil {
			t.Fatal(err)
		}
		rs, err := LoadRules(p, testMACKey)
		if err != nil || len(rs.Rules) != 0 {
			t.Fatalf("LoadRules = %#v, %v", rs, err)
		}
	})
	t.Run("white space is not tampering", func(t *testing.T) {
		data := readFile(t, path)
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "compact.json")
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, buf.Bytes())
		if _, err := LoadRules(p, testMACKey); err != nil {
			t.Fatalf("compacted file: %v", err)
		}
	})
	t.Run("refuses invalid rules", func(t *testing.T) {
		bad := &RuleSet{Rules: []Rule{{Action: Allow, Category: "mysql", Pattern: "/abs", Exe: Program{Path: "/x"}}}}
		if err := SaveRules(filepath.Join(dir, "bad.json"), bad, testMACKey); err == nil {
			t.Fatal("SaveRules accepted an invalid rule")
		}
	})
	t.Run("refuses an empty key", func(t *testing.T) {
		if _, err := LoadRules(path, nil); err == nil {
			t.Error("LoadRules accepted an empty key")
		}
		if err := SaveRules(path, testRuleSet(t), nil); err == nil {
			t.Error("SaveRules accepted an empty key")
		}
	})
}

func TestLoadRulesTampered(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.json")
	if err := SaveRules(path, testRuleSet(t), testMACKey); err != nil {
		t.Fatal(err)
	}
	orig := readFile(t, path)
	tests := []struct {
		name string
		edit func([]byte) []byte
		key  []byte
	}{
		{"one byte of a path", func(b []byte) []byte {
			return bytes.Replace(b, []byte("mysqldump"), []byte("mysqldumq"), 1)
		}, testMACKey},
		{"one byte of a fingerprint", func(b []byte) []byte {
			return bytes.Replace(b, []byte("1f1f"), []byte("1f1e"), 1)
		}, testMACKey},
		{"DENY turned into ALLOW", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"DENY"`), []byte(`"ALLOW"`), 1)
		}, testMACKey},
		{"a rule removed", func(b []byte) []byte {
			var f map[string]json.RawMessage
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			var rules []json.RawMessage
			if err := json.Unmarshal(f["rules"], &rules); err != nil {
				t.Fatal(err)
			}
			f["rules"], _ = json.Marshal(rules[1:])
			out, _ := json.Marshal(f)
			return out
		}, testMACKey},
		{"another key", func(b []byte) []byte { return b }, bytes.Repeat([]byte{0x43}, 32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			edited := tt.edit(bytes.Clone(orig))
			p := filepath.Join(dir, "edited.json")
			writeFile(t, p, edited)
			_, err := LoadRules(p, tt.key)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("LoadRules of an edited file: %v, want ErrTampered", err)
			}
		})
	}
}

func TestLoadRulesCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.json")
	if err := SaveRules(path, testRuleSet(t), testMACKey); err != nil {
		t.Fatal(err)
	}
	good := readFile(t, path)

	// A file with a valid MAC over rules that do not decode: only a bug
	// (or someone holding the key) could write it.
	signed := func(rules string) []byte {
		data, _ := json.Marshal(rulesFile{
			Format: RulesFormat, Version: 1, Rules: json.RawMessage(rules),
			MAC: encodeMAC(rulesMAC(testMACKey, []byte(rules))),
		})
		return data
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty file", nil, ErrCorrupt},
		{"not JSON", []byte("ALLOW @mysql * /x\n"), ErrCorrupt},
		{"truncated", good[:len(good)/2], ErrCorrupt},
		{"wrong format", bytes.Replace(good, []byte(RulesFormat), []byte("mysecure-other"), 1), ErrCorrupt},
		{"newer version", bytes.Replace(good, []byte(`"version": 2`), []byte(`"version": 3`), 1), ErrUnsupported},
		{"no rules", []byte(`{"format":"mysecure-rules","version":1,"mac":"AAAA"}`), ErrCorrupt},
		{"bad mac", bytes.Replace(good, []byte(`"mac": "`), []byte(`"mac": "!`), 1), ErrCorrupt},
		{"rules not an array", signed(`{"a":1}`), ErrCorrupt},
		{"rules null", signed(`null`), ErrCorrupt},
		{"unknown field", signed(`[{"action":"ALLOW","category":"mysql","pattern":"*","exe":{"path":"/x","sha256":""},"extra":1}]`), ErrCorrupt},
		{"invalid rule", signed(`[{"action":"ALLOW","category":"mysql","pattern":"/abs","exe":{"path":"/x","sha256":""}}]`), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "corrupt.json")
			writeFile(t, p, tt.data)
			_, err := LoadRules(p, testMACKey)
			if !errors.Is(err, tt.want) {
				t.Fatalf("LoadRules: %v, want %v", err, tt.want)
			}
		})
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func encodeMAC(mac []byte) string { return base64.StdEncoding.EncodeToString(mac) }
