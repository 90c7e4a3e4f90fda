package pool

import (
	"fmt"
)

// PoolNotFoundError: no pool of that name in the namespace.
type PoolNotFoundError struct {
	Name, Namespace string
}

func (e *PoolNotFoundError) Error() string {
	return fmt.Sprintf("pool %q not found in namespace %q; list them with: kubectl agentkernel pool list -A, or make it with: kubectl agentkernel pool create %s --size N",
		e.Name, e.Namespace, e.Name)
}

// PoolExistsError: pool create was asked for a name already taken.
type PoolExistsError struct {
	Name, Namespace string
}

func (e *PoolExistsError) Error() string {
	return fmt.Sprintf("pool %q already exists in namespace %q; resize it with: kubectl agentkernel pool scale %s --size N -n %s, or delete it first: kubectl agentkernel pool delete %s -n %s",
		e.Name, e.Namespace, e.Name, e.Namespace, e.Name, e.Namespace)
}

// NotAPoolError: a PodTemplate with a pool's name exists, but this plugin
// did not make it. The plugin never touches it.
type NotAPoolError struct {
	Name, Namespace, TemplateName string
}

func (e *NotAPoolError) Error() string {
	return fmt.Sprintf("podtemplate %q in namespace %q exists and was not made by kubectl agentkernel as a pool; pick another pool name",
		e.TemplateName, e.Namespace)
}
