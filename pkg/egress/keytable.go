package egress

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// KeyTable gives the proxy a Pod's row of the model-key table. ok is false
// when the table has no row for the Pod; an error says why a row cannot
// be used (it does not decode).
type KeyTable interface {
	Entry(pod string) (e keys.Entry, ok bool, err error)
}

// SecretKeys keeps the namespace's key table (the one Secret
// keys.SecretName) from a watch of that Secret alone: a field selector on
// its name, which RBAC authorizes by resourceNames, so the proxy's Role
// names this Secret and may read no other.
type SecretKeys struct {
	informer  cache.SharedIndexInformer
	namespace string
}

// NewSecretKeys watches the key table of namespace. Run it, and wait for
// HasSynced: until then every lookup finds no row.
func NewSecretKeys(cs kubernetes.Interface, namespace string) *SecretKeys {
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector(metav1.ObjectNameField, keys.SecretName).String()
		}))
	inf := factory.Core().V1().Secrets().Informer()
	// Keep the data alone; errors only if the informer already started.
	_ = inf.SetTransform(func(obj any) (any, error) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return obj, nil
		}
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, ResourceVersion: s.ResourceVersion}, Data: s.Data}, nil
	})
	return &SecretKeys{informer: inf, namespace: namespace}
}

// Run watches until ctx ends.
func (k *SecretKeys) Run(ctx context.Context) { k.informer.RunWithContext(ctx) }

// HasSynced reports whether the first list has been read.
func (k *SecretKeys) HasSynced() bool { return k.informer.HasSynced() }

// WaitForSync blocks until the first list has been read or ctx ends.
func (k *SecretKeys) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), k.informer.HasSynced) {
		return fmt.Errorf("the watch of the key table (Secret %s) did not sync: %w", keys.SecretName, context.Cause(ctx))
	}
	return nil
}

// Entry decodes the Pod's row. The Secret may be patched by whoever may
// patch it: a row that does not decode is refused, with why.
func (k *SecretKeys) Entry(pod string) (keys.Entry, bool, error) {
	obj, ok, err := k.informer.GetIndexer().GetByKey(k.namespace + "/" + keys.SecretName)
	if err != nil || !ok {
		return keys.Entry{}, false, err
	}
	s, _ := obj.(*corev1.Secret)
	if s == nil {
		return keys.Entry{}, false, nil
	}
	b, ok := s.Data[pod]
	if !ok {
		return keys.Entry{}, false, nil
	}
	e, err := keys.Decode(b)
	if err != nil {
		return keys.Entry{}, true, err
	}
	return e, true, nil
}
