package main

import "os"

// The `schedule add|remove` commands edit the config file in place with
// schedule.EditConfig.

// configFileForEdit is the file schedules are written to: the one read,
// else --config / $MYSECURE_CONFIG, else the default path.
func (g *globalOptions) configFileForEdit() string {
	if g.cfg.file != "" {
		return g.cfg.file
	}
	if g.ConfigFile != "" {
		return g.ConfigFile
	}
	if env := os.Getenv("MYSECURE_CONFIG"); env != "" {
		return env
	}
	return defaultConfigFile
}
