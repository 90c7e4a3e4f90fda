package sandbox

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// List reads in pages of 500, as kubectl get does, and keeps every page's
// sandboxes (and only sandboxes).
func TestListPages(t *testing.T) {
	const n = 1234
	all := make([]corev1.Pod, n)
	for i := range all {
		all[i] = *sandboxPodNamed(fmt.Sprintf("s%d", i), nil)
	}
	all[700].Labels[LabelSandbox] = "not-its-name" // fails Ours
	cs := fakeCluster()
	var limits []int64
	cs.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		opts := a.(k8stesting.ListActionImpl).ListOptions
		limits = append(limits, opts.Limit)
		from, _ := strconv.Atoi(opts.Continue)
		to := min(n, from+int(opts.Limit))
		list := &corev1.PodList{Items: all[from:to]}
		if to < n {
			list.Continue = strconv.Itoa(to)
		}
		return true, list, nil
	})
	pods, err := List(context.Background(), cs, "ns", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != n-1 || NameOf(&pods[0]) != "s0" || NameOf(&pods[n-2]) != fmt.Sprintf("s%d", n-1) {
		t.Fatalf("%d sandboxes listed, want %d in order", len(pods), n-1)
	}
	if fmt.Sprint(limits) != "[500 500 500]" {
		t.Fatalf("list requests with limits %v, want three pages of 500", limits)
	}
}
