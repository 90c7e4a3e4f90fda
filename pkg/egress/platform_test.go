package egress

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// In an OpenShift project the proxy runs as the project's first UID (its
// SCC refuses 65532); elsewhere as ProxyUID.
func TestProxyRunsAsTheNamespacesUID(t *testing.T) {
	for name, c := range map[string]struct {
		annotations map[string]string
		uid, gid    int64
	}{
		"plain":            {nil, ProxyUID, ProxyUID},
		"OpenShift":        {map[string]string{sandbox.AnnotationSCCUIDRange: "1000680000/10000", sandbox.AnnotationSCCSupplementalGroups: "1000680000/10000"}, 1000680000, 1000680000},
		"groups elsewhere": {map[string]string{sandbox.AnnotationSCCUIDRange: "1000680000/10000", sandbox.AnnotationSCCSupplementalGroups: "5000/10"}, 1000680000, 5000},
	} {
		t.Run(name, func(t *testing.T) {
			cs := fakecluster.New(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Annotations: c.annotations}})
			if _, err := Install(context.Background(), cs, testConfig(), InstallOptions{}); err != nil {
				t.Fatal(err)
			}
			d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "agentkernel-egress", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sc := d.Spec.Template.Spec.SecurityContext
			if *sc.RunAsUser != c.uid || *sc.RunAsGroup != c.gid || !*sc.RunAsNonRoot {
				t.Errorf("runAsUser %d runAsGroup %d, want %d %d", *sc.RunAsUser, *sc.RunAsGroup, c.uid, c.gid)
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns}, Spec: d.Spec.Template.Spec}
			if v := fakecluster.RestrictedViolations(t, pod); v != "" {
				t.Errorf("violates restricted: %s", v)
			}
		})
	}
}
