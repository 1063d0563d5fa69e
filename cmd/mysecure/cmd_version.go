package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

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

func currentVersionInfo() versionInfo {
	return versionInfo{currentVersion(), runtime.Version(), volume.ConfigVersion, content.Version}
}

// line is the one line `mysecure version` and `mysecure --version` print.
func (v versionInfo) line() string {
	return fmt.Sprintf("mysecure %s (%s, volume format %d, content format %d)", v.Version, v.GoVersion, v.VolumeFormat, v.ContentFormat)
}

// setVersionFlag makes `mysecure --version` print what `mysecure
// version` prints (cobra's flag, with our line as its template).
func setVersionFlag(root *cobra.Command) {
	line := currentVersionInfo().line()
	root.Version = currentVersion()
	root.SetVersionTemplate(strings.NewReplacer("{{", "{{`{{`}}").Replace(line) + "\n")
}

func newVersionCommand(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and the formats this build reads and writes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := currentVersionInfo()
			if asJSON {
				return g.p.json(v)
			}
			fmt.Fprintln(g.p.out, v.line())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
