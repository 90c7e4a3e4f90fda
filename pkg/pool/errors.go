package pool

import (
	"fmt"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// PoolNotFoundError: no pool of that name in the namespace.
type PoolNotFoundError struct {
	Name, Namespace string
}

func (e *PoolNotFoundError) Error() string {
	return fmt.Sprintf("pool %q not found in namespace %q", e.Name, e.Namespace)
}

// NextStep: see which pools there are, or make this one.
func (e *PoolNotFoundError) NextStep() field.Step {
	return field.Step{Hint: field.HintListPools, Name: e.Name, Namespace: e.Namespace}
}

// PoolExistsError: pool create was asked for a name already taken.
type PoolExistsError struct {
	Name, Namespace string
}

func (e *PoolExistsError) Error() string {
	return fmt.Sprintf("pool %q already exists in namespace %q", e.Name, e.Namespace)
}

// NextStep: resize it, or delete it first.
func (e *PoolExistsError) NextStep() field.Step {
	return field.Step{Hint: field.HintPoolExists, Name: e.Name, Namespace: e.Namespace}
}

// NotAPoolError: a PodTemplate with a pool's name exists, but this plugin
// did not make it. The plugin never touches it.
type NotAPoolError struct {
	Name, Namespace, TemplateName string
}

func (e *NotAPoolError) Error() string {
	return fmt.Sprintf("podtemplate %q in namespace %q exists and was not made by %s as a pool; pick another pool name",
		e.TemplateName, e.Namespace, sandbox.Product)
}
