package schedule

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/mysecure/mysecure/backup"
)

// The edits of `schedule add`, `remove`, `install` and `uninstall` to the
// config file (EditConfig keeps the rest of it as written).

// AddJob adds j to the schedules of the config file. A job of the same
// name is an error wrapping os.ErrExist unless replace is set; a job it
// replaces that existing (the configuration in force) hands to system
// cron stays there.
func AddJob(file string, j Job, replace bool, existing []Job) error {
	return EditConfig(file, func(seq *yaml.Node) error {
		for i, n := range seq.Content {
			if JobNameOf(n) == j.Name {
				if !replace {
					return fmt.Errorf("%w: a job named %s exists in %s", os.ErrExist, j.Name, file)
				}
				if old, err := Find(existing, j.Name); err == nil && old.System {
					j.System = true
				}
				seq.Content[i] = JobNode(j)
				return nil
			}
		}
		seq.Content = append(seq.Content, JobNode(j))
		return nil
	})
}

// RemoveJob removes the job called name from the config file; one that
// is not there is an error wrapping backup.ErrNotFound.
func RemoveJob(file, name string) error {
	return EditConfig(file, func(seq *yaml.Node) error {
		for i, n := range seq.Content {
			if JobNameOf(n) == name {
				seq.Content = append(seq.Content[:i], seq.Content[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("%w: job %s is not in %s", backup.ErrNotFound, name, file)
	})
}

// MarkSystem sets (on) or clears "system: true" on the named jobs of the
// config file (all when names is empty): the daemon's scheduler leaves
// such jobs to system cron or systemd.
func MarkSystem(file string, names map[string]bool, on bool) error {
	return EditConfig(file, func(seq *yaml.Node) error { SetSystemFlag(seq, names, on); return nil })
}

// ErrNoConfigFile: the schedules are not in a config file, so system
// cron could not find them.
var ErrNoConfigFile = errors.New("the schedules must be in a config file that system cron can read")

// NewInvocation is how system cron or systemd runs this executable (its
// symlinks resolved) on the jobs of configFile, appending their output
// to logFile, unlocking with keyFile ("" for none; made absolute) when no
// daemon runs. An empty configFile is ErrNoConfigFile.
func NewInvocation(configFile, logFile, keyFile string) (Invocation, error) {
	exe, err := os.Executable()
	if err != nil {
		return Invocation{}, err
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	inv := Invocation{Binary: exe, Config: configFile, Log: logFile}
	if configFile == "" {
		return inv, ErrNoConfigFile
	}
	if keyFile != "" {
		abs, err := filepath.Abs(keyFile)
		if err != nil {
			return inv, err
		}
		inv.Extra = []string{"--keyfile", abs}
	}
	return inv, nil
}
