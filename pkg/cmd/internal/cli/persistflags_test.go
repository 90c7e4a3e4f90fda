package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func TestPersistFlags(t *testing.T) {
	for name, c := range map[string]struct {
		flags PersistFlags
		want  string // error, or "" for none
		size  string // the workspace's, or "" for none
	}{
		"disposable":          {PersistFlags{}, "", ""},
		"default size":        {PersistFlags{Persist: sandbox.DefaultWorkspaceSize.String()}, "", "10Gi"},
		"size, class, retain": {PersistFlags{Persist: "5Gi", StorageClass: "fast", Retain: time.Hour}, "", "5Gi"},
		"class alone":         {PersistFlags{StorageClass: "fast"}, "--storage-class needs --persist", ""},
		"retain alone":        {PersistFlags{Retain: time.Hour}, "--retain needs --persist", ""},
		"not a size":          {PersistFlags{Persist: "lots"}, `--persist "lots" is not a valid quantity`, ""},
		"zero":                {PersistFlags{Persist: "0"}, `--persist "0" must be greater than zero`, ""},
	} {
		s := sandbox.NewSpec("x", "ns")
		err := c.flags.Apply(&s)
		switch {
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", name, err, c.want)
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.size == "" && s.Workspace != nil:
			t.Errorf("%s: a workspace was made: %+v", name, s.Workspace)
		case c.size != "" && (s.Workspace == nil || s.Workspace.Size.String() != c.size || s.Workspace.StorageClass != c.flags.StorageClass || s.Workspace.Retain != c.flags.Retain):
			t.Errorf("%s: workspace %+v", name, s.Workspace)
		}
	}
}
