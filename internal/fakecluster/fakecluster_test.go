package fakecluster

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// The fake holds the API server's promises our writes rely on: names from
// generateName, UIDs, resourceVersions, and Conflicts for stale writes.
func TestPreconditionsAsTheAPIServer(t *testing.T) {
	ctx := context.Background()
	cs := New()
	pods := cs.CoreV1().Pods("ns")
	p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "box-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name == "" || p.UID == "" || p.ResourceVersion == "" {
		t.Fatalf("created %+v: want a name, a UID and a resourceVersion", p.ObjectMeta)
	}
	stale := p.DeepCopy()
	p.Labels = map[string]string{"a": "b"}
	if p, err = pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v, want a Conflict", err)
	}
	wrongUID := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("other"))}}
	if err := pods.Delete(ctx, p.Name, wrongUID); !apierrors.IsConflict(err) {
		t.Fatalf("delete with another UID: %v, want a Conflict", err)
	}
	staleRV := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: ptr.To(stale.ResourceVersion)}}
	if err := pods.Delete(ctx, p.Name, staleRV); !apierrors.IsConflict(err) {
		t.Fatalf("delete with a stale resourceVersion: %v, want a Conflict", err)
	}
	if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(p.UID))}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(p.UID))}); !apierrors.IsNotFound(err) {
		t.Fatalf("delete of a deleted pod: %v, want NotFound", err)
	}
	if _, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a dry run stored the pod: %v", err)
	}
}
