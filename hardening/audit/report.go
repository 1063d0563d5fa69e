package audit

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// SchemaVersion is the version of the [Report] JSON layout. It changes
// when a field is removed or changes meaning; new fields do not change it.
const SchemaVersion = 1

// Report is the outcome of a run, as `harden audit --json` prints it.
type Report struct {
	SchemaVersion int       `json:"schema_version"`
	Tool          string    `json:"tool"`
	ToolVersion   string    `json:"tool_version"`
	Host          string    `json:"host"`
	Time          time.Time `json:"time"`
	Profile       string    `json:"profile"`
	Server        struct {
		Flavor  Flavor `json:"flavor"`
		Version string `json:"version"`
	} `json:"server"`
	Summary  Summary   `json:"summary"`
	Findings []Finding `json:"findings"`
}

// Summary counts the findings by result.
type Summary struct {
	Total         int `json:"total"`
	Pass          int `json:"pass"`
	Warn          int `json:"warn"`
	Fail          int `json:"fail"`
	Error         int `json:"error"`
	NotApplicable int `json:"not_applicable"`
}

func (r *Report) summarize() {
	fs := r.Findings
	r.Summary = Summary{Total: len(fs), Pass: Count(fs, Pass), Warn: Count(fs, Warn), Fail: Count(fs, Fail),
		Error: Count(fs, Error), NotApplicable: Count(fs, NotApplicable)}
}

// matches reports whether a name from Only/Skip names check c (by ID, or
// by its CIS id for the flavor, or for either flavor when unknown).
func matches(c Check, name string, f Flavor) bool {
	if name == c.ID {
		return true
	}
	for _, fl := range []Flavor{MariaDB, MySQL} {
		if (f == "" || f == fl) && c.cis(fl) != nil && c.cis(fl).ID == name {
			return true
		}
	}
	return false
}

func validSelection(t Target) error {
	switch t.Profile {
	case "", "cis-level1", "cis-level2", "mysecure":
	default:
		return fmt.Errorf("%w: profile %q (profiles: %s)", ErrProfile, t.Profile, strings.Join(Profiles, ", "))
	}
	for _, n := range append(append([]string(nil), t.Only...), t.Skip...) {
		found := false
		for _, c := range checks {
			if matches(c.Check, n, "") {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: no check %q", ErrProfile, n)
		}
	}
	return nil
}

// selected reports whether the profile, Only and Skip keep check c.
func selected(c Check, t Target, f Flavor) bool {
	if f == "" {
		f = MariaDB
	}
	ref := c.cis(f)
	switch t.Profile {
	case "cis-level1":
		if ref == nil || ref.Level != 1 {
			return false
		}
	case "cis-level2":
		if ref == nil {
			return false
		}
	}
	if len(t.Only) > 0 {
		ok := false
		for _, n := range t.Only {
			ok = ok || matches(c, n, f)
		}
		if !ok {
			return false
		}
	}
	for _, n := range t.Skip {
		if matches(c, n, f) {
			return false
		}
	}
	return true
}

// ErrFailed: a check failed or could not run (warnings do not count).
var ErrFailed = errors.New("audit checks failed")

// Err is ErrFailed with the counts when a check failed or could not run,
// else nil.
func (r *Report) Err() error {
	s := r.Summary
	if s.Fail+s.Error == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d failed, %d could not run, of %d", ErrFailed, s.Fail, s.Error, s.Total)
}

// Stamp records which tool made the report, on which host, and now.
func (r *Report) Stamp(tool, version string) {
	r.Tool, r.ToolVersion, r.Time = tool, version, time.Now().UTC()
	r.Host, _ = os.Hostname()
}
