package sandbox

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"
)

// A Pod listed (or found) is deleted by name and UID: one re-created under
// that name since is not ours to delete.
func TestDeletePodByNameAndUID(t *testing.T) {
	pod := sandboxPodNamed("demo", nil)
	cs := fakeCluster(pod)
	if err := DeletePod(context.Background(), cs, pod, nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			if pre := d.DeleteOptions.Preconditions; pre == nil || pre.UID == nil || *pre.UID != pod.UID {
				t.Fatalf("delete without the pod's UID as precondition: %+v", d.DeleteOptions)
			}
		}
	}

	stale := pod.DeepCopy()
	fresh := sandboxPodNamed("demo", nil)
	fresh.UID = "newer"
	cs = fakeCluster(fresh)
	var notFound *NotFoundError
	if err := DeletePod(context.Background(), cs, stale, nil); !errors.As(err, &notFound) {
		t.Fatalf("DeletePod(stale) = %v", err)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(context.Background(), fresh.Name, metav1.GetOptions{}); err != nil {
		t.Fatal("a newer pod of the same name was deleted")
	}
}

func TestDeleteMissing(t *testing.T) {
	var notFound *NotFoundError
	if _, err := Delete(context.Background(), fakeCluster(), "ns", "missing", nil); !errors.As(err, &notFound) {
		t.Fatalf("Delete(missing) = %v", err)
	}
}
