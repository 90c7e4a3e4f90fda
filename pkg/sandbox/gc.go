package sandbox

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// With restartPolicy Never a sandbox that ended — its TTL ran out, it
// stopped for being idle, its PID 1 exited — stays as a finished Pod until
// someone deletes it (the cluster's Pod GC waits for thousands of them). gc
// is that someone. It also removes Secrets and NetworkPolicies of ours whose
// owner Pod is gone, should the garbage collector lag or have been told to
// orphan them, and sandboxes whose claim died half-way (claimstate.go) once
// ClaimGrace has passed. It deletes only what passes the same checks as every
// other command (Ours, the managed-by label), by UID. Pools add their members
// (package pool's FindGarbage) through a GarbageFinder.

// Garbage is one object gc deletes, and why.
type Garbage struct {
	// Kind is "sandbox", "workspace", "pool-member", "secret",
	// "networkpolicy" or "key-entry" (Name: the Pod's entry in the key table).
	Kind            string
	Namespace, Name string // the object's name (a sandbox's: its sandbox name)
	Why             string

	uid types.UID
	pod *corev1.Pod
	// remove deletes the object; nil for the kinds this package knows.
	remove func(context.Context, kubernetes.Interface) error
	// unfinished: a sandbox whose claim died half-way; deleted only while
	// it is still the Pod read (UID and resourceVersion).
	unfinished bool
}

// NewGarbage is garbage of a kind only its finder knows how to delete:
// remove deletes it (gone or changed meanwhile is not an error).
func NewGarbage(kind, namespace, name, why string, remove func(context.Context, kubernetes.Interface) error) Garbage {
	return Garbage{Kind: kind, Namespace: namespace, Name: name, Why: why, remove: remove}
}

// A GarbageFinder finds more garbage among the plugin's live Pods (those
// not being deleted) in the namespace FindGarbage looks at.
type GarbageFinder func(ctx context.Context, cs kubernetes.Interface, pods []*corev1.Pod) ([]Garbage, error)

// FindGarbage lists what gc would delete in namespace ("" for all): ended
// sandboxes, orphaned Secrets and NetworkPolicies, and what more finds.
func FindGarbage(ctx context.Context, cs kubernetes.Interface, namespace string, more ...GarbageFinder) ([]Garbage, error) {
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: ManagedSelector})
	if err != nil {
		return nil, err
	}
	var out []Garbage
	now := time.Now()
	live := map[types.UID]bool{}
	var others []*corev1.Pod // not sandboxes: for the GarbageFinders
	for i := range pods.Items {
		pod := &pods.Items[i]
		live[pod.UID] = true
		if pod.DeletionTimestamp != nil {
			continue
		}
		finished := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
		if name := NameOf(pod); name != "" {
			switch {
			case Ours(pod, name) != nil:
			case finished && IsPersistent(pod):
				out = append(out, suspendedPod(pod))
			case finished:
				out = append(out, Garbage{Kind: "sandbox", Namespace: pod.Namespace, Name: name, Why: whyFinished(pod), uid: pod.UID, pod: pod})
			case pastEndOf(pod, now):
				end, _ := EndOf(pod)
				out = append(out, Garbage{Kind: "sandbox", Namespace: pod.Namespace, Name: name,
					Why: fmt.Sprintf("ended: its end (%s) passed", end.UTC().Format(time.RFC3339)), uid: pod.UID, pod: pod})
			case StaleClaim(pod, now):
				e := ClaimUnfinished(pod, now).(*HalfClaimedError)
				out = append(out, Garbage{Kind: "sandbox", Namespace: pod.Namespace, Name: name,
					Why: fmt.Sprintf("half-claimed: its claim from pool %q at %s never finished, so it never got its environment", e.Pool, e.Since.UTC().Format(time.RFC3339)),
					uid: pod.UID, pod: pod, unfinished: true})
			}
			continue
		}
		others = append(others, pod)
	}
	suspended, err := findRetainedWorkspaces(ctx, cs, namespace, pods.Items, now)
	if err != nil {
		return nil, err
	}
	out = append(out, suspended...)
	for _, find := range more {
		found, err := find(ctx, cs, others)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}

	ownerGone := func(ctx context.Context, obj metav1.Object) (bool, error) {
		refs := obj.GetOwnerReferences()
		if len(refs) == 0 {
			return false, nil // never made by this plugin's current versions; not provably an orphan
		}
		for _, ref := range refs {
			if ref.Kind != "Pod" || ref.APIVersion != "v1" {
				return false, nil
			}
			if live[ref.UID] {
				return false, nil
			}
			// Not among our Pods: make sure it is gone, not just unlabelled.
			p, err := cs.CoreV1().Pods(obj.GetNamespace()).Get(ctx, ref.Name, metav1.GetOptions{})
			switch {
			case err == nil && p.UID == ref.UID:
				return false, nil
			case err != nil && !apierrors.IsNotFound(err):
				return false, err
			}
		}
		return true, nil
	}
	secrets, err := cs.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: ManagedSelector})
	if err != nil {
		return nil, err
	}
	byName := map[string]*corev1.Pod{} // namespace/name
	for i := range pods.Items {
		byName[pods.Items[i].Namespace+"/"+pods.Items[i].Name] = &pods.Items[i]
	}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if s.Name == keys.SecretName {
			live := map[string]*corev1.Pod{}
			for name := range s.Data {
				live[name] = byName[s.Namespace+"/"+name]
			}
			out = append(out, staleKeyEntries(s, live)...)
			continue
		}
		if gone, err := ownerGone(ctx, s); err != nil {
			return nil, err
		} else if gone && s.DeletionTimestamp == nil {
			out = append(out, Garbage{Kind: "secret", Namespace: s.Namespace, Name: s.Name, Why: "its sandbox's Pod is gone", uid: s.UID})
		}
	}
	policies, err := cs.NetworkingV1().NetworkPolicies(namespace).List(ctx, metav1.ListOptions{LabelSelector: ManagedSelector})
	if err != nil {
		return nil, err
	}
	for i := range policies.Items {
		np := &policies.Items[i]
		if gone, err := ownerGone(ctx, np); err != nil {
			return nil, err
		} else if gone && np.DeletionTimestamp == nil {
			out = append(out, Garbage{Kind: "networkpolicy", Namespace: np.Namespace, Name: np.Name, Why: "its sandbox's Pod is gone", uid: np.UID})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Kind > out[j].Kind // sandboxes first
	})
	return out, nil
}

// whyFinished says why a sandbox ended.
func whyFinished(pod *corev1.Pod) string {
	switch {
	case Expired(pod):
		if ttl := pod.Annotations[AnnotationTTL]; ttl != "" {
			return fmt.Sprintf("expired: its TTL (%s) ran out", ttl)
		}
		return "expired: its activeDeadlineSeconds passed"
	case StoppedIdle(pod):
		idle := pod.Annotations[AnnotationIdleTimeout]
		if idle == "" {
			idle = "its idle timeout"
		}
		return fmt.Sprintf("idle: it stopped itself after %s with nothing running", idle)
	}
	return fmt.Sprintf("finished: %s", Status(pod))
}

// Delete deletes the object by UID (through its finder's remove for kinds
// of other packages: a pool member also by resourceVersion, so one claimed
// meanwhile is left alone). Gone already is not an error.
func (g Garbage) Delete(ctx context.Context, cs kubernetes.Interface) error {
	pre := &metav1.Preconditions{UID: ptr.To(g.uid)}
	var err error
	switch {
	case g.remove != nil:
		err = g.remove(ctx, cs)
	case g.Kind == "sandbox":
		if g.unfinished {
			// A claim that finishes (or a new one) meanwhile writes the
			// Pod: the resourceVersion precondition then leaves it alone.
			err = DeleteUnchanged(ctx, cs, g.pod)
			break
		}
		err = DeletePod(ctx, cs, g.pod, ptr.To[int64](0))
		if _, gone := err.(*NotFoundError); gone {
			err = nil
		}
		return err
	case g.Kind == "secret":
		err = cs.CoreV1().Secrets(g.Namespace).Delete(ctx, g.Name, metav1.DeleteOptions{Preconditions: pre})
	case g.Kind == "networkpolicy":
		err = cs.NetworkingV1().NetworkPolicies(g.Namespace).Delete(ctx, g.Name, metav1.DeleteOptions{Preconditions: pre})
	default:
		return fmt.Errorf("unknown kind %q", g.Kind)
	}
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// DeleteGarbage deletes garbage, each as Garbage.Delete does,
// clientrate.Parallel at a time: a thousand ended sandboxes one after the
// other took a round trip each. done hears every outcome in the order of
// garbage; once ctx ends no new delete starts, and those report ctx's cause.
func DeleteGarbage(ctx context.Context, cs kubernetes.Interface, garbage []Garbage, done func(Garbage, error)) {
	next := 0
	inOrder(ctx, len(garbage), func(i int) Deletion {
		return Deletion{Name: garbage[i].Name, Namespace: garbage[i].Namespace, Err: garbage[i].Delete(ctx, cs)}
	}, func(i int) Deletion {
		return Deletion{Name: garbage[i].Name, Namespace: garbage[i].Namespace}
	}, func(d Deletion) {
		done(garbage[next], d.Err)
		next++
	})
}

// DeleteUnchanged deletes pod at once, but only while it is still the Pod
// that was read: its UID and resourceVersion are the preconditions, so one
// a claim wrote meanwhile is left alone.
func DeleteUnchanged(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	return cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: ptr.To(pod.UID), ResourceVersion: ptr.To(pod.ResourceVersion)},
		PropagationPolicy:  ptr.To(metav1.DeletePropagationBackground),
	})
}
