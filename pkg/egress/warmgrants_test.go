package egress

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// warmPool is a pool's PodTemplate as pool create stores it, with uid.
func warmPool(t *testing.T, name string, uid types.UID, allow ...string) *corev1.PodTemplate {
	t.Helper()
	s := sandbox.NewSpec("", ns)
	if len(allow) > 0 {
		var err error
		if s.AllowHosts, err = fence.CanonicalAllowHosts(allow); err != nil {
			t.Fatal(err)
		}
		s.Network = sandbox.NetworkNone
	}
	p, err := pool.NewPool(name, s, 1)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := p.PodTemplate()
	tmpl.UID = uid
	return tmpl
}

// memberOf is a warm member of the pool t defines, as the pool makes it,
// running at ip.
func memberOf(t *corev1.PodTemplate, suffix, ip string) *corev1.Pod {
	poolName := t.Labels[sandbox.LabelPool]
	labels := map[string]string{pool.LabelFence: "f" + suffix}
	for k, v := range t.Template.Labels {
		labels[k] = v
	}
	annotations := map[string]string{pool.AnnotationPoolSpec: t.Annotations[pool.AnnotationPoolSpec]}
	for k, v := range t.Template.Annotations {
		annotations[k] = v
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: sandbox.PoolMemberPrefix(poolName) + suffix, Namespace: ns, UID: types.UID("uid-" + suffix),
			Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "PodTemplate", Name: t.Name, UID: t.UID}},
		},
		Spec:   *t.Template.Spec.DeepCopy(),
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

// An unclaimed member of a pool made with --allow-host reaches exactly its
// pool's hosts while it warms up, and only a member its pool made does.
func TestWarmMemberGrants(t *testing.T) {
	warm := warmPool(t, "warm", "uid-warm", "registry.npmjs.org", "*.npmjs.org")
	other := warmPool(t, "other", "uid-other", "example.com")
	open := warmPool(t, "open", "uid-open")

	real := memberOf(warm, "aaaaa", "10.244.2.1")

	// Labelled and named like a member, but no pool owns it.
	unowned := memberOf(warm, "bbbbb", "10.244.2.2")
	unowned.OwnerReferences = nil

	// Owned by another pool's PodTemplate.
	otherOwner := memberOf(warm, "ccccc", "10.244.2.3")
	otherOwner.OwnerReferences[0].Name, otherOwner.OwnerReferences[0].UID = other.Name, other.UID

	// A member of an earlier pool of the same name (its owner's UID).
	stale := memberOf(warm, "ddddd", "10.244.2.4")
	stale.OwnerReferences[0].UID = "uid-earlier"

	// It asks for more than its pool has.
	greedy := memberOf(warm, "eeeee", "10.244.2.5")
	greedy.Annotations[fence.AnnotationAllowHosts] = `["registry.npmjs.org:443","*.npmjs.org:443","evil.example:443"]`

	// A controller's Pod with the member's labels, name and owner.
	controlled := memberOf(warm, "fffff", "10.244.2.6")
	controlled.OwnerReferences = append(controlled.OwnerReferences, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: ptr.To(true)})

	// Claimed: the claim's grant, from its own annotation, as a sandbox's.
	claimed := memberOf(warm, "ggggg", "10.244.2.7")
	claimed.Labels[sandbox.LabelSandbox] = "mine"
	claimed.OwnerReferences = nil
	claimed.Annotations[fence.AnnotationAllowHosts] = `["api.anthropic.com:443"]`

	// A member of a pool without --allow-host.
	openMember := memberOf(open, "hhhhh", "10.244.2.8")

	// A member whose pool is gone.
	orphan := memberOf(warmPool(t, "gone", "uid-gone", "example.com"), "iiiii", "10.244.2.9")

	// A member in its node's network namespace.
	hostNet := memberOf(warm, "jjjjj", "10.0.2.16")
	hostNet.Spec.HostNetwork = true

	// Named for another pool than its label says.
	misnamed := memberOf(warm, "kkkkk", "10.244.2.10")
	misnamed.Name = sandbox.PoolMemberPrefix("other") + "kkkkk"

	// A member of a pool whose PodTemplate is not ours: our name, not our label.
	fake1 := warmPool(t, "fake", "uid-fake", "example.com")
	delete(fake1.Labels, sandbox.LabelManagedBy)
	fakeMember := memberOf(fake1, "lllll", "10.244.2.11")

	cs := fake.NewClientset(warm, other, open, fake1, real, unowned, otherOwner, stale, greedy, controlled, claimed, openMember, orphan, hostNet, misnamed, fakeMember)
	g := startGrants(t, cs, &syncBuffer{})

	for _, tc := range []struct {
		ip, pool, sandbox, hosts, denied string
	}{
		{ip: "10.244.2.1", pool: "warm", hosts: "registry.npmjs.org:443 *.npmjs.org:443"},
		{ip: "10.244.2.2", denied: `is not a member pool "warm" made: it is not owned by the PodTemplate agentkernel-pool-warm with UID uid-warm`},
		{ip: "10.244.2.3", denied: "it is not owned by the PodTemplate agentkernel-pool-warm"},
		{ip: "10.244.2.4", denied: "it is not owned by the PodTemplate agentkernel-pool-warm with UID uid-warm"},
		{ip: "10.244.2.5", denied: "its agentkernel/allow-hosts annotation is not its pool's"},
		{ip: "10.244.2.6", denied: `controlled by ReplicaSet "rs"`},
		{ip: "10.244.2.7", sandbox: "mine", hosts: "api.anthropic.com:443"},
		{ip: "10.244.2.8", denied: "its pool grants no hosts"},
		{ip: "10.244.2.9", denied: "the pool has no PodTemplate agentkernel-pool-gone"},
		{ip: "10.0.2.16", denied: "hostNetwork"},
		{ip: "10.244.2.10", denied: `its name does not start with "agentkernel-pool-warm-"`},
		{ip: "10.244.2.11", denied: "its PodTemplate agentkernel-pool-fake is not a pool's definition"},
	} {
		gr, err := lookupErr(g, tc.ip)
		switch {
		case tc.denied != "":
			if !strings.Contains(err, tc.denied) {
				t.Errorf("Lookup(%s) = %+v, %q; want denied saying %q", tc.ip, gr, err, tc.denied)
			}
		case err != "" || gr.Pool != tc.pool || gr.Sandbox != tc.sandbox || strings.Join(ruleStrings(gr.Rules), " ") != tc.hosts:
			t.Errorf("Lookup(%s) = %+v, %q; want pool %q sandbox %q hosts %q", tc.ip, gr, err, tc.pool, tc.sandbox, tc.hosts)
		}
	}
}

// A member's grant follows its pool's PodTemplate as well as its Pod: none
// before the pool's definition is seen, its pool's hosts once it is, none
// once the pool is gone; each change is one line.
func TestWarmGrantsFollowThePool(t *testing.T) {
	cs := fake.NewClientset()
	log := &syncBuffer{}
	g := startGrants(t, cs, log)
	ctx := context.Background()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
			t.Fatalf("%s: not within 30s", what)
		}
	}
	tmpl := warmPool(t, "warm", "uid-warm", "registry.npmjs.org")
	member := memberOf(tmpl, "aaaaa", "10.244.3.1")
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, member, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("the member to be refused", func() bool { return strings.Contains(log.String(), `"msg":"untrusted"`) })
	if _, err := cs.CoreV1().PodTemplates(ns).Create(ctx, tmpl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("the member's grant", func() bool { gr, err := lookupErr(g, "10.244.3.1"); return err == "" && gr.Pool == "warm" })
	eventually("the grant's line", func() bool { return strings.Contains(log.String(), `"msg":"grant"`) })
	if err := cs.CoreV1().PodTemplates(ns).Delete(ctx, tmpl.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("the grant to go with the pool", func() bool {
		_, err := lookupErr(g, "10.244.3.1")
		return strings.Contains(err, "the pool has no PodTemplate")
	})
	eventually("the revoke's line", func() bool { return strings.Contains(log.String(), `"msg":"revoke"`) })

	var msgs []string
	for _, l := range log.lines(t) {
		msgs = append(msgs, l["msg"].(string)+" "+strings.TrimSpace(stringOr(l["pool"])+" "+stringOr(l["pod"])))
	}
	want := []string{"untrusted " + member.Name, "grant warm " + member.Name, "revoke warm " + member.Name}
	if strings.Join(msgs, "; ") != strings.Join(want, "; ") {
		t.Errorf("log: %q, want %q", msgs, want)
	}
}
