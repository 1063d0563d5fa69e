package volume

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// kat holds the known-answer vectors of testdata/kat/vectors.json, made by
// an independent implementation (scripts/kat.py, Python 'cryptography'):
// they pin the formats by more than this code's own output.
type kat struct {
	Master   string `json:"master"`
	VolumeID string `json:"volume_id"`
	Subkeys  []struct {
		Purpose, Category, Key string
	} `json:"subkeys"`
}

func TestKnownAnswerSubkeys(t *testing.T) {
	b, err := os.ReadFile("../../testdata/kat/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v kat
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	master, _ := hex.DecodeString(v.Master)
	k := newKeys(master, &Config{VolumeID: v.VolumeID, Categories: []string{"mysql", "mysqlbackup"}}, 0)
	if len(v.Subkeys) < 9 {
		t.Fatalf("only %d subkey vectors", len(v.Subkeys))
	}
	for _, s := range v.Subkeys {
		got, err := k.Subkey(s.Purpose, s.Category)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != s.Key {
			t.Errorf("subkey(%s, %q) = %x, want %s", s.Purpose, s.Category, got, s.Key)
		}
	}
}
