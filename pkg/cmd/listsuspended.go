package cmd

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// What list shows of persistent sandboxes that are not running: one row
// each, STATUS Suspended, from the workspace and its record (there may be
// no Pod at all), EXPIRES saying when gc may delete the workspace (its
// --retain), and in -o wide since when and why, and the workspace's size
// and class. -o json/yaml prints their PersistentVolumeClaims.

// withoutEnded drops the ended Pods of suspended sandboxes: their row is
// the suspended one.
func withoutEnded(pods []corev1.Pod, suspended []sandbox.SuspendedSandbox) []corev1.Pod {
	ended := map[*corev1.Pod]bool{}
	for _, s := range suspended {
		if s.Pod != nil {
			ended[s.Pod] = true
		}
	}
	kept := pods[:0:0]
	for i := range pods {
		if !ended[&pods[i]] {
			kept = append(kept, pods[i])
		}
	}
	return kept
}

// listOf is what -o json|yaml|jsonpath prints: the Pods, then the
// workspaces of suspended sandboxes.
func listOf(pods []corev1.Pod, suspended []sandbox.SuspendedSandbox) *metav1.List {
	l := &metav1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	for i := range pods {
		l.Items = append(l.Items, runtime.RawExtension{Object: &pods[i]})
	}
	for _, s := range suspended {
		w := s.Workspace.DeepCopy()
		w.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"}
		l.Items = append(l.Items, runtime.RawExtension{Object: w})
	}
	return l
}

func addSuspendedRows(t *metav1.Table, suspended []sandbox.SuspendedSandbox, now time.Time) {
	for i := range suspended {
		s := &suspended[i]
		w := s.Workspace
		image, runtimeClass, agent, ttl := "<unknown>", "<default>", "<none>", "<none>"
		if s.Spec != nil {
			image, agent = s.Spec.Image, cli.OrNone(s.Spec.Agent)
			if s.Spec.RuntimeClassName != "" {
				runtimeClass = s.Spec.RuntimeClassName
			}
			if s.Spec.TTL > 0 {
				ttl = s.Spec.TTL.String()
			}
		}
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells: []interface{}{
				s.Name(),
				"Suspended",
				image,
				cli.OrNone(w.Annotations[sandbox.AnnotationProfile]),
				cli.OrNone(w.Annotations[sandbox.AnnotationNetwork]),
				duration.HumanDuration(now.Sub(w.CreationTimestamp.Time)),
				retained(s, now),
				"<none>",
				"<none>",
				runtimeClass,
				agent,
				ttl,
				cli.OrNone(w.Annotations[sandbox.AnnotationCreatedBy]),
				cli.OrNone(w.Annotations[sandbox.AnnotationVersion]),
			},
			Object: runtime.RawExtension{Object: w},
		})
	}
	addWorkspaceColumns(t, suspended, now)
}

// retained is when gc may delete a suspended sandbox's workspace.
func retained(s *sandbox.SuspendedSandbox, now time.Time) string {
	if s.Spec == nil {
		return "<none>"
	}
	at, ok := sandbox.RetainedUntil(s.Workspace, s.Spec)
	switch {
	case !ok:
		return "<none>"
	case !at.After(now):
		return "gc"
	}
	return "gc in " + duration.HumanDuration(at.Sub(now))
}

// addWorkspaceColumns adds the wide columns Workspace (size and class of a
// persistent sandbox's claim) and Suspended (since when, and why).
func addWorkspaceColumns(t *metav1.Table, suspended []sandbox.SuspendedSandbox, now time.Time) {
	t.ColumnDefinitions = append(t.ColumnDefinitions,
		metav1.TableColumnDefinition{Name: "Workspace", Type: "string", Priority: 1},
		metav1.TableColumnDefinition{Name: "Suspended", Type: "string", Priority: 1})
	byName := map[*corev1.PersistentVolumeClaim]*sandbox.SuspendedSandbox{}
	for i := range suspended {
		byName[suspended[i].Workspace] = &suspended[i]
	}
	for i := range t.Rows {
		row := &t.Rows[i]
		workspace, since := "<none>", "<none>"
		switch obj := row.Object.Object.(type) {
		case *corev1.PersistentVolumeClaim:
			workspace = describeWorkspace(obj)
			if s := byName[obj]; s != nil {
				since = sandbox.DescribeSuspension(s.Since, s.Why, now)
			}
		case *corev1.Pod:
			if sandbox.IsPersistent(obj) {
				workspace = "persistentvolumeclaim/" + sandbox.MountedWorkspace(obj)
			}
		}
		row.Cells = append(row.Cells, workspace, since)
	}
}

// describeWorkspace: "10Gi standard", or the size asked and "<default>".
func describeWorkspace(w *corev1.PersistentVolumeClaim) string {
	size := w.Spec.Resources.Requests[corev1.ResourceStorage]
	if got, ok := w.Status.Capacity[corev1.ResourceStorage]; ok {
		size = got
	}
	class := "<default>"
	if w.Spec.StorageClassName != nil {
		class = *w.Spec.StorageClassName
	}
	return fmt.Sprintf("%s %s", size.String(), class)
}
