package acl

import (
	"encoding/json"
	"fmt"
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
	data, err := readRuleFile(path)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return map[string]int{}, nil
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
