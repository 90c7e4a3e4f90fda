package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

func sandboxPodNamed(name string, mutate func(*corev1.Pod)) *corev1.Pod {
	s := NewSpec(name, "ns")
	p := s.Pod()
	p.UID = types.UID("uid-" + name)
	if mutate != nil {
		mutate(p)
	}
	return p
}

func claimedPod(pool, suffix, name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Name = PoolMemberPrefix(pool) + suffix
		p.Labels[LabelPool] = pool
		p.Labels[LabelSandbox] = name
	}
}

func TestOurs(t *testing.T) {
	controlled := func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: "rs", Controller: ptr.To(true)}}
	}
	cases := map[string]struct {
		pod  *corev1.Pod
		name string
		why  string // "" = ours
	}{
		"cold":                    {sandboxPodNamed("demo", nil), "demo", ""},
		"claimed from a pool":     {sandboxPodNamed("demo", claimedPod("warm", "x1y2z", "demo")), "demo", ""},
		"asked by another name":   {sandboxPodNamed("demo", nil), "other", `label agentkernel/sandbox is "demo"`},
		"no managed-by label":     {sandboxPodNamed("demo", func(p *corev1.Pod) { delete(p.Labels, LabelManagedBy) }), "demo", "lacks the label"},
		"name and label disagree": {sandboxPodNamed("demo", func(p *corev1.Pod) { p.Name = "web-1" }), "demo", "its name is neither"},
		"pool label but not a member name": {sandboxPodNamed("demo", func(p *corev1.Pod) {
			p.Name = "imposter"
			p.Labels[LabelPool] = "warm"
		}), "demo", "its name is neither"},
		"member of another pool": {sandboxPodNamed("demo", func(p *corev1.Pod) {
			claimedPod("warm", "abcde", "demo")(p)
			p.Labels[LabelPool] = "cold"
		}), "demo", "its name is neither"},
		"controlled by a ReplicaSet": {sandboxPodNamed("demo", controlled), "demo", `controlled by ReplicaSet "web-abc"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := Ours(tc.pod, tc.name)
			switch {
			case tc.why == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.why != "" && (err == nil || !strings.Contains(err.Error(), tc.why)):
				t.Fatalf("Ours = %v, want %q", err, tc.why)
			}
		})
	}
}

// A Pod that carries the sandbox's labels is not trusted for them: spoofed
// Pods are neither found, exec'd into, listed nor deleted.
func TestSpoofedPodsAreRefused(t *testing.T) {
	deployment := sandboxPodNamed("web", func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-1", UID: "rs", Controller: ptr.To(true)}}
	})
	renamed := sandboxPodNamed("db", func(p *corev1.Pod) { p.Name = "postgres-0" })
	cs := fakeCluster(deployment, renamed)
	ctx := context.Background()

	var notManaged *NotManagedError
	if _, err := Find(ctx, cs, "ns", "web"); !errors.As(err, &notManaged) || !strings.Contains(err.Error(), "controlled by ReplicaSet") {
		t.Fatalf("Find(web) = %v", err)
	}
	if _, err := Find(ctx, cs, "ns", "db"); !errors.As(err, &notManaged) || !strings.Contains(err.Error(), `"postgres-0"`) {
		t.Fatalf("Find(db) = %v", err)
	}
	if _, err := Delete(ctx, cs, "ns", "web", nil); !errors.As(err, &notManaged) {
		t.Fatalf("Delete(web) = %v", err)
	}
	if err := DeletePod(ctx, cs, renamed, nil); !errors.As(err, &notManaged) {
		t.Fatalf("DeletePod(postgres-0) = %v", err)
	}
	pods, err := List(ctx, cs, "ns", "")
	if err != nil || len(pods) != 0 {
		t.Fatalf("List = %v, %v", pods, err)
	}
	left, _ := cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
	if len(left.Items) != 2 {
		t.Fatalf("spoofed pods were deleted: %d left", len(left.Items))
	}
}

func TestFindClaimedSandboxByLabel(t *testing.T) {
	claimed := sandboxPodNamed("demo", claimedPod("warm", "abcde", "demo"))
	warm := sandboxPodNamed("unclaimed", func(p *corev1.Pod) {
		p.Name = PoolMemberPrefix("warm") + "fghij"
		p.Labels[LabelPool] = "warm"
		delete(p.Labels, LabelSandbox)
	})
	cs := fakeCluster(claimed, warm)
	got, err := Find(context.Background(), cs, "ns", "demo")
	if err != nil || got.Name != claimed.Name {
		t.Fatalf("Find = %v, %v", got, err)
	}
	pods, err := List(context.Background(), cs, "ns", "")
	if err != nil || len(pods) != 1 || pods[0].Name != claimed.Name {
		t.Fatalf("List must show the claimed sandbox and not the warm member: %v, %v", pods, err)
	}
	// Two live Pods with one sandbox name: refuse to guess.
	twin := sandboxPodNamed("demo", claimedPod("warm", "klmno", "demo"))
	twin.UID = "twin"
	cs = fakeCluster(claimed, twin)
	if _, err := Find(context.Background(), cs, "ns", "demo"); err == nil || !strings.Contains(err.Error(), "2 pods claim to be sandbox") {
		t.Fatalf("Find with twins = %v", err)
	}
	// A terminating one gives way to the live one.
	twin.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	cs = fakeCluster(claimed, twin)
	if got, err := Find(context.Background(), cs, "ns", "demo"); err != nil || got.UID != claimed.UID {
		t.Fatalf("Find = %v, %v", got, err)
	}
}

func TestNotFoundSaysWhatToDo(t *testing.T) {
	var notFound *NotFoundError
	_, err := Find(context.Background(), fakeCluster(), "ns", "missing")
	if !errors.As(err, &notFound) || field.StepOf(err) != (field.Step{Hint: field.HintListSandboxes, Name: "missing", Namespace: "ns"}) {
		t.Fatalf("err = %v", err)
	}
}

func TestSelectorOnlyReachesSandboxes(t *testing.T) {
	for in, want := range map[string]string{"": SandboxSelector, "team=ml": SandboxSelector + ",team=ml"} {
		if got, err := Selector(in); err != nil || got != want {
			t.Errorf("Selector(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := Selector("a in (b"); err == nil {
		t.Error("bad selector accepted")
	}
}
