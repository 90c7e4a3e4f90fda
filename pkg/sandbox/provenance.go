package sandbox

import (
	"context"
	"fmt"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

// Who made an object, with what: annotations on every object the plugin
// creates, so an admin looking at a Pod, its Secret or its NetworkPolicy
// sees the same story. They are what the client said; the API server's
// audit log is the record to trust (README: "Who did what").
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
	annotations[AnnotationVersion] = version.Get().Version
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
		annotations[AnnotationAllowEgress] = egressAnnotation(s.AllowEgress)
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

// validateEgress checks the egress fields against the network mode.
func (s *Spec) validateEgress() error {
	if s.Network != NetworkEgress {
		if len(s.AllowEgress) > 0 {
			return fmt.Errorf("--allow-egress needs --network egress (the network is %q)", s.Network)
		}
		if len(s.DNS) > 0 {
			return fmt.Errorf("--dns only matters with --network egress (the network is %q)", s.Network)
		}
	}
	for _, d := range append(append([]Destination(nil), s.AllowEgress...), s.DNS...) {
		if err := d.Validate(); err != nil {
			return err
		}
	}
	return nil
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
		wg.Go(func() { s.DNS = DetectDNS(ctx, cs).Servers })
	}
	wg.Wait()
}
