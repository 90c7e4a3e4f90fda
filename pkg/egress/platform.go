package egress

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// fitNamespace makes the proxy run as its namespace's platform admits: on
// OpenShift, whose restricted-v2 SCC refuses a Pod whose runAsUser lies
// outside the namespace's range, as the first UID of that range, as a
// sandbox there does. The Deployment would be admitted either way and
// only its Pods refused, so this is decided before it is made. A
// namespace that cannot be read keeps ProxyUID.
func (c *Config) fitNamespace(ctx context.Context, cs kubernetes.Interface) error {
	ns, err := cs.CoreV1().Namespaces().Get(ctx, c.Namespace, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	ids, err := sandbox.NamespaceIDsOf(ns)
	if err != nil || ids == nil {
		return err
	}
	s := sandbox.Spec{UID: ProxyUID}
	if err := s.Fit(ids); err != nil {
		return err
	}
	c.UID, c.GID = s.UID, s.GID
	return nil
}

// runAs is the proxy's user and group.
func (c *Config) runAs() (uid, gid int64) {
	uid, gid = ProxyUID, ProxyUID
	if c.UID > 0 {
		uid, gid = c.UID, c.UID
	}
	if c.GID > 0 {
		gid = c.GID
	}
	return uid, gid
}
