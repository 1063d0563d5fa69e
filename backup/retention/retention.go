// Package retention decides which backups a retention policy keeps, for
// `mysecure backup prune --keep-last N --keep-daily N --keep-weekly N
// --keep-monthly N [--dry-run]`.
//
// The rules follow restic's `forget --keep-*` options: backups are split
// into groups, and in each group independently
//
//   - keep-last N keeps the N newest backups;
//   - keep-daily/weekly/monthly/yearly N walk the backups from newest to
//     oldest, put each into a calendar bucket (day, ISO week, month, year
//     in a caller-supplied time zone), and keep the newest backup of each
//     of the N newest buckets that contain a backup, so days without a
//     backup do not use up a bucket;
//   - keep-within D keeps every backup at or after now-D.
//
// A backup kept for several reasons reports all of them.
//
// The package is pure computation: it never deletes, moves or reads
// anything itself, and it never reads the clock; the caller passes "now"
// and the time zone explicitly and acts on the returned decisions (or only
// prints them, for --dry-run). Unlike newer restic versions it does not
// additionally keep the oldest backup when there are fewer buckets than
// requested.
package retention

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Reasons reported in Decision.Reasons, always in this order.
const (
	ReasonLast    = "last"
	ReasonDaily   = "daily"
	ReasonWeekly  = "weekly"
	ReasonMonthly = "monthly"
	ReasonYearly  = "yearly"
	ReasonWithin  = "within"
)

// Policy is a retention policy. Each count is the number of backups (Last)
// or calendar buckets (Daily, Weekly, Monthly, Yearly) to keep per group;
// 0 disables that rule. Within, if positive, keeps every backup whose time
// is at or after now-Within.
type Policy struct {
	Last, Daily, Weekly, Monthly, Yearly int
	Within                               time.Duration
}

// ErrEmptyPolicy is returned (wrapped) by Validate when no keep option is
// set: such a policy would remove every backup, which is never what a
// prune invocation means.
var ErrEmptyPolicy = errors.New("retention: at least one keep option is required (--keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly or --keep-within)")

// Validate reports whether p is usable: no count or duration may be
// negative, and at least one of them must be positive.
func (p Policy) Validate() error {
	for _, c := range []struct {
		name string
		n    int
	}{
		{"last", p.Last}, {"daily", p.Daily}, {"weekly", p.Weekly},
		{"monthly", p.Monthly}, {"yearly", p.Yearly},
	} {
		if c.n < 0 {
			return fmt.Errorf("retention: keep-%s must not be negative, got %d", c.name, c.n)
		}
	}
	if p.Within < 0 {
		return fmt.Errorf("retention: keep-within must not be negative, got %v", p.Within)
	}
	if p.Last == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 && p.Within == 0 {
		return ErrEmptyPolicy
	}
	return nil
}

// String describes the non-zero rules of p, e.g. "last 3, daily 7, weekly 4",
// or "none" if there are none.
func (p Policy) String() string {
	var parts []string
	add := func(name string, n int) {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, n))
		}
	}
	add(ReasonLast, p.Last)
	add(ReasonDaily, p.Daily)
	add(ReasonWeekly, p.Weekly)
	add(ReasonMonthly, p.Monthly)
	add(ReasonYearly, p.Yearly)
	if p.Within != 0 {
		parts = append(parts, fmt.Sprintf("%s %v", ReasonWithin, p.Within))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Item is one complete backup. Group partitions the backups (for example
// by backup type or job name); the policy is applied to each group on its
// own. ID must be unique within a group.
type Item struct {
	ID    string
	Time  time.Time
	Group string
}

// Decision says whether Item is kept and why. Reasons is empty exactly
// when Keep is false.
type Decision struct {
	Item    Item
	Keep    bool
	Reasons []string
}

// Apply validates p and returns one decision per item: groups sorted by
// name, and within each group newest first (time descending, then ID
// descending, so equal timestamps are ordered deterministically).
// Calendar buckets are computed in loc (UTC if nil); now is used only for
// Policy.Within. items is not modified. Duplicate IDs within a group are
// an error.
func Apply(items []Item, p Policy, now time.Time, loc *time.Location) ([]Decision, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if loc == nil {
		loc = time.UTC
	}

	sorted := slices.Clone(items)
	slices.SortFunc(sorted, func(a, b Item) int {
		if c := cmp.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})

	out := make([]Decision, 0, len(sorted))
	for start := 0; start < len(sorted); {
		end := start + 1
		for end < len(sorted) && sorted[end].Group == sorted[start].Group {
			end++
		}
		group := sorted[start:end]
		seen := make(map[string]bool, len(group))
		for _, it := range group {
			if seen[it.ID] {
				return nil, fmt.Errorf("retention: duplicate backup ID %q in group %q", it.ID, it.Group)
			}
			seen[it.ID] = true
		}
		out = append(out, applyGroup(group, p, now, loc)...)
		start = end
	}
	return out, nil
}

// bucketRule keeps the newest item of each of the first n distinct
// buckets, walking newest to oldest.
type bucketRule struct {
	reason string
	n      int
	key    func(t time.Time) int
}

// applyGroup decides for one group already sorted newest first.
func applyGroup(group []Item, p Policy, now time.Time, loc *time.Location) []Decision {
	ds := make([]Decision, len(group))
	for i, it := range group {
		ds[i].Item = it
	}

	for i := 0; i < p.Last && i < len(ds); i++ {
		ds[i].Reasons = append(ds[i].Reasons, ReasonLast)
	}

	rules := []bucketRule{
		{ReasonDaily, p.Daily, func(t time.Time) int {
			y, m, d := t.Date()
			return y*10000 + int(m)*100 + d
		}},
		{ReasonWeekly, p.Weekly, func(t time.Time) int {
			y, w := t.ISOWeek()
			return y*100 + w
		}},
		{ReasonMonthly, p.Monthly, func(t time.Time) int {
			y, m, _ := t.Date()
			return y*100 + int(m)
		}},
		{ReasonYearly, p.Yearly, func(t time.Time) int { return t.Year() }},
	}
	for _, r := range rules {
		left := r.n
		// A set rather than "previous key": local dates are not monotonic
		// in instants when a zone's offset moves back across midnight.
		used := make(map[int]bool)
		for i := range ds {
			if left == 0 {
				break
			}
			k := r.key(ds[i].Item.Time.In(loc))
			if used[k] {
				continue
			}
			used[k] = true
			left--
			ds[i].Reasons = append(ds[i].Reasons, r.reason)
		}
	}

	if p.Within > 0 {
		cutoff := now.Add(-p.Within)
		for i := range ds {
			if !ds[i].Item.Time.Before(cutoff) {
				ds[i].Reasons = append(ds[i].Reasons, ReasonWithin)
			}
		}
	}

	for i := range ds {
		ds[i].Keep = len(ds[i].Reasons) > 0
	}
	return ds
}
