package retention

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin even on hosts without zoneinfo
)

func ts(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

// items builds items from "ID=RFC3339" or "group/ID=RFC3339" specs.
func items(t *testing.T, specs ...string) []Item {
	t.Helper()
	var out []Item
	for _, s := range specs {
		id, when, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("bad spec %q", s)
		}
		group := ""
		if g, rest, ok := strings.Cut(id, "/"); ok {
			group, id = g, rest
		}
		out = append(out, Item{ID: id, Time: ts(t, when), Group: group})
	}
	return out
}

// summary renders decisions as "ID:reason+reason" (kept) or "ID:-"
// (removed), prefixed with "group/" when the group is set.
func summary(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		r := "-"
		if d.Keep {
			r = strings.Join(d.Reasons, "+")
		}
		id := d.Item.ID
		if d.Item.Group != "" {
			id = d.Item.Group + "/" + id
		}
		out = append(out, id+":"+r)
	}
	return out
}

func TestApply(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

	// Ten daily backups at 02:00 UTC, 2026-05-01 .. 2026-05-10 (Fri .. Sun).
	var tenDays []string
	for d := 1; d <= 10; d++ {
		tenDays = append(tenDays, fmt.Sprintf("d%02d=2026-05-%02dT02:00:00Z", d, d))
	}

	tests := []struct {
		name  string
		specs []string
		p     Policy
		loc   *time.Location
		now   time.Time
		want  []string
	}{
		{
			name:  "last only",
			specs: tenDays[:4],
			p:     Policy{Last: 2},
			want:  []string{"d04:last", "d03:last", "d02:-", "d01:-"},
		},
		{
			name:  "daily only",
			specs: tenDays[:4],
			p:     Policy{Daily: 3},
			want:  []string{"d04:daily", "d03:daily", "d02:daily", "d01:-"},
		},
		{
			// 2026-05-01 Fri, 02-03 Sat/Sun (W18); 04..10 Mon..Sun (W19).
			name:  "weekly only",
			specs: tenDays,
			p:     Policy{Weekly: 2},
			want: []string{"d10:weekly", "d09:-", "d08:-", "d07:-", "d06:-", "d05:-",
				"d04:-", "d03:weekly", "d02:-", "d01:-"},
		},
		{
			name: "monthly only",
			specs: []string{"a=2026-01-15T00:00:00Z", "b=2026-01-31T23:59:59Z",
				"c=2026-02-01T00:00:00Z", "d=2026-02-28T10:00:00Z", "e=2026-03-01T00:00:00Z"},
			p:    Policy{Monthly: 2},
			want: []string{"e:monthly", "d:monthly", "c:-", "b:-", "a:-"},
		},
		{
			name: "month boundary",
			specs: []string{"jan31=2026-01-31T23:59:59Z", "feb01=2026-02-01T00:00:00Z",
				"feb28=2026-02-28T12:00:00Z", "mar01=2026-03-01T00:00:01Z"},
			p:    Policy{Monthly: 3},
			want: []string{"mar01:monthly", "feb28:monthly", "feb01:-", "jan31:monthly"},
		},
		{
			name: "yearly only",
			specs: []string{"a=2024-12-31T23:00:00Z", "b=2025-01-01T00:00:00Z",
				"c=2025-07-01T00:00:00Z", "d=2026-03-01T00:00:00Z"},
			p:    Policy{Yearly: 2},
			want: []string{"d:yearly", "c:yearly", "b:-", "a:-"},
		},
		{
			name: "within only",
			specs: []string{"future=2026-06-02T00:00:00Z", "edge=2026-05-25T12:00:00Z",
				"old=2026-05-25T11:59:59Z"},
			p:    Policy{Within: 7 * 24 * time.Hour},
			want: []string{"future:within", "edge:within", "old:-"},
		},
		{
			name:  "within keeps nothing when all are old",
			specs: tenDays[:2],
			p:     Policy{Within: time.Hour},
			want:  []string{"d02:-", "d01:-"},
		},
		{
			name:  "combination last daily weekly",
			specs: tenDays,
			p:     Policy{Last: 2, Daily: 3, Weekly: 2},
			want: []string{"d10:last+daily+weekly", "d09:last+daily", "d08:daily", "d07:-",
				"d06:-", "d05:-", "d04:-", "d03:weekly", "d02:-", "d01:-"},
		},
		{
			name:  "combination with within",
			specs: tenDays[:3],
			p:     Policy{Last: 1, Within: 30*24*time.Hour + 12*time.Hour},
			// cutoff 2026-05-02T00:00Z
			want: []string{"d03:last+within", "d02:within", "d01:-"},
		},
		{
			name: "several backups in one day",
			specs: []string{"a=2026-05-01T01:00:00Z", "b=2026-05-01T09:00:00Z",
				"c=2026-05-01T17:00:00Z", "d=2026-05-02T03:00:00Z", "e=2026-05-02T04:00:00Z"},
			p:    Policy{Daily: 5},
			want: []string{"e:daily", "d:-", "c:daily", "b:-", "a:-"},
		},
		{
			name: "gaps do not use up buckets",
			specs: []string{"a=2026-04-01T00:00:00Z", "b=2026-04-15T00:00:00Z",
				"c=2026-05-01T00:00:00Z", "d=2026-05-10T00:00:00Z"},
			p:    Policy{Daily: 3},
			want: []string{"d:daily", "c:daily", "b:daily", "a:-"},
		},
		{
			// 2026-12-31 Thu and 2027-01-01 Fri are both in ISO week 2026-W53;
			// 2027-01-04 Mon starts 2027-W01.
			name: "ISO week around New Year",
			specs: []string{"dec31=2026-12-31T12:00:00Z", "jan01=2027-01-01T12:00:00Z",
				"jan04=2027-01-04T12:00:00Z"},
			p:    Policy{Weekly: 5},
			want: []string{"jan04:weekly", "jan01:weekly", "dec31:-"},
		},
		{
			name: "New Year monthly and yearly differ from weekly",
			specs: []string{"dec31=2026-12-31T12:00:00Z", "jan01=2027-01-01T12:00:00Z",
				"jan04=2027-01-04T12:00:00Z"},
			p:    Policy{Monthly: 5, Yearly: 5},
			want: []string{"jan04:monthly+yearly", "jan01:-", "dec31:monthly+yearly"},
		},
		{
			name: "ISO week 2026-W01 starts in 2025",
			specs: []string{"dec28=2025-12-28T12:00:00Z", "dec29=2025-12-29T12:00:00Z",
				"jan02=2026-01-02T12:00:00Z"},
			p:    Policy{Weekly: 5},
			want: []string{"jan02:weekly", "dec29:-", "dec28:weekly"},
		},
		{
			name:  "time zone UTC: 22:00 and 23:30 UTC share a day",
			specs: []string{"early=2026-03-10T22:00:00Z", "late=2026-03-10T23:30:00Z"},
			p:     Policy{Daily: 5},
			loc:   time.UTC,
			want:  []string{"late:daily", "early:-"},
		},
		{
			name:  "time zone Berlin: 23:30 UTC is the next day",
			specs: []string{"early=2026-03-10T22:00:00Z", "late=2026-03-10T23:30:00Z"},
			p:     Policy{Daily: 5},
			loc:   berlin,
			want:  []string{"late:daily", "early:daily"},
		},
		{
			name:  "nil location means UTC",
			specs: []string{"early=2026-03-10T22:00:00Z", "late=2026-03-10T23:30:00Z"},
			p:     Policy{Daily: 5},
			loc:   nil,
			want:  []string{"late:daily", "early:-"},
		},
		{
			name: "groups are independent and sorted by name",
			specs: []string{"physical/p1=2026-05-01T00:00:00Z", "logical/l1=2026-05-01T00:00:00Z",
				"logical/l2=2026-05-02T00:00:00Z", "physical/p2=2026-05-01T06:00:00Z",
				"logical/l3=2026-05-03T00:00:00Z"},
			p: Policy{Last: 1, Daily: 2},
			want: []string{"logical/l3:last+daily", "logical/l2:daily", "logical/l1:-",
				"physical/p2:last+daily", "physical/p1:-"},
		},
		{
			name:  "N larger than number of items keeps all",
			specs: tenDays[:3],
			p:     Policy{Last: 100, Daily: 100, Weekly: 100, Monthly: 100, Yearly: 100},
			want: []string{"d03:last+daily+weekly+monthly+yearly", "d02:last+daily",
				"d01:last+daily"},
		},
		{
			name: "ties ordered by ID descending",
			specs: []string{"a=2026-05-01T00:00:00Z", "c=2026-05-01T00:00:00Z",
				"b=2026-05-01T00:00:00Z"},
			p:    Policy{Last: 1, Daily: 1},
			want: []string{"c:last+daily", "b:-", "a:-"},
		},
		{
			name:  "no items",
			specs: nil,
			p:     Policy{Last: 1},
			want:  nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := now
			if !tc.now.IsZero() {
				n = tc.now
			}
			in := items(t, tc.specs...)
			orig := slices.Clone(in)
			ds, err := Apply(in, tc.p, n, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(ds); !slices.Equal(got, tc.want) {
				t.Errorf("Apply(%v):\n got %q\nwant %q", tc.p, got, tc.want)
			}
			if !slices.Equal(in, orig) {
				t.Errorf("Apply modified its input")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		wantErr string // "" means valid
	}{
		{"empty", Policy{}, "at least one keep option is required"},
		{"negative last", Policy{Last: -1, Daily: 3}, "keep-last must not be negative"},
		{"negative daily", Policy{Daily: -1}, "keep-daily must not be negative"},
		{"negative weekly", Policy{Weekly: -2}, "keep-weekly must not be negative"},
		{"negative monthly", Policy{Monthly: -1}, "keep-monthly must not be negative"},
		{"negative yearly", Policy{Yearly: -1}, "keep-yearly must not be negative"},
		{"negative within", Policy{Last: 1, Within: -time.Hour}, "keep-within must not be negative"},
		{"last", Policy{Last: 1}, ""},
		{"within only", Policy{Within: time.Hour}, ""},
		{"all", Policy{1, 2, 3, 4, 5, time.Hour}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
			// Apply must refuse the same policy and return no decisions.
			ds, aerr := Apply([]Item{{ID: "x", Time: time.Unix(0, 0)}}, tc.p, time.Unix(0, 0), time.UTC)
			if aerr == nil || ds != nil {
				t.Fatalf("Apply with invalid policy = %v, %v; want nil, error", ds, aerr)
			}
		})
	}
	if err := (Policy{}).Validate(); !errors.Is(err, ErrEmptyPolicy) {
		t.Errorf("empty policy error %v is not ErrEmptyPolicy", err)
	}
}

func TestApplyDuplicateID(t *testing.T) {
	in := items(t, "a=2026-05-01T00:00:00Z", "a=2026-05-02T00:00:00Z")
	if _, err := Apply(in, Policy{Last: 1}, time.Time{}, time.UTC); err == nil {
		t.Fatal("duplicate ID in one group: want error")
	}
	// The same ID in different groups is fine.
	in = items(t, "x/a=2026-05-01T00:00:00Z", "y/a=2026-05-02T00:00:00Z")
	if _, err := Apply(in, Policy{Last: 1}, time.Time{}, time.UTC); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyString(t *testing.T) {
	tests := []struct {
		p    Policy
		want string
	}{
		{Policy{Last: 3, Daily: 7, Weekly: 4}, "last 3, daily 7, weekly 4"},
		{Policy{Monthly: 12, Yearly: 2}, "monthly 12, yearly 2"},
		{Policy{Last: 1, Within: 48 * time.Hour}, "last 1, within 48h0m0s"},
		{Policy{}, "none"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestApplyProperties checks Apply on random inputs against these
// assertions, per group:
//
//  1. every input item appears in exactly one decision; groups are in
//     ascending name order and, within a group, time descending then ID
//     descending;
//  2. Keep is true iff Reasons is non-empty; reasons are unique and in the
//     canonical order last, daily, weekly, monthly, yearly, within;
//  3. "last" is on exactly the min(Last, n) newest items;
//  4. for each calendar rule with count N: the number of items with that
//     reason is exactly min(N, distinct buckets in the group), the items
//     are in distinct buckets, each is the newest item of its bucket, and
//     no unselected bucket is newer than a selected one; hence the count
//     never exceeds N;
//  5. "within" is on exactly the items with Time >= now-Within;
//  6. if any of Last/Daily/Weekly/Monthly/Yearly is > 0, the group's
//     newest item is kept with every such reason; if only Within is set,
//     the newest item is kept iff its Time >= now-Within;
//  7. shuffling the input does not change the output.
func TestApplyProperties(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	locs := []*time.Location{time.UTC, berlin, time.FixedZone("X", -11*3600)}
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	for iter := 0; iter < 2000; iter++ {
		var p Policy
		for p.Validate() != nil {
			p = Policy{
				Last: rng.IntN(4), Daily: rng.IntN(8), Weekly: rng.IntN(5),
				Monthly: rng.IntN(6), Yearly: rng.IntN(3),
			}
			if rng.IntN(3) == 0 {
				p.Within = time.Duration(rng.IntN(90*24)) * time.Hour
			}
			if rng.IntN(4) == 0 { // sometimes a single rule only
				p = [...]Policy{{Last: p.Last}, {Daily: p.Daily}, {Weekly: p.Weekly},
					{Monthly: p.Monthly}, {Yearly: p.Yearly}, {Within: p.Within}}[rng.IntN(6)]
			}
		}
		loc := locs[rng.IntN(len(locs))]
		// Spread over ~3 years, sometimes clustered in a few days, with
		// duplicated timestamps.
		span := 3 * 365 * 24 * time.Hour
		if rng.IntN(3) == 0 {
			span = 5 * 24 * time.Hour
		}
		var in []Item
		for i, n := 0, rng.IntN(40); i < n; i++ {
			tm := base.Add(time.Duration(rng.Int64N(int64(span))))
			if len(in) > 0 && rng.IntN(8) == 0 {
				tm = in[rng.IntN(len(in))].Time
			}
			in = append(in, Item{
				ID:    fmt.Sprintf("id%03d", i),
				Time:  tm.Truncate(time.Minute),
				Group: []string{"", "logical", "physical"}[rng.IntN(3)],
			})
		}
		now := base.Add(time.Duration(rng.Int64N(int64(span + 30*24*time.Hour))))

		ds, err := Apply(in, p, now, loc)
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		ctx := fmt.Sprintf("iter %d policy %q loc %s", iter, p, loc)
		checkProperties(t, ctx, in, ds, p, now, loc)

		shuffled := slices.Clone(in)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		ds2, err := Apply(shuffled, p, now, loc)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(ds, ds2, func(a, b Decision) bool {
			return a.Item == b.Item && a.Keep == b.Keep && slices.Equal(a.Reasons, b.Reasons)
		}) {
			t.Fatalf("%s: result depends on input order", ctx)
		}
	}
}

func checkProperties(t *testing.T, ctx string, in []Item, ds []Decision, p Policy, now time.Time, loc *time.Location) {
	t.Helper()
	// 1. permutation and ordering.
	if len(ds) != len(in) {
		t.Fatalf("%s: %d decisions for %d items", ctx, len(ds), len(in))
	}
	count := map[Item]int{}
	for _, it := range in {
		count[it]++
	}
	for i, d := range ds {
		count[d.Item]--
		if i > 0 {
			a, b := ds[i-1].Item, d.Item
			ok := a.Group < b.Group || a.Group == b.Group &&
				(a.Time.After(b.Time) || a.Time.Equal(b.Time) && a.ID > b.ID)
			if !ok {
				t.Fatalf("%s: decisions %d,%d out of order: %v then %v", ctx, i-1, i, a, b)
			}
		}
	}
	for it, c := range count {
		if c != 0 {
			t.Fatalf("%s: item %v appears %d times too few", ctx, it, c)
		}
	}

	canon := []string{ReasonLast, ReasonDaily, ReasonWeekly, ReasonMonthly, ReasonYearly, ReasonWithin}
	keys := map[string]func(time.Time) string{
		ReasonDaily:   func(t time.Time) string { return t.In(loc).Format("2006-01-02") },
		ReasonWeekly:  func(t time.Time) string { y, w := t.In(loc).ISOWeek(); return fmt.Sprint(y, "-W", w) },
		ReasonMonthly: func(t time.Time) string { return t.In(loc).Format("2006-01") },
		ReasonYearly:  func(t time.Time) string { return t.In(loc).Format("2006") },
	}
	limits := map[string]int{ReasonDaily: p.Daily, ReasonWeekly: p.Weekly, ReasonMonthly: p.Monthly, ReasonYearly: p.Yearly}

	for start := 0; start < len(ds); {
		end := start + 1
		for end < len(ds) && ds[end].Item.Group == ds[start].Item.Group {
			end++
		}
		g := ds[start:end]
		gctx := fmt.Sprintf("%s group %q", ctx, g[0].Item.Group)
		has := func(d Decision, r string) bool { return slices.Contains(d.Reasons, r) }

		// 2. Keep iff reasons; canonical order, unique.
		for _, d := range g {
			if d.Keep != (len(d.Reasons) > 0) {
				t.Fatalf("%s: %v Keep=%v with reasons %v", gctx, d.Item, d.Keep, d.Reasons)
			}
			last := -1
			for _, r := range d.Reasons {
				i := slices.Index(canon, r)
				if i <= last {
					t.Fatalf("%s: reasons %v not unique/canonical", gctx, d.Reasons)
				}
				last = i
			}
		}
		// 3. last.
		for i, d := range g {
			if want := i < p.Last; has(d, ReasonLast) != want {
				t.Fatalf("%s: item %d has last=%v, want %v", gctx, i, !want, want)
			}
		}
		// 4. calendar rules.
		for r, key := range keys {
			n := limits[r]
			newest := map[string]int{} // bucket -> index of its newest item
			var order []string         // buckets, newest first
			for i, d := range g {
				k := key(d.Item.Time)
				if _, ok := newest[k]; !ok {
					newest[k] = i
					order = append(order, k)
				}
			}
			selected := map[string]bool{}
			for i, d := range g {
				if !has(d, r) {
					continue
				}
				k := key(d.Item.Time)
				if selected[k] {
					t.Fatalf("%s: two %s items in bucket %s", gctx, r, k)
				}
				selected[k] = true
				if newest[k] != i {
					t.Fatalf("%s: %s item %v is not the newest of bucket %s", gctx, r, d.Item, k)
				}
			}
			if want := min(n, len(order)); len(selected) != want {
				t.Fatalf("%s: %d %s items, want %d (N=%d)", gctx, len(selected), r, want, n)
			}
			for i, k := range order {
				if selected[k] != (i < len(selected)) {
					t.Fatalf("%s: %s did not select the newest buckets: %v", gctx, r, order)
				}
			}
		}
		// 5. within.
		for _, d := range g {
			want := p.Within > 0 && !d.Item.Time.Before(now.Add(-p.Within))
			if has(d, ReasonWithin) != want {
				t.Fatalf("%s: %v within=%v, want %v", gctx, d.Item, !want, want)
			}
		}
		// 6. the newest item.
		top := g[0]
		if p.Last > 0 || p.Daily > 0 || p.Weekly > 0 || p.Monthly > 0 || p.Yearly > 0 {
			for r, n := range map[string]int{ReasonLast: p.Last, ReasonDaily: p.Daily,
				ReasonWeekly: p.Weekly, ReasonMonthly: p.Monthly, ReasonYearly: p.Yearly} {
				if n > 0 && !has(top, r) {
					t.Fatalf("%s: newest item %v lacks reason %s", gctx, top.Item, r)
				}
			}
			if !top.Keep {
				t.Fatalf("%s: newest item %v not kept", gctx, top.Item)
			}
		} else if want := !top.Item.Time.Before(now.Add(-p.Within)); top.Keep != want {
			t.Fatalf("%s: within-only newest item kept=%v, want %v", gctx, top.Keep, want)
		}
		start = end
	}
}
