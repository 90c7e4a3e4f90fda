package egress

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

const ns = "agents"

// sandboxPod is a Pod as create makes it, running at ip with grants.
func sandboxPod(t *testing.T, name, ip string, allow ...string) *corev1.Pod {
	t.Helper()
	s := sandbox.NewSpec(name, ns)
	var err error
	if s.AllowHosts, err = fence.CanonicalAllowHosts(allow); err != nil {
		t.Fatal(err)
	}
	pod := s.Pod()
	pod.UID = types.UID("uid-" + name)
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	return pod
}

func startGrants(t *testing.T, cs *fake.Clientset, log *syncBuffer) *PodGrants {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g := NewPodGrants(cs, ns, slog.New(slog.NewJSONHandler(log, nil)))
	go g.Run(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := g.WaitForSync(wctx); err != nil {
		t.Fatal(err)
	}
	return g
}

func lookupErr(g Grants, ip string) (Grant, string) {
	gr, err := g.Lookup(netip.MustParseAddr(ip))
	if err != nil {
		return gr, err.Error()
	}
	return gr, ""
}

func TestGrantLookup(t *testing.T) {
	a := sandboxPod(t, "a", "10.244.0.5", "api.anthropic.com", "*.npmjs.org")

	// A pool member, claimed: generated name, pool label, sandbox label.
	claimed := sandboxPod(t, "b", "10.244.0.6", "example.com")
	claimed.Name = sandbox.PoolMemberPrefix("warm") + "x7k2p"
	claimed.Labels[sandbox.LabelPool] = "warm"

	// Our labels and grants, but a name the plugin never gives.
	spoofName := sandboxPod(t, "c", "10.244.0.7", "example.com")
	spoofName.Name = "not-a-sandbox"

	// Our labels, name and grants, but a controller owns it.
	owned := sandboxPod(t, "d", "10.244.0.8", "example.com")
	owned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: ptr.To(true)}}

	// Our name and grants but not our labels.
	unlabelled := sandboxPod(t, "e", "10.244.0.9", "example.com")
	delete(unlabelled.Labels, sandbox.LabelManagedBy)

	// A sandbox in the node's network namespace would share its address.
	hostNet := sandboxPod(t, "f", "10.0.2.15", "example.com")
	hostNet.Spec.HostNetwork = true

	noGrants := sandboxPod(t, "g", "10.244.0.10")

	badGrants := sandboxPod(t, "h", "10.244.0.11", "example.com")
	badGrants.Annotations[fence.AnnotationAllowHosts] = `["169.254.169.254"]`

	// An address reused before the API caught up: two live pods claim it.
	dupA := sandboxPod(t, "i", "10.244.0.12", "example.com")
	dupB := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, UID: "uid-web"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.12"}}

	// A sandbox that ended gave its address back; the Pod now using it is
	// the one that counts.
	ended := sandboxPod(t, "j", "10.244.0.13", "example.com")
	ended.Status.Phase = corev1.PodSucceeded
	reuser := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "batch", Namespace: ns, UID: "uid-batch"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.13"}}

	terminating := sandboxPod(t, "k", "10.244.0.14", "example.com")
	terminating.DeletionTimestamp = ptr.To(metav1.Now())
	terminating.Finalizers = []string{"test/keep"}

	dual := sandboxPod(t, "l", "10.244.0.15", "example.com")
	dual.Status.PodIPs = []corev1.PodIP{{IP: "10.244.0.15"}, {IP: "fd00:10:244::f"}}

	// A warm pool member, not claimed: pool label, no sandbox label.
	warm := sandboxPod(t, "m", "10.244.0.16", "example.com")
	warm.Name = sandbox.PoolMemberPrefix("warm") + "q9w8e"
	warm.Labels[sandbox.LabelPool] = "warm"
	delete(warm.Labels, sandbox.LabelSandbox)

	cs := fake.NewClientset(warm, a, claimed, spoofName, owned, unlabelled, hostNet, noGrants, badGrants, dupA, dupB, ended, reuser, terminating, dual)
	g := startGrants(t, cs, &syncBuffer{})

	for _, tc := range []struct {
		ip, sandbox, denied string
	}{
		{ip: "10.244.0.5", sandbox: "a"},
		{ip: "::ffff:10.244.0.5", sandbox: "a"},
		{ip: "10.244.0.6", sandbox: "b"},
		{ip: "10.244.0.7", denied: "is not a sandbox: its name is neither"},
		{ip: "10.244.0.8", denied: "controlled by ReplicaSet"},
		{ip: "10.244.0.9", denied: "lacks the label"},
		{ip: "10.0.2.15", denied: "hostNetwork"},
		{ip: "10.244.0.10", denied: "granted no hosts"},
		{ip: "10.244.0.11", denied: "never connects there"},
		{ip: "10.244.0.12", denied: "2 live pods claim address 10.244.0.12 ([agentkernel-i web])"},
		{ip: "10.244.0.13", denied: "pod batch is not a sandbox"},
		{ip: "10.244.0.14", denied: "being deleted or has ended"},
		{ip: "10.244.0.15", sandbox: "l"},
		{ip: "fd00:10:244::f", sandbox: "l"},
		{ip: "10.244.0.16", denied: `pool "warm" made: the pool has no PodTemplate`},
		{ip: "10.244.0.99", denied: "no pod in the namespace has address 10.244.0.99"},
	} {
		gr, err := lookupErr(g, tc.ip)
		switch {
		case tc.denied != "" && !strings.Contains(err, tc.denied):
			t.Errorf("Lookup(%s) = %+v, %q; want denied saying %q", tc.ip, gr, err, tc.denied)
		case tc.denied == "" && (err != "" || gr.Sandbox != tc.sandbox):
			t.Errorf("Lookup(%s) = %+v, %q; want sandbox %s", tc.ip, gr, err, tc.sandbox)
		}
	}
	gr, _ := lookupErr(g, "10.244.0.5")
	if len(gr.Rules) != 2 || gr.Rules[0].String() != "api.anthropic.com:443" || gr.Rules[1].String() != "*.npmjs.org:443" || gr.Pod != "agentkernel-a" {
		t.Errorf("sandbox a's grant = %+v", gr)
	}
}

// The table follows the watch: a sandbox's grants appear when its Pod
// gets an address, change with its annotation, and go with the Pod.
func TestGrantsFollowTheWatch(t *testing.T) {
	cs := fake.NewClientset()
	log := &syncBuffer{}
	g := startGrants(t, cs, log)
	ctx := context.Background()
	pods := cs.CoreV1().Pods(ns)
	eventually := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
			t.Fatalf("%s: not within 30s", what)
		}
	}
	has := func(ip, sandboxName, rule string) func() bool {
		return func() bool {
			gr, err := g.Lookup(netip.MustParseAddr(ip))
			if err != nil || gr.Sandbox != sandboxName {
				return false
			}
			for _, r := range gr.Rules {
				if r.String() == rule {
					return true
				}
			}
			return false
		}
	}
	denied := func(ip string) func() bool {
		return func() bool { _, err := g.Lookup(netip.MustParseAddr(ip)); return err != nil }
	}

	// Created, not yet running: no address, nothing to grant.
	pod := sandboxPod(t, "a", "", "example.com")
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.2", PodIPs: []corev1.PodIP{{IP: "10.244.1.2"}}}
	if _, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("sandbox a's grant", has("10.244.1.2", "a", "example.com:443"))

	pod.Annotations[fence.AnnotationAllowHosts] = `["other.example:443"]`
	if _, err := pods.Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("sandbox a's new grant", has("10.244.1.2", "a", "other.example:443"))

	if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("sandbox a's grant to go", denied("10.244.1.2"))

	// A spoofed Pod with our labels and grants gets nothing, and the
	// proxy says so.
	spoof := sandboxPod(t, "b", "10.244.1.3", "example.com")
	spoof.Name = "spoof"
	if _, err := pods.Create(ctx, spoof, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("the spoof to be seen", func() bool { return strings.Contains(log.String(), `"pod":"spoof"`) })
	if _, err := g.Lookup(netip.MustParseAddr("10.244.1.3")); err == nil {
		t.Fatal("a spoofed Pod got grants")
	}

	var msgs []string
	for _, l := range log.lines(t) {
		msgs = append(msgs, l["msg"].(string)+" "+strings.TrimSpace(stringOr(l["sandbox"])+" "+stringOr(l["pod"])))
	}
	want := []string{"grant a agentkernel-a", "grant a agentkernel-a", "revoke a agentkernel-a", "untrusted spoof"}
	if strings.Join(msgs, "; ") != strings.Join(want, "; ") {
		t.Errorf("log: %q, want %q", msgs, want)
	}
}

func stringOr(v any) string {
	s, _ := v.(string)
	return s
}
