package backup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mysecure/mysecure/backup/retention"
)

// PruneOptions select what prune deletes.
type PruneOptions struct {
	Policy retention.Policy `json:"policy"`
	DryRun bool             `json:"dry_run"`
	// Job limits pruning to the backups of one schedule.
	Job string `json:"job,omitempty"`
	// Location names the time zone of daily/weekly/monthly buckets
	// (default UTC).
	Location string `json:"location,omitempty"`
	// Target is the catalog to prune ("" or "local": the store; else an
	// object store of Service.Remotes).
	Target string `json:"target,omitempty"`
}

// PruneDecision is one backup's fate.
type PruneDecision struct {
	ID      string   `json:"id"`
	Group   string   `json:"group"`
	Started string   `json:"started"`
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons,omitempty"`
	Deleted bool     `json:"deleted,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Prune applies a retention policy to the catalog. Backups are grouped by
// type and job; each group keeps what the policy says.
func (s *Service) Prune(o PruneOptions) ([]PruneDecision, error) {
	if o.Target != "" && o.Target != LocalTarget {
		res, err := s.doRemote(context.Background(), Request{Op: OpPrune, Prune: &o, Target: o.Target})
		d, _ := res.([]PruneDecision)
		return d, err
	}
	entries, _, err := s.List()
	if err != nil {
		return nil, err
	}
	return s.prune(o, entries, s.Delete, nil)
}

// prune applies o to entries. lockedUntil (nil: no locks) says until when
// a retention lock holds a backup: prune keeps it until then, whatever
// the policy says.
func (s *Service) prune(o PruneOptions, entries []Entry, del func(id string) error, lockedUntil func(id string) (time.Time, error)) ([]PruneDecision, error) {
	if err := o.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	loc := time.UTC
	if o.Location != "" {
		l, err := time.LoadLocation(o.Location)
		if err != nil {
			return nil, usageErr("time zone %q: %v", o.Location, err)
		}
		loc = l
	}
	var items []retention.Item
	for _, e := range entries {
		if o.Job != "" && e.Job != o.Job {
			continue
		}
		// One group per kind of backup: a one-database dump must not
		// count against (and push out) the full dumps.
		g := e.Type
		if len(e.Databases) > 0 {
			g += "[" + strings.Join(e.Databases, ",") + "]"
		}
		if e.Job != "" {
			g += "/" + e.Job
		}
		items = append(items, retention.Item{ID: e.ID, Time: e.Started, Group: g})
	}
	decs, err := retention.Apply(items, o.Policy, s.now(), loc)
	if err != nil {
		return nil, err
	}
	out := make([]PruneDecision, 0, len(decs))
	var failed int
	for _, d := range decs {
		pd := PruneDecision{ID: d.Item.ID, Group: d.Item.Group, Started: d.Item.Time.Format(time.RFC3339), Keep: d.Keep, Reasons: d.Reasons}
		if !d.Keep && lockedUntil != nil {
			until, err := lockedUntil(d.Item.ID)
			switch {
			case err != nil:
				pd.Keep = true
				pd.Error = err.Error()
				failed++
			case until.After(s.now()):
				pd.Keep = true
				pd.Reasons = append(pd.Reasons, "object lock until "+until.UTC().Format(time.RFC3339))
			}
		}
		if !pd.Keep && !o.DryRun {
			if err := del(d.Item.ID); err != nil {
				pd.Error = err.Error()
				failed++
			} else {
				pd.Deleted = true
			}
		}
		out = append(out, pd)
	}
	if failed > 0 {
		return out, fmt.Errorf("%d backups could not be deleted", failed)
	}
	return out, nil
}
