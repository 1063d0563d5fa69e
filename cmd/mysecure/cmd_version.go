package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/mysecure/mysecure/encfs/content"
	"github.com/mysecure/mysecure/encfs/volume"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

type versionInfo struct {
	Version       string `json:"version"`
	GoVersion     string `json:"go_version"`
	VolumeFormat  int    `json:"volume_format"`
	ContentFormat int    `json:"content_format"`
}

func currentVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newVersionCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and the formats this build reads and writes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := versionInfo{currentVersion(), runtime.Version(), volume.ConfigVersion, content.Version}
			if asJSON {
				return g.p.json(v)
			}
			fmt.Fprintf(g.p.out, "mysecure %s (%s, volume format %d, content format %d)\n", v.Version, v.GoVersion, v.VolumeFormat, v.ContentFormat)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
