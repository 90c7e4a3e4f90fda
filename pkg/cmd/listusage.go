package cmd

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// list -o wide's MODEL-USE column: what each sandbox spent on model APIs
// through the egress proxy ("12 req 34k tok"), from the usage ConfigMap,
// read once per namespace listed; "<none>" where nothing was recorded or
// the record cannot be read (no proxy, no right to read it).

// readListUsage reads the usage of the namespaces pods are in.
func readListUsage(ctx context.Context, o *ListOptions, pods []corev1.Pod) map[string]map[string]keys.Usage {
	out := map[string]map[string]keys.Usage{}
	for i := range pods {
		ns := pods[i].Namespace
		if _, done := out[ns]; done {
			continue
		}
		u, err := sandbox.ReadUsage(ctx, o.Clientset, ns)
		if err != nil {
			u = nil
		}
		out[ns] = u
	}
	return out
}

// addModelUseColumn adds MODEL-USE (wide only) to every row of t.
func addModelUseColumn(t *metav1.Table, usage map[string]map[string]keys.Usage) {
	t.ColumnDefinitions = append(t.ColumnDefinitions, metav1.TableColumnDefinition{Name: "Model-Use", Type: "string", Priority: 1})
	for i := range t.Rows {
		cell := "<none>"
		if p, ok := t.Rows[i].Object.Object.(*corev1.Pod); ok {
			if u, ok := usage[p.Namespace][p.Name]; ok {
				cell = sandbox.DescribeUsage(u)
			}
		}
		t.Rows[i].Cells = append(t.Rows[i].Cells, cell)
	}
}
