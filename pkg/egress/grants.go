// Package egress is the namespace's egress proxy: the HTTP(S) proxy that
// lets a sandbox made with --allow-host reach exactly the hosts it was
// granted (proxy.go), the key routes that send a sandbox's model-API
// requests on with a key the sandbox never sees (route.go, inject.go,
// keytable.go) and count what each spent (usage*.go), the grant table it
// keeps by watching the namespace's Pods (this file), and the objects that
// run it (install.go).
package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/hosts"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// Grant is what a client address may reach, and whose it is.
type Grant struct {
	// Sandbox is the sandbox's name; "" for a warm member nobody has
	// claimed yet, whose pool is Pool.
	Sandbox string
	Pool    string
	Pod     string
	Rules   []hosts.Rule
	// KeyGrant is the Pod's keys.GrantAnnotation: the key table's entry
	// for Pod is used only if its grant is this one. "" for none.
	KeyGrant string
}

// Grants tells the proxy which sandbox a client address belongs to. A
// denial is an error saying why.
type Grants interface {
	Lookup(ip netip.Addr) (Grant, error)
}

// PodGrants keeps the grant table of one namespace from a watch of its
// Pods (all of them: an address is trusted only while exactly one live Pod
// holds it, whatever that Pod is).
type PodGrants struct {
	informer cache.SharedIndexInformer
	// templates are the namespace's PodTemplates: a pool's definition says
	// what its unclaimed members may reach (pool.WarmAllowHosts).
	templates cache.SharedIndexInformer
	namespace string
	log       *slog.Logger
}

const ipIndex = "podIP"

// NewPodGrants watches the Pods of namespace. Run it, then wait for
// HasSynced before answering lookups: until then it knows no one.
func NewPodGrants(cs kubernetes.Interface, namespace string, log *slog.Logger) *PodGrants {
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace))
	inf := factory.Core().V1().Pods().Informer()
	tmpl := factory.Core().V1().PodTemplates().Informer()
	g := &PodGrants{informer: inf, templates: tmpl, namespace: namespace, log: log}
	// Errors only if the informer already started: it has not.
	_ = tmpl.SetTransform(slimTemplate)
	_ = inf.SetTransform(slimPod)
	_ = inf.AddIndexers(cache.Indexers{ipIndex: podIPKeys})
	_, _ = tmpl.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { g.templateChanged(nil, obj) },
		UpdateFunc: g.templateChanged,
		DeleteFunc: func(obj any) { g.templateChanged(obj, nil) },
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { g.changed(nil, obj) },
		UpdateFunc: g.changed,
		DeleteFunc: func(obj any) { g.changed(obj, nil) },
	})
	return g
}

// Run watches until ctx ends. The pools' definitions are read first, so
// that a warm member's first event is judged with its pool's.
func (g *PodGrants) Run(ctx context.Context) {
	go g.templates.RunWithContext(ctx)
	cache.WaitForCacheSync(ctx.Done(), g.templates.HasSynced)
	g.informer.RunWithContext(ctx)
}

// HasSynced reports whether the first lists have been read.
func (g *PodGrants) HasSynced() bool { return g.informer.HasSynced() && g.templates.HasSynced() }

// WaitForSync blocks until the first lists have been read or ctx ends.
func (g *PodGrants) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), g.informer.HasSynced, g.templates.HasSynced) {
		return fmt.Errorf("the watch of the namespace's Pods and PodTemplates did not sync: %w", context.Cause(ctx))
	}
	return nil
}

// template returns the PodTemplate the pool's definition is stored in, or
// nil.
func (g *PodGrants) template(namespace, poolName string) *corev1.PodTemplate {
	obj, ok, err := g.templates.GetIndexer().GetByKey(namespace + "/" + pool.PoolTemplateName(poolName))
	if err != nil || !ok {
		return nil
	}
	t, _ := obj.(*corev1.PodTemplate)
	return t
}

// Lookup finds the one live Pod that holds ip, and its grants if it is a
// sandbox of ours. Two live Pods with one address (an address reused
// before the API caught up), a Pod that is not a sandbox, a sandbox being
// deleted or one that has ended: no grants.
func (g *PodGrants) Lookup(ip netip.Addr) (Grant, error) {
	objs, err := g.informer.GetIndexer().ByIndex(ipIndex, ip.Unmap().String())
	if err != nil {
		return Grant{}, err
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		pods = append(pods, o.(*corev1.Pod))
	}
	return lookup(pods, ip, g.template)
}

// Exists reports whether the namespace has a Pod of that name (as last
// seen): what the proxy counted for a Pod that is gone is forgotten.
func (g *PodGrants) Exists(pod string) bool {
	_, ok, err := g.informer.GetIndexer().GetByKey(g.namespace + "/" + pod)
	return err == nil && ok
}

// templateOf finds a pool's PodTemplate in a namespace, or nil.
type templateOf func(namespace, pool string) *corev1.PodTemplate

func lookup(pods []*corev1.Pod, ip netip.Addr, templates templateOf) (Grant, error) {
	var live []*corev1.Pod
	for _, p := range pods {
		if holdsIP(p) {
			live = append(live, p)
		}
	}
	switch len(live) {
	case 0:
		if len(pods) > 0 {
			return Grant{}, fmt.Errorf("address %s belongs to pod %s, which is being deleted or has ended", ip, pods[0].Name)
		}
		return Grant{}, fmt.Errorf("no pod in the namespace has address %s", ip)
	case 1:
		return grantOf(live[0], templates)
	}
	names := make([]string, len(live))
	for i, p := range live {
		names[i] = p.Name
	}
	slices.Sort(names)
	return Grant{}, fmt.Errorf("%d live pods claim address %s (%v): trusting none", len(live), ip, names)
}

// holdsIP: the Pod may be using its address now. A Pod that has ended has
// given its address back to the network plugin even though the object
// still shows it; a Pod being deleted may be about to.
func holdsIP(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// grantOf returns a Pod's grants if, and only if, it is one of our
// sandboxes (sandbox.Ours: labels, name and owners agree) or an unclaimed
// member of a pool made with --allow-host (pool.WarmAllowHosts: the pool's
// hosts, from its PodTemplate), has an address of its own and carries
// grants.
func grantOf(p *corev1.Pod, templates templateOf) (Grant, error) {
	name := sandbox.NameOf(p)
	if name == "" {
		return warmGrantOf(p, templates)
	}
	if why := sandbox.Ours(p, name); why != nil {
		return Grant{}, fmt.Errorf("pod %s is not a sandbox: %v", p.Name, why)
	}
	if p.Spec.HostNetwork {
		return Grant{}, fmt.Errorf("pod %s shares its node's address (hostNetwork)", p.Name)
	}
	rules, err := fence.AllowHostsOf(p)
	if err != nil {
		return Grant{}, fmt.Errorf("sandbox %s: %v", name, err)
	}
	if len(rules) == 0 {
		return Grant{}, fmt.Errorf("sandbox %s was granted no hosts (create it with --allow-host)", name)
	}
	return Grant{Sandbox: name, Pod: p.Name, Rules: rules, KeyGrant: p.Annotations[keys.GrantAnnotation]}, nil
}

// warmGrantOf: a warm member nobody has claimed yet is nobody's sandbox,
// but it may reach its pool's hosts while it warms up (its agent's
// install). Its Grant names no sandbox; Pool says whose member it is.
func warmGrantOf(p *corev1.Pod, templates templateOf) (Grant, error) {
	poolName := p.Labels[sandbox.LabelPool]
	if poolName == "" || poolName == sandbox.PoolActive {
		return Grant{}, fmt.Errorf("pod %s is not a sandbox: it has no %s label", p.Name, sandbox.LabelSandbox)
	}
	var t *corev1.PodTemplate
	if templates != nil {
		t = templates(p.Namespace, poolName)
	}
	allow, err := pool.WarmAllowHosts(p, t)
	if err != nil {
		return Grant{}, err
	}
	if p.Spec.HostNetwork {
		return Grant{}, fmt.Errorf("pod %s shares its node's address (hostNetwork)", p.Name)
	}
	rules := make([]hosts.Rule, 0, len(allow))
	for _, a := range allow {
		r, err := hosts.ParseRule(a)
		if err != nil {
			return Grant{}, fmt.Errorf("pool %s: %v", poolName, err)
		}
		rules = append(rules, r)
	}
	return Grant{Pool: poolName, Pod: p.Name, Rules: rules, KeyGrant: p.Annotations[keys.GrantAnnotation]}, nil
}

func podIPKeys(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	var keys []string
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			k := a.Unmap().String()
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	add(p.Status.PodIP)
	for _, ip := range p.Status.PodIPs {
		add(ip.IP)
	}
	return keys, nil
}

// slimPod keeps what the grant table reads, so a namespace of large Pods
// costs the proxy little memory.
func slimTemplate(obj any) (any, error) {
	if t, ok := obj.(*corev1.PodTemplate); ok {
		return pool.SlimPodTemplate(t), nil
	}
	return obj, nil
}

func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels, Annotations: keep(p.Annotations, fence.AnnotationAllowHosts, keys.GrantAnnotation),
			OwnerReferences: p.OwnerReferences, DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec:   corev1.PodSpec{HostNetwork: p.Spec.HostNetwork},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}, nil
}

func keep(m map[string]string, names ...string) map[string]string {
	var kept map[string]string
	for _, k := range names {
		if v, ok := m[k]; ok {
			if kept == nil {
				kept = map[string]string{}
			}
			kept[k] = v
		}
	}
	return kept
}

// changed logs what a Pod event did to the grant table: one JSON line
// when an address gains or loses grants, and one when a Pod that carries
// grants is not trusted with them.
func (g *PodGrants) changed(oldObj, newObj any) {
	g.logChange(oldObj, newObj, g.template, g.template)
}

// templateChanged logs what a pool's PodTemplate coming, changing or going
// did to the grants of the pool's unclaimed members.
func (g *PodGrants) templateChanged(oldObj, newObj any) {
	oldT, newT := templateObj(oldObj), templateObj(newObj)
	t := newT
	if t == nil {
		t = oldT
	}
	if t == nil {
		return
	}
	poolName := t.Labels[sandbox.LabelPool]
	if poolName == "" || t.Name != pool.PoolTemplateName(poolName) {
		return
	}
	only := func(t *corev1.PodTemplate) templateOf {
		return func(string, string) *corev1.PodTemplate { return t }
	}
	for _, obj := range g.informer.GetStore().List() {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Labels[sandbox.LabelPool] != poolName || p.Labels[sandbox.LabelSandbox] != "" {
			continue
		}
		g.logChange(p, p, only(oldT), only(newT))
	}
}

// logChange logs the change from oldObj seen with the PodTemplates
// oldTemplates to newObj seen with newTemplates.
func (g *PodGrants) logChange(oldObj, newObj any, oldTemplates, newTemplates templateOf) {
	before, beforeErr := grantState(oldObj, oldTemplates)
	after, afterErr := grantState(newObj, newTemplates)
	pod := podOf(newObj)
	if pod == nil {
		pod = podOf(oldObj)
	}
	if pod == nil {
		return
	}
	ips, _ := podIPKeys(pod)
	switch {
	case afterErr == nil && (beforeErr != nil || !sameGrant(before, after)):
		g.log.Info("grant", append(whose(after), "ips", ips, "hosts", ruleStrings(after.Rules), "keys", after.KeyGrant != "")...)
	case beforeErr == nil && afterErr != nil:
		g.log.Info("revoke", append(whose(before), "ips", ips, "reason", afterErr.Error())...)
	case afterErr != nil && newObj != nil && carriesGrants(pod) && !errors.Is(afterErr, errNoAddress) &&
		(oldObj == nil || beforeErr == nil || beforeErr.Error() != afterErr.Error()):
		g.log.Warn("untrusted", "pod", pod.Name, "reason", afterErr.Error())
	}
}

var errNoAddress = errors.New("no address yet")

// grantState is what the table would answer for the Pod's own address.
func grantState(obj any, templates templateOf) (Grant, error) {
	p := podOf(obj)
	if p == nil {
		return Grant{}, errors.New("gone")
	}
	if keys, _ := podIPKeys(p); len(keys) == 0 {
		return Grant{}, errNoAddress
	}
	if !holdsIP(p) {
		return Grant{}, errors.New("being deleted or ended")
	}
	return grantOf(p, templates)
}

func podOf(obj any) *corev1.Pod { return objectOf[*corev1.Pod](obj) }

func templateObj(obj any) *corev1.PodTemplate { return objectOf[*corev1.PodTemplate](obj) }

// objectOf is an informer event's object, also when the informer missed
// its deletion; the zero value when it is no T.
func objectOf[T any](obj any) T {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	t, _ := obj.(T)
	return t
}

func carriesGrants(p *corev1.Pod) bool {
	_, ok := p.Annotations[fence.AnnotationAllowHosts]
	return ok
}

func sameGrant(a, b Grant) bool {
	return a.Sandbox == b.Sandbox && a.Pool == b.Pool && a.Pod == b.Pod && slices.Equal(a.Rules, b.Rules) && a.KeyGrant == b.KeyGrant
}

// whose names a grant's holder in a log line: its sandbox, or the pool of
// a warm member nobody has claimed yet.
func whose(gr Grant) []any {
	if gr.Sandbox == "" {
		return []any{"pool", gr.Pool, "pod", gr.Pod}
	}
	return []any{"sandbox", gr.Sandbox, "pod", gr.Pod}
}

func ruleStrings(rules []hosts.Rule) []string {
	s := make([]string, len(rules))
	for i, r := range rules {
		s[i] = r.String()
	}
	return s
}
