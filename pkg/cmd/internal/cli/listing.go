package cli

import (
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// ListNamespace is the namespace a command that reads many objects works
// in: the current one, or every one with -A (allNamespaces).
func (c *Clients) ListNamespace(allNamespaces bool) string {
	if allNamespaces {
		return metav1.NamespaceAll
	}
	return c.Namespace
}

// NoneFound tells errOut that a listing found no objects of a kind (plural:
// "sandboxes", "pools"), in kubectl get's words: stdout stays empty, for
// scripts.
func NoneFound(errOut io.Writer, plural string, allNamespaces bool, namespace string) error {
	if allNamespaces {
		_, err := fmt.Fprintf(errOut, "No %s found.\n", plural)
		return err
	}
	_, err := fmt.Fprintf(errOut, "No %s found in %s namespace.\n", plural, namespace)
	return err
}

// ValidateSandboxNames checks the names a command that takes sandboxes
// by name (suspend, resume) was given: at least one, each valid.
func ValidateSandboxNames(names []string, verb string) error {
	if len(names) == 0 {
		return fmt.Errorf("name the sandboxes to %s (list them with: kubectl agentkernel list)", verb)
	}
	for _, n := range names {
		if err := sandbox.ValidateName(n); err != nil {
			return err
		}
	}
	return nil
}
