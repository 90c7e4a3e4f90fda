package cmd

import (
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/english"
)

// The kubectl packages this package links call i18n.T at init; if one ran
// before package english, every start-up would parse a translation catalog
// again (≈20–50 ms, 4.4 MB).
func TestNoTranslationCatalogAtStartup(t *testing.T) {
	if english.Err != nil {
		t.Fatalf("kubectl's i18n loaded its catalog before package english replaced the loader: %v", english.Err)
	}
}
