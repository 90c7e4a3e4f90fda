package sandbox

import (
	"context"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// Who made an object, with what: annotations on every object the plugin
// creates, so an admin looking at a Pod, its Secret or its NetworkPolicy
// sees the same story. They are what the client said; the API server's
// audit log is the record to trust (README: "Who did what").
// Version is the plugin's version, recorded on every object it makes. The
// command line sets it (from pkg/version) before it creates anything: the
// domain is told its version, it does not import it.
var Version = "dev"

const (
	// AnnotationVersion is the plugin version that made the object.
	AnnotationVersion = "agentkernel/version"
	// AnnotationCreatedBy is the user the API server knew the creator as.
	AnnotationCreatedBy = "agentkernel/created-by"
	// AnnotationAgent is the agent preset the sandbox was made from.
	AnnotationAgent = "agentkernel/agent"
	// AnnotationAllowEgress lists the --allow-egress destinations.
	AnnotationAllowEgress = "agentkernel/allow-egress"
)

// provenance adds the plugin's version, the creator, the preset, the TTL and
// the egress allow-list to annotations.
func (s *Spec) provenance(annotations map[string]string) map[string]string {
	annotations[AnnotationVersion] = Version
	set := func(k, v string) {
		if v != "" {
			annotations[k] = v
		}
	}
	set(AnnotationCreatedBy, s.CreatedBy)
	set(AnnotationAgent, s.Agent)
	if s.TTL > 0 {
		annotations[AnnotationTTL] = s.TTL.String()
	}
	if s.Network == NetworkEgress && len(s.AllowEgress) > 0 {
		annotations[AnnotationAllowEgress] = fence.EgressAnnotation(s.AllowEgress)
	}
	return annotations
}

// WhoAmI returns the user name the API server knows the caller by, or ""
// when it cannot say (SelfSubjectReview needs Kubernetes 1.28; every
// authenticated user may ask).
func WhoAmI(ctx context.Context, cs kubernetes.Interface) string {
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || r == nil {
		return ""
	}
	return r.Status.UserInfo.Username
}

// FromCluster fills in what only the cluster can tell: who is creating the
// sandbox and, for an egress sandbox given no --dns, where the cluster's DNS
// answers. Create calls it; a client-side dry run does too, so that it shows
// the objects Create would send. Neither lookup can fail the sandbox: what
// cannot be read is left out (CreatedBy) or falls back (DefaultDNS).
func (s *Spec) FromCluster(ctx context.Context, cs kubernetes.Interface) {
	var wg sync.WaitGroup
	if s.CreatedBy == "" {
		wg.Go(func() { s.CreatedBy = WhoAmI(ctx, cs) })
	}
	if s.Network == NetworkEgress && s.DNS == nil {
		wg.Go(func() { s.DNS = fence.DetectDNS(ctx, cs).Servers })
	}
	wg.Wait()
}
