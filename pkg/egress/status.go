package egress

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// Status is what `egress status` reports.
type Status struct {
	Namespace string `json:"namespace"`
	Installed bool   `json:"installed"`
	Image     string `json:"image,omitempty"`
	// Version is the plugin version that made or last changed it.
	Version   string `json:"version,omitempty"`
	Replicas  int32  `json:"replicas"`
	Ready     int32  `json:"ready"`
	ClusterIP string `json:"clusterIP,omitempty"`
	// Fenced: its NetworkPolicy exists.
	Fenced       bool     `json:"fenced"`
	PrivateCIDRs []string `json:"privateCIDRs,omitempty"`
	// Sandboxes are those with grants, which go out only through it.
	Sandboxes []string `json:"sandboxes"`
	Missing   []string `json:"missing,omitempty"`
	// DeploymentNote is a condition saying why it is not available.
	DeploymentNote string `json:"note,omitempty"`
}

// GetStatus reads the namespace's proxy.
func GetStatus(ctx context.Context, cs kubernetes.Interface, namespace string) (*Status, error) {
	st := &Status{Namespace: namespace}
	dep, err := cs.AppsV1().Deployments(namespace).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		st.Missing = append(st.Missing, "deployment/"+fence.ProxyName)
	case err != nil:
		return nil, err
	case !ours(dep):
		return nil, &NotOursError{"Deployment", fence.ProxyName, namespace}
	default:
		st.Version = dep.Annotations[AnnotationVersion]
		st.Replicas = ptr.Deref(dep.Spec.Replicas, 1)
		st.Ready = dep.Status.ReadyReplicas
		for _, c := range dep.Spec.Template.Spec.Containers {
			st.Image = c.Image
			for _, a := range c.Args {
				if v, ok := strings.CutPrefix(a, "--private-cidr="); ok {
					st.PrivateCIDRs = append(st.PrivateCIDRs, v)
				}
			}
		}
		for _, cond := range dep.Status.Conditions {
			if cond.Status != corev1.ConditionTrue && cond.Message != "" {
				st.DeploymentNote = string(cond.Type) + ": " + cond.Message
			}
		}
	}
	svc, err := cs.CoreV1().Services(namespace).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		st.Missing = append(st.Missing, "service/"+fence.ProxyName)
	case err != nil:
		return nil, err
	default:
		st.ClusterIP = svc.Spec.ClusterIP
	}
	_, err = cs.NetworkingV1().NetworkPolicies(namespace).Get(ctx, fence.ProxyPolicyName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		st.Missing = append(st.Missing, "networkpolicy/"+fence.ProxyPolicyName)
	case err != nil:
		return nil, err
	default:
		st.Fenced = true
	}
	st.Installed = len(st.Missing) < 3
	if st.Sandboxes, err = SandboxesUsing(ctx, cs, namespace); err != nil {
		return nil, err
	}
	return st, nil
}
