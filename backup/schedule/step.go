package schedule

import (
	"context"
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/mysecure/mysecure/backup"
)

// ConfigJobs reads the jobs of a configuration file (none when the file
// does not exist). Other settings are ignored.
func ConfigJobs(path string) ([]Job, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c struct {
		Schedules []Job `yaml:"schedules"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return c.Schedules, nil
}

// Step is a plan step (package internal/plan) that adds a job to the
// configuration file; Undo removes it. Check finds a job of that name;
// one changed by hand since is left as it is.
type Step struct {
	ConfigFile string
	Job        Job
}

func (s *Step) ID() string { return "schedule:" + s.Job.Name }
func (s *Step) Describe() string {
	d := fmt.Sprintf("add schedule %s (%q", s.Job.Name, s.Job.Schedule)
	if s.Job.Type != "" {
		d += ", " + s.Job.Type
	}
	if p, ok := s.Job.Retention.Policy(); ok {
		d += ", keep " + p.String()
	}
	return d + ") to " + s.ConfigFile
}

func (s *Step) Check(context.Context) (bool, string, error) {
	if err := s.Job.Validate(); err != nil {
		return false, "", err
	}
	jobs, err := ConfigJobs(s.ConfigFile)
	if err != nil {
		return false, "", err
	}
	if _, err := Find(jobs, s.Job.Name); err != nil {
		return false, fmt.Sprintf("schedule missing: %s is not in %s", s.Job.Name, s.ConfigFile), nil
	}
	return true, "", nil
}

func (s *Step) Apply(context.Context) error {
	if err := s.Job.Validate(); err != nil {
		return err
	}
	return AddJob(s.ConfigFile, s.Job, false, nil)
}

func (s *Step) Undo(context.Context) error {
	if err := RemoveJob(s.ConfigFile, s.Job.Name); !errors.Is(err, backup.ErrNotFound) {
		return err
	}
	return nil
}
