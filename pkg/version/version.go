// Package version holds the build's identity. goreleaser sets these with
// -ldflags -X; a plain `go build` leaves the defaults, and `go install …@vX`
// is recognised from the module's build info.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set by -ldflags "-X github.com/agentkernel/kubectl-agentkernel/pkg/version.version=…".
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// Info describes this binary. Its JSON form is what `version -o json` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Date      string `json:"date,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the version of the running binary.
func Get() Info {
	info := Info{
		Version:   version,
		Commit:    commit,
		Date:      date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		// `go install …@v1.2.3` sets no ldflags but records the module version.
		if info.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if info.Commit == "" {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					info.Commit = s.Value
				}
			}
		}
	}
	return info
}
