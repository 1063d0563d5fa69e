package engine

import "github.com/mysecure/mysecure/internal/plan"

// paramBackupTool is the state file's record of the physical backup tool
// that 'engine enable' gave a rule on the key file ("" for none).
const paramBackupTool = "backup_tool"

// Params are what 'engine enable' records in its state file with the
// steps it applied, so that 'engine status' and later runs plan the same
// rules as the run that enabled engine mode.
func (o *Options) Params() map[string]string {
	return map[string]string{paramBackupTool: o.BackupTool}
}

// RecordedParams returns the parameters recorded in the state file (nil
// when there is none, or it was written by a mysecure that recorded none).
// 'engine disable' records them again with its own runs.
func (o *Options) RecordedParams() (map[string]string, error) {
	st, err := plan.LoadState(o.StatePath)
	if err != nil || st == nil {
		return nil, err
	}
	return st.Params, nil
}

// UseRecorded sets the options that 'engine enable' recorded in the state
// file (the backup tool, also when it was none) and reports whether there
// was a record.
func (o *Options) UseRecorded() (bool, error) {
	p, err := o.RecordedParams()
	if err != nil {
		return false, err
	}
	tool, ok := p[paramBackupTool]
	if ok {
		o.BackupTool = tool
	}
	return ok, nil
}
