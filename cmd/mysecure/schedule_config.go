package main

import (
	"os"

	"github.com/mysecure/mysecure/internal/config"
)

// The `schedule add|remove` commands edit the config file in place with
// schedule.EditConfig.

// configFileForEdit is the file schedules are written to: the one read,
// else --config / $MYSECURE_CONFIG, else the default path.
func (g *globalOptions) configFileForEdit() string {
	return config.FileForEdit(g.cfg.File, g.ConfigFile, os.Getenv("MYSECURE_CONFIG"), defaultConfigFile)
}
