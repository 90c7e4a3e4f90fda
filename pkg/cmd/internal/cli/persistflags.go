package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// PersistFlags make a sandbox persistent: its /workspace and $HOME live
// on a PersistentVolumeClaim that outlives its Pods (suspend, resume, TTL
// and idle timeout end compute, not work). create and run take them.
type PersistFlags struct {
	// Persist is the workspace's size; "" makes a disposable sandbox.
	Persist      string
	StorageClass string
	Retain       time.Duration

	// fromPreset names where Persist came from when an --agent preset set
	// it (FromPreset), for messages; "" when it is the flag's.
	fromPreset string
}

// AddFlags registers --persist[=SIZE], --storage-class and --retain.
func (p *PersistFlags) AddFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&p.Persist, "persist", p.Persist, "Keep /workspace and $HOME on a PersistentVolumeClaim of this size that outlives the sandbox's Pod: suspend/resume, and a TTL or idle timeout suspends instead of losing work (--persist alone: "+sandbox.DefaultWorkspaceSize.String()+")")
	fl.Lookup("persist").NoOptDefVal = sandbox.DefaultWorkspaceSize.String()
	fl.StringVar(&p.StorageClass, "storage-class", p.StorageClass, "With --persist: the workspace's StorageClass (default: the cluster's default; doctor shows it)")
	fl.DurationVar(&p.Retain, "retain", p.Retain, "With --persist: how long a suspended workspace is kept before gc deletes it (e.g. 168h; 0: until deleted)")
}

// Apply puts the workspace into s, or refuses the persistence flags
// without --persist.
func (p *PersistFlags) Apply(s *sandbox.Spec) error {
	if p.Persist == "" {
		switch {
		case p.StorageClass != "":
			return fmt.Errorf("--storage-class needs --persist: a disposable sandbox has no workspace to put in a class")
		case p.Retain != 0:
			return fmt.Errorf("--retain needs --persist: a disposable sandbox keeps nothing to retain")
		}
		return nil
	}
	size, err := sandbox.ParseQuantity(p.What(), p.Persist)
	if err != nil {
		return err
	}
	s.Workspace = &sandbox.Workspace{Size: size, StorageClass: p.StorageClass, Retain: p.Retain}
	return nil
}

// ClaimMatch are the workspace fields a claim from a pool (--pool) insists
// on: --storage-class when given, and --persist when given a size other
// than the default (bare --persist takes the pool's size).
func (p *PersistFlags) ClaimMatch(cmd *cobra.Command) []string {
	var match []string
	if p.Persist != "" && p.Persist != sandbox.DefaultWorkspaceSize.String() {
		match = append(match, "workspaceSize")
	}
	if cmd.Flags().Changed("storage-class") {
		match = append(match, "storageClass")
	}
	return match
}
