package pool

import (
	"context"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Reading pools back from the cluster: one by name, or all of a
// namespace.

// GetPool reads the definition of pool name.
func GetPool(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*Pool, error) {
	t, err := cs.CoreV1().PodTemplates(namespace).Get(ctx, PoolTemplateName(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &PoolNotFoundError{Name: name, Namespace: namespace}
	}
	if err != nil {
		return nil, err
	}
	return PoolFromTemplate(t)
}

// ListPools returns the pools in namespace ("" for all). A PodTemplate of
// ours that does not parse is reported in errs, and the others still listed.
func ListPools(ctx context.Context, cs kubernetes.Interface, namespace string) (pools []*Pool, errs []error, err error) {
	list, err := cs.CoreV1().PodTemplates(namespace).List(ctx, metav1.ListOptions{LabelSelector: sandbox.ManagedSelector + "," + sandbox.LabelPool})
	if err != nil {
		return nil, nil, err
	}
	for i := range list.Items {
		p, err := PoolFromTemplate(&list.Items[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pools = append(pools, p)
	}
	sort.Slice(pools, func(i, j int) bool {
		if pools[i].Namespace != pools[j].Namespace {
			return pools[i].Namespace < pools[j].Namespace
		}
		return pools[i].Name < pools[j].Name
	})
	return pools, errs, nil
}

// poolSelector selects the Pods of a pool: warm members and, unless
// onlyWarm, sandboxes claimed from it.
func poolSelector(pool string, onlyWarm bool) string {
	return poolLabels(pool, onlyWarm).String()
}

// poolLabels is poolSelector as a Selector, for a caller that adds to it.
func poolLabels(pool string, onlyWarm bool) labels.Selector {
	sel := labels.SelectorFromSet(labels.Set{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelPool: pool})
	if onlyWarm {
		req, _ := labels.NewRequirement(sandbox.LabelSandbox, selection.DoesNotExist, nil)
		sel = sel.Add(*req)
	}
	return sel
}
