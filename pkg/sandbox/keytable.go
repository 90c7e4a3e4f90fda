package sandbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// The key table (keys.SecretName) holds one entry per sandbox Pod whose
// model keys the egress proxy injects. Many clients write it at once, so
// nothing here reads it before writing: an entry is added with a JSON
// merge patch of its own key alone, and removed with a JSON patch that
// first tests the entry is the one this client means (its exact value),
// so a sandbox of the same name made meanwhile never loses its entry.

// KeyEntry is an entry as written: what removing exactly it needs.
type KeyEntry struct {
	Namespace, Pod string
	// value is the entry's stored bytes.
	value []byte
}

// PutKeyEntry writes pod's entry into the namespace's key table, creating
// the table if it is missing (the proxy's install makes it; a race with
// another creator is retried as a patch).
func PutKeyEntry(ctx context.Context, cs kubernetes.Interface, namespace, pod string, e keys.Entry) (*KeyEntry, error) {
	b, err := keys.Encode(e)
	if err != nil {
		return nil, err
	}
	patch, _ := json.Marshal(map[string]any{"data": map[string][]byte{pod: b}}) // []byte marshals as base64, as Secret data is
	api := cs.CoreV1().Secrets(namespace)
	for attempt := 0; attempt < 3; attempt++ {
		_, err = api.Patch(ctx, keys.SecretName, types.MergePatchType, patch, metav1.PatchOptions{})
		if !apierrors.IsNotFound(err) {
			break
		}
		_, err = api.Create(ctx, KeyTable(namespace, map[string][]byte{pod: b}), metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("writing the sandbox's entry in the model-key table (secret %s): %w", keys.SecretName, err)
	}
	return &KeyEntry{Namespace: namespace, Pod: pod, value: b}, nil
}

// KeyTable is the table as the plugin creates it when missing (a proxy
// installed by an older version): the egress proxy's, as `egress install`
// makes it (its labels, no owner: it serves every sandbox of the namespace),
// so that a later install takes it as its own.
func KeyTable(namespace string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: keys.SecretName, Namespace: namespace,
			Labels: ProxyLabels(),
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
}

// Remove deletes exactly this entry: not one a later sandbox of the same
// Pod name wrote since. Gone already is no error.
func (k *KeyEntry) Remove(ctx context.Context, cs kubernetes.Interface) error {
	if k == nil {
		return nil
	}
	return removeKeyEntry(ctx, cs, k.Namespace, k.Pod, k.value)
}

func removeKeyEntry(ctx context.Context, cs kubernetes.Interface, namespace, pod string, value []byte) error {
	path := "/data/" + jsonPointerEscape(pod)
	patch, _ := json.Marshal([]map[string]any{
		{"op": "test", "path": path, "value": base64.StdEncoding.EncodeToString(value)},
		{"op": "remove", "path": path},
	})
	_, err := cs.CoreV1().Secrets(namespace).Patch(ctx, keys.SecretName, types.JSONPatchType, patch, metav1.PatchOptions{})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsInvalid(err), isFailedTest(err):
		return nil // changed or gone meanwhile: not ours to remove
	}
	return fmt.Errorf("removing the sandbox's entry from the model-key table (secret %s): %w", keys.SecretName, err)
}

// isFailedTest: the API server answers a JSON patch whose test fails (or
// whose path is missing) with 422 or, for some versions, 500 naming the test.
func isFailedTest(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Code == http.StatusUnprocessableEntity {
		return true
	}
	for _, s := range []string{"testing value", "test operation", "missing value", "nonexistent key"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// RemoveKeyEntryOf removes pod's entry if its grant is grant (the Pod's
// annotation): delete and gc, which did not write it.
func RemoveKeyEntryOf(ctx context.Context, cs kubernetes.Interface, namespace, pod, grant string) error {
	table, err := cs.CoreV1().Secrets(namespace).Get(ctx, keys.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the model-key table (secret %s): %w", keys.SecretName, err)
	}
	value, ok := table.Data[pod]
	if !ok {
		return nil
	}
	if e, err := keys.Decode(value); err == nil && grant != "" && e.Grant != grant {
		return nil // a later sandbox's entry
	}
	return removeKeyEntry(ctx, cs, namespace, pod, value)
}

// staleKeyEntries is the garbage of a namespace's key table: entries
// whose Pod is gone, being deleted, or carries another grant (live holds
// the namespace's Pods of ours by name). Each is removed exactly (see
// removeKeyEntry): one rewritten meanwhile stays.
func staleKeyEntries(table *corev1.Secret, live map[string]*corev1.Pod) []Garbage {
	var out []Garbage
	for name, value := range table.Data {
		why := "its Pod is gone"
		if p := live[name]; p != nil && p.DeletionTimestamp == nil {
			e, err := keys.Decode(value)
			if err == nil && p.Annotations[keys.GrantAnnotation] == e.Grant {
				continue
			}
			why = "its Pod carries another grant"
		}
		ns, pod, value := table.Namespace, name, value
		out = append(out, NewGarbage("key-entry", ns, pod, why, func(ctx context.Context, cs kubernetes.Interface) error {
			return removeKeyEntry(ctx, cs, ns, pod, value)
		}))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
