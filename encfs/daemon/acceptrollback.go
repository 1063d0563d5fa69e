package daemon

import (
	"path/filepath"

	"github.com/mysecure/mysecure/encfs/rollback"
	"github.com/mysecure/mysecure/encfs/volume"
)

// Accepted is a file whose generation AcceptRollback recorded.
type Accepted struct {
	Path       string
	Generation uint64
	// Previous is the last generation seen before (0: none).
	Previous uint64
}

// AcceptRollback records the generations of v's config and rule file in
// d as the last seen, lower or not (an older store put back on purpose).
// It needs a master credential (a key file cannot make the host forget a
// removed slot or rule) and checks the rule file with it before recording
// anything. It returns the files recorded so far with an error.
func AcceptRollback(d *rollback.Dir, v *volume.Volume, k *volume.Keys) ([]Accepted, error) {
	if err := k.RequireMaster(); err != nil {
		return nil, err
	}
	rs, err := LoadRules(v.Dir, k)
	if err != nil {
		return nil, err
	}
	var out []Accepted
	for _, f := range []Accepted{
		{Path: volume.ConfigPath(v.Dir), Generation: v.Config.Generation},
		{Path: filepath.Join(v.Dir, RulesFile), Generation: rs.Generation},
	} {
		if f.Previous, err = d.Accept(v.Config.VolumeID, f.Path, f.Generation); err != nil {
			return out, err
		}
		out = append(out, f)
	}
	return out, nil
}
