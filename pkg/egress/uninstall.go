package egress

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// SandboxesUsing lists the namespace's sandboxes that carry grants.
func SandboxesUsing(ctx context.Context, cs kubernetes.Interface, namespace string) ([]string, error) {
	pods, err := sandbox.List(ctx, cs, namespace, "")
	if err != nil {
		return nil, err
	}
	var names []string
	for i := range pods {
		if _, ok := pods[i].Annotations[fence.AnnotationAllowHosts]; ok {
			names = append(names, sandbox.NameOf(&pods[i]))
		}
	}
	slices.Sort(names)
	return names, nil
}

// ErrInUse: sandboxes still route through the proxy.
var ErrInUse = errors.New("in use")

// Uninstall removes the namespace's proxy: the Deployment first (waiting
// until its Pods are gone, up to timeout), its NetworkPolicy last, so no
// proxy Pod runs unfenced. Only objects of ours, each by UID. Unless
// force, it refuses while sandboxes with grants exist.
func Uninstall(ctx context.Context, cs kubernetes.Interface, namespace string, force bool, timeout time.Duration) ([]string, error) {
	if !force {
		users, err := SandboxesUsing(ctx, cs, namespace)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			return nil, fmt.Errorf("%w: %d sandboxes in namespace %q reach the network only through the egress proxy (%s); delete them first, or pass --force to leave them with no network",
				ErrInUse, len(users), namespace, strings.Join(users, ", "))
		}
	}
	var removed []string
	c := &Config{Namespace: namespace}
	steps := c.steps(cs, InstallOptions{})
	// Deployment, Service, the usage and key table, RoleBinding, Role,
	// ServiceAccount, then the policy.
	order := slices.Clone(steps)
	slices.Reverse(order)
	for i, s := range order {
		obj, err := s.getOurs(ctx)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return removed, err
		}
		if err := s.remove(ctx, obj.GetUID()); err != nil && !apierrors.IsNotFound(err) {
			return removed, fmt.Errorf("deleting the egress proxy's %s/%s: %w", strings.ToLower(s.kind), s.name, err)
		}
		removed = append(removed, strings.ToLower(s.kind)+"/"+s.name)
		if i == 0 {
			if err := waitProxyPodsGone(ctx, cs, namespace, timeout); err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}

// waitProxyPodsGone waits until no Pod of the proxy is left, so the
// policy that fences them is removed only after them.
func waitProxyPodsGone(ctx context.Context, cs kubernetes.Interface, ns string, timeout time.Duration) error {
	sel := metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: sandbox.ProxyLabels()})
	var left int
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err
		}
		left = len(pods.Items)
		return left == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%d pods of the egress proxy still exist after %s; its NetworkPolicy %s stays until they are gone (run egress uninstall again): %w", left, timeout, fence.ProxyPolicyName, err)
	}
	return nil
}
