package acl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// rulesV1Fixture is a version 1 rule file (no generation, MAC over the
// rules array alone) written with testMACKey by the version 1 code. It is
// frozen: it proves old rule files keep opening, as generation 0.
const rulesV1Fixture = "testdata/rules-v1.json"

var writeRulesV1 = flag.Bool("write-rules-v1", false, "write "+rulesV1Fixture+" (only for a format change)")

func TestRulesV1FixtureOpens(t *testing.T) {
	if *writeRulesV1 {
		body, err := json.Marshal(testRuleSet(t).Rules)
		if err != nil {
			t.Fatal(err)
		}
		// The layout the version 1 SaveRules wrote: rulesFile with no
		// generation (omitted when 0).
		data, _ := json.MarshalIndent(rulesFile{
			Format: RulesFormat, Version: 1, Rules: body,
			MAC: base64.StdEncoding.EncodeToString(rulesMAC(testMACKey, body)),
		}, "", "  ")
		if err := os.WriteFile(rulesV1Fixture, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := LoadRules(rulesV1Fixture, testMACKey)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Generation != 0 {
		t.Fatalf("version 1 file: generation %d, want 0", rs.Generation)
	}
	if want := testRuleSet(t); !reflect.DeepEqual(rs.Rules, want.Rules) {
		t.Fatalf("version 1 rules differ: %#v", rs.Rules)
	}
	// A "generation" slipped into a version 1 file is not authenticated
	// and must not count.
	data, _ := os.ReadFile(rulesV1Fixture)
	forged := bytes.Replace(data, []byte(`"version": 1,`), []byte(`"version": 1, "generation": 99,`), 1)
	rs, err = parseRules(forged, testMACKey)
	if err != nil || rs.Generation != 0 {
		t.Fatalf("version 1 with a generation field: %v, generation %d", err, rs.Generation)
	}
	// Nor can a version 1 file be relabelled version 2.
	relabelled := bytes.Replace(data, []byte(`"version": 1,`), []byte(`"version": 2,`), 1)
	if _, err := parseRules(relabelled, testMACKey); !errors.Is(err, ErrTampered) {
		t.Fatalf("version 1 relabelled 2: %v, want ErrTampered", err)
	}
}

func TestRulesGeneration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.json")
	rs := testRuleSet(t)
	rs.Generation = 41
	if err := SaveRules(path, rs, testMACKey); err != nil {
		t.Fatal(err)
	}
	got, err := LoadRules(path, testMACKey)
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 41 || got.Clone().Generation != 41 {
		t.Fatalf("generation %d (clone %d), want 41", got.Generation, got.Clone().Generation)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte(`"version": 2`)) || !bytes.Contains(data, []byte(`"generation": 41`)) {
		t.Fatalf("file:\n%s", data)
	}
	// The generation is under the MAC: raising it by hand is tampering.
	for _, g := range []string{`"generation": 42`, `"generation": 0`} {
		edited := bytes.Replace(data, []byte(`"generation": 41`), []byte(g), 1)
		if _, err := parseRules(edited, testMACKey); !errors.Is(err, ErrTampered) {
			t.Fatalf("%s: %v, want ErrTampered", g, err)
		}
	}
	// Dropping the field is tampering too (it reads as 0).
	var m map[string]json.RawMessage
	json.Unmarshal(data, &m)
	delete(m, "generation")
	dropped, _ := json.Marshal(m)
	if _, err := parseRules(dropped, testMACKey); !errors.Is(err, ErrTampered) {
		t.Fatalf("generation removed: %v, want ErrTampered", err)
	}
}
