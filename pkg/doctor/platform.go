package doctor

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// checkUIDRange reads the UID range a namespace's platform assigns
// (OpenShift: the SCC annotations its restricted-v2 SCC admits Pods by)
// and says what sandboxes will run as there.
func checkUIDRange(ctx context.Context, env *Env) []Result {
	ns, err := env.Clientset.CoreV1().Namespaces().Get(ctx, env.Namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil // the namespace check says so
	case err != nil:
		return []Result{warn(fmt.Sprintf("cannot read namespace %q, so not whether it assigns UIDs from a range (OpenShift's %s annotation): sandboxes run as UID %d unless --uid, which its SCC refuses if outside the range",
			env.Namespace, sandbox.AnnotationSCCUIDRange, sandbox.DefaultUID),
			env.rbacHint()+"; or pass --uid from the namespace's range (oc describe project "+env.Namespace+")")}
	}
	ids, err := sandbox.NamespaceIDsOf(ns)
	if err != nil {
		return []Result{fail(err.Error()+": OpenShift's SCC admission cannot use it either",
			"ask an admin to fix the annotation (OpenShift's namespace controller writes START/SIZE, e.g. 1000680000/10000)")}
	}
	if ids == nil {
		return []Result{ok("namespace %q assigns no UID range (no %s annotation): sandboxes run as UID %d unless --uid", env.Namespace, sandbox.AnnotationSCCUIDRange, sandbox.DefaultUID)}
	}
	spec := defaultSandbox(env.Namespace)
	if err := spec.Fit(ids); err != nil {
		return []Result{fail(err.Error(), "ask an admin to fix the namespace's annotations")}
	}
	group := spec.UID
	if spec.GID > 0 {
		group = spec.GID
	}
	return []Result{ok("namespace %q admits UIDs %s and fsGroups %s (its %s annotations: OpenShift's restricted-v2 SCC refuses others): sandboxes run as UID %d, group %d; --uid must lie in the range",
		env.Namespace, ids.UIDs, ids.GIDs, strings.Join([]string{sandbox.AnnotationSCCUIDRange, sandbox.AnnotationSCCSupplementalGroups}, ", "), spec.UID, group)}
}

// sccAction is what to do when a platform's SCC refuses a sandbox.
const sccAction = "the namespace's SCC (OpenShift's restricted-v2) admits only the UIDs and fsGroups of its range " +
	"(annotations " + sandbox.AnnotationSCCUIDRange + ", " + sandbox.AnnotationSCCSupplementalGroups + "): " +
	"leave --uid out, so sandboxes take the first of the range, or pass one in it; " +
	"an admin can grant the ServiceAccount another SCC (nonroot-v2) to allow other UIDs"

// isSCCRefusal says whether admission's refusal is OpenShift's SCC.
func isSCCRefusal(err error) bool {
	return sandbox.IsRangeRefusal(err) || strings.Contains(err.Error(), "security context constraint")
}
