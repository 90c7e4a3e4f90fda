package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
)

// FromPreset fills the persistence flags the user did not give from the
// --agent preset (persist, storageClass, retain), so a preset can say its
// sandboxes keep their work. Flags win: --persist=SIZE resizes, --persist=
// (empty) makes a disposable sandbox of a preset that persists, and the
// preset's class and retention apply only to a sandbox that persists.
// The preset's values were checked when its file was read (pkg/agents),
// as the flags' are.
func (p *PersistFlags) FromPreset(cmd *cobra.Command, preset *agents.Preset) error {
	if preset == nil {
		return nil
	}
	fl := cmd.Flags()
	if !fl.Changed("persist") && preset.Persist != "" {
		p.Persist = preset.Persist
		p.fromPreset = fmt.Sprintf("--agent %s's persist (from %s; --persist= for a disposable sandbox)", preset.Name, preset.Source)
	}
	if p.Persist == "" {
		return nil
	}
	if !fl.Changed("storage-class") && preset.StorageClass != "" {
		p.StorageClass = preset.StorageClass
	}
	if !fl.Changed("retain") && preset.Retain != "" {
		d, err := time.ParseDuration(preset.Retain)
		if err != nil {
			return fmt.Errorf("--agent %s's retain %q (from %s) is not a duration (examples: 168h, 30m)", preset.Name, preset.Retain, preset.Source)
		}
		p.Retain = d
	}
	return nil
}

// What names what made the sandbox persistent, for messages: --persist,
// or the preset's persist field.
func (p *PersistFlags) What() string {
	if p.fromPreset != "" {
		return p.fromPreset
	}
	return "--persist"
}
