package acl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
)

// CategoryRefs describes the rules that name category cat (not "@*",
// which names no category in particular), one string each:
// "rule N (TEXT)", N as 'acl list' numbers it. Nil when none does.
func (rs *RuleSet) CategoryRefs(cat string) []string {
	if rs == nil {
		return nil
	}
	var out []string
	for i, r := range rs.Rules {
		if r.Category == cat {
			out = append(out, "rule "+strconv.Itoa(i+1)+" ("+r.String()+")")
		}
	}
	return out
}

// UnverifiedCategoryCounts counts the rules of the rule file at path per
// category, WITHOUT checking its MAC (no key is at hand): for listings
// that need no credential ('mysecure category list' without a daemon),
// never for a decision. A missing file has no rules.
func UnverifiedCategoryCounts(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]int{}, nil
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
	var rf struct {
		Rules []struct {
			Category string `json:"category"`
		} `json:"rules"`
	}
	if err := json.Unmarshal(data, &rf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	out := map[string]int{}
	for _, r := range rf.Rules {
		out[r.Category]++
	}
	return out, nil
}
