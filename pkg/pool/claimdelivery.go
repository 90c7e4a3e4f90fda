package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// The claim's write to a member, and the delivery of its environment.

// claimPatch is the one write of a claim.
func claimPatch(member *corev1.Pod, s, claim *sandbox.Spec, d delivery, id string, now time.Time) ([]byte, error) {
	lbls := map[string]string{sandbox.LabelSandbox: s.Name}
	for k, v := range claim.Labels {
		lbls[k] = v
	}
	ann := map[string]any{AnnotationClaim: id}
	if !d.empty() || d.workspace != nil {
		// Not whole until the delivery says so (claimstate.go).
		ann[sandbox.AnnotationClaimState] = sandbox.ClaimPending
		ann[sandbox.AnnotationClaimedAt] = now.UTC().Format(time.RFC3339)
	}
	if d.file != "" {
		ann[sandbox.AnnotationEnvFile] = d.file
	}
	if s.IdleTimeout > 0 {
		ann[sandbox.AnnotationIdleTimeout] = s.IdleTimeout.String()
	}
	if s.KeyGrant != "" {
		ann[keys.GrantAnnotation] = s.KeyGrant // its entry is written once the member is ours
	}
	meta := map[string]any{
		"resourceVersion": member.ResourceVersion, // the precondition: no one wrote it since we read it
		"labels":          lbls,
		"annotations":     ann,
		"ownerReferences": nil, // out of the pool: pool delete and the GC leave it alone
	}
	if d.workspace != nil {
		// Out of the pool, and the workspace's from now on (memberworkspace.go).
		meta["ownerReferences"] = claimedWorkspaceOwner(d.workspace)
	}
	patch := map[string]any{"metadata": meta}
	if s.TTL > 0 {
		ann[sandbox.AnnotationTTL] = s.TTL.String()
		if d := claimDeadline(member, s.TTL, now); d != nil {
			patch["spec"] = map[string]any{"activeDeadlineSeconds": *d}
		}
	}
	return json.Marshal(patch)
}

// claimDeadline is the activeDeadlineSeconds that ends a claimed member ttl
// from now. The kubelet counts it from the Pod's start, so the time the
// member waited warm is added; a running Pod accepts a deadline only where
// it has none or a later one (nil: keep the one it has).
func claimDeadline(member *corev1.Pod, ttl time.Duration, now time.Time) *int64 {
	waited := time.Duration(0)
	if st := member.Status.StartTime; st != nil && now.After(st.Time) {
		waited = now.Sub(st.Time)
	}
	d := int64(math.Ceil((waited + ttl).Seconds()))
	if old := member.Spec.ActiveDeadlineSeconds; old != nil && *old <= d {
		return nil
	}
	return &d
}

// finishClaim makes a claimed member the sandbox s: it backs off if the
// name is held by another sandbox, creates the claim's Secret (owned by the
// Pod, so delete removes it), and delivers the claim's environment and idle
// timeout over exec stdin, re-roots a persistent pool's member's workspace
// as the sandbox's (memberworkspace.go), then marks the claim complete. It
// returns the Pod as it is then.
func finishClaim(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, s *sandbox.Spec, d *delivery, id string, o AcquireOptions) (*corev1.Pod, *corev1.Secret, error) {
	// A cold create or another claim of this name may have won meanwhile;
	// of two that see each other both back off, and never both stay.
	if err := sandbox.NameHeldElsewhere(ctx, cs, s, pod.UID); err != nil {
		return nil, nil, err
	}
	if err := sandbox.NameHeldByWorkspace(ctx, cs, s); err != nil {
		return nil, nil, err
	}
	var secret *corev1.Secret
	if sec := s.Secret(o.SecretValues); sec != nil {
		sec.Name = pod.Name + "-env"
		sec.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, Controller: ptr.To(true)}}
		if d.workspace != nil {
			// A resumed Pod reads it by the sandbox's name; it lives as
			// long as the sandbox, not as this Pod.
			sec.Name, sec.OwnerReferences = sandbox.SecretName(s.Name), claimedWorkspaceOwner(d.workspace)
		}
		got, err := sandbox.CreateOwnedSecret(ctx, cs, pod, sec)
		if err != nil {
			return nil, nil, fmt.Errorf("creating the claim's secret: %w", err)
		}
		secret = got
	}
	if d.empty() && d.workspace == nil {
		return pod, secret, nil
	}
	if !d.empty() {
		ex := o.Exec(pod).Delivering()
		var stdin io.Reader
		if d.file != "" {
			stdin = bytes.NewReader(d.content)
		}
		var stderr untrusted.Buffer
		if err := ex.Run(ctx, deliverCommand(d.file, d.idle), stdin, nil, &stderr); err != nil {
			if ctx.Err() != nil {
				return nil, secret, context.Cause(ctx)
			}
			// The member's stderr is the sandbox's text: one short line of it.
			return nil, secret, fmt.Errorf("delivering the claim's environment into sandbox %q failed: %v; the sandbox said: %q", s.Name, err, untrusted.Line(stderr.String(), 200))
		}
	}
	if d.workspace != nil {
		// Last before the claim is whole: until this write the workspace
		// goes with the Pod, whatever becomes of the claim.
		if err := adoptWorkspace(ctx, cs, pod, s, d); err != nil {
			if ctx.Err() != nil {
				return nil, secret, context.Cause(ctx)
			}
			return nil, secret, err
		}
	}
	done, err := completeClaim(ctx, cs, pod, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil, secret, context.Cause(ctx)
		}
		return nil, secret, err
	}
	return done, secret, nil
}

// delivery is what a claim writes into the sandbox it takes.
type delivery struct {
	file    string // the environment file, "" for none
	content []byte // its content: secrets among it
	idle    int64  // seconds, 0 for none
	// workspace is a persistent pool's member's, which the claim makes the
	// sandbox's root (memberworkspace.go); nil in other pools.
	workspace *corev1.PersistentVolumeClaim
}

func (d delivery) empty() bool { return d.file == "" && d.idle == 0 }

// newDelivery prepares it before the claim is written, so that bad input
// fails before a member is taken.
func newDelivery(member *corev1.Pod, s, claim *sandbox.Spec, values map[string]string) (delivery, error) {
	d := delivery{idle: sandbox.IdleSeconds(s.IdleTimeout)}
	// s's secrets are the claim's but those the proxy injects (claimedSpec).
	if len(claim.Env) == 0 && len(s.SecretEnvNames) == 0 {
		return d, nil
	}
	content, err := envFileContent(claim.Env, s.SecretEnvNames, values)
	if err != nil {
		return d, err
	}
	d.file, d.content = sandbox.EnvFilePath(member.Name), content
	return d, nil
}
