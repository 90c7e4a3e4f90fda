package sandbox

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/json"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// NoUsageError: the namespace has no usage record: its egress proxy is not
// installed, or predates injected keys.
type NoUsageError struct{ Namespace string }

func (e *NoUsageError) Error() string {
	return fmt.Sprintf("no usage recorded in namespace %q: the egress proxy publishes it (configmap %s) once it is installed and a sandbox with injected model keys has used it",
		e.Namespace, keys.UsageConfigMapName)
}

// ReadUsage is what the namespace's egress proxy recorded, by Pod name.
// An entry that does not parse is left out: the proxy writes it, but
// anyone who may update the ConfigMap could too.
func ReadUsage(ctx context.Context, cs kubernetes.Interface, namespace string) (map[string]keys.Usage, error) {
	cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, keys.UsageConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &NoUsageError{Namespace: namespace}
	}
	if err != nil {
		return nil, err
	}
	out := map[string]keys.Usage{}
	for pod, raw := range cm.Data {
		var u keys.Usage
		if len(raw) > keys.MaxEntryBytes*8 || json.UnmarshalCaseSensitivePreserveInts([]byte(raw), &u) != nil {
			continue
		}
		out[pod] = u
	}
	return out, nil
}

// Total sums a Pod's usage over its hosts.
func UsageTotal(u keys.Usage) keys.HostUsage {
	var t keys.HostUsage
	for _, h := range u.Hosts {
		t.Requests += h.Requests
		t.Refused += h.Refused
		t.BytesSent += h.BytesSent
		t.BytesGot += h.BytesGot
		t.InputTokens += h.InputTokens
		t.OutputTokens += h.OutputTokens
	}
	return t
}

// UsageHosts are u's hosts in order.
func UsageHosts(u keys.Usage) []string {
	return slices.Sorted(maps.Keys(u.Hosts))
}

// DescribeUsage is a short cell: "12 req 34k tok".
func DescribeUsage(u keys.Usage) string {
	t := UsageTotal(u)
	return strconv.FormatInt(t.Requests, 10) + " req " + ShortCount(t.InputTokens+t.OutputTokens) + " tok"
}

// ShortCount writes n with a k or M suffix, as a table cell.
func ShortCount(n int64) string {
	switch {
	case n >= 10_000_000:
		return strconv.FormatInt(n/1_000_000, 10) + "M"
	case n >= 10_000:
		return strconv.FormatInt(n/1_000, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}
