package egress

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

func testConfig() *Config {
	return &Config{
		Namespace: ns, Image: "ghcr.io/agentkernel/kubectl-agentkernel-egress:v1.2.3",
		Private:   []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},
		APIServer: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:443"), netip.MustParseAddrPort("172.18.0.2:6443")},
	}
}

// recorder notes creates and deletes in order, gives created objects UIDs
// (as an API server does) and can fail a kind's create.
type recorder struct {
	mu      sync.Mutex
	actions []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.actions = append(r.actions, s)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.actions)
}

func recordingCluster(failCreate string, objects ...runtime.Object) (*fake.Clientset, *recorder) {
	cs := fakecluster.New(objects...)
	rec := &recorder{}
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		m, _ := meta.Accessor(a.(k8stesting.CreateAction).GetObject())
		if a.GetResource().Resource == failCreate {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: failCreate}, m.GetName(), errors.New("not allowed"))
		}
		rec.add("create " + a.GetResource().Resource)
		return false, nil, nil
	})
	cs.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rec.add("delete " + a.GetResource().Resource)
		return false, nil, nil
	})
	return cs, rec
}

func TestInstallCreatesThePolicyFirstAndIsIdempotent(t *testing.T) {
	cs, rec := recordingCluster("")
	in, err := Install(context.Background(), cs, testConfig(), InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"create networkpolicies", "create serviceaccounts", "create roles", "create rolebindings", "create secrets", "create configmaps", "create services", "create deployments"}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	if in.Service == nil || len(in.Created) != 8 {
		t.Fatalf("installed %+v", in)
	}
	again, err := Install(context.Background(), cs, testConfig(), InstallOptions{})
	if err != nil || len(again.Created) != 0 || again.Service == nil {
		t.Fatalf("second install: %+v, %v", again, err)
	}
	if got := rec.list(); len(got) != len(want) {
		t.Fatalf("a second install changed something: %v", got)
	}
}

// A failed install removes what it made, newest first, and says what
// failed.
func TestFailedInstallLeavesNothing(t *testing.T) {
	cs, rec := recordingCluster("roles")
	_, err := Install(context.Background(), cs, testConfig(), InstallOptions{})
	if err == nil || !strings.Contains(err.Error(), `creating the egress proxy's role/agentkernel-egress in namespace "agents"`) || !apierrors.IsForbidden(err) {
		t.Fatalf("err = %v", err)
	}
	want := []string{"create networkpolicies", "create serviceaccounts", "delete serviceaccounts", "delete networkpolicies"}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	nps, _ := cs.NetworkingV1().NetworkPolicies(ns).List(context.Background(), metav1.ListOptions{})
	sas, _ := cs.CoreV1().ServiceAccounts(ns).List(context.Background(), metav1.ListOptions{})
	if len(nps.Items)+len(sas.Items) != 0 {
		t.Fatalf("left behind: %d policies, %d service accounts", len(nps.Items), len(sas.Items))
	}
}

// An object of the proxy's name that is not ours is never adopted or
// changed, and nothing this call made stays.
func TestInstallRefusesForeignObjects(t *testing.T) {
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fence.ProxyName, Namespace: ns, UID: "foreign"}}
	cs, rec := recordingCluster("", foreign)
	_, err := Install(context.Background(), cs, testConfig(), InstallOptions{Update: true})
	var notOurs *NotOursError
	if !errors.As(err, &notOurs) || !strings.Contains(err.Error(), `Service "agentkernel-egress" in namespace "agents" exists and was not made by kubectl agentkernel`) {
		t.Fatalf("err = %v", err)
	}
	for _, a := range rec.list() {
		if a == "delete services" {
			t.Fatal("the foreign Service was deleted")
		}
	}
	if n := len(rec.list()); n != 12 { // 6 created, 6 removed again
		t.Fatalf("actions: %v", rec.list())
	}
}

func TestEnsure(t *testing.T) {
	cs, rec := recordingCluster("")
	var warnings []string
	in, err := Ensure(context.Background(), cs, ns, EnsureOptions{Image: "img:1", Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil || in.Service == nil || in.Service.Name != fence.ProxyName || len(in.Created) != 8 {
		t.Fatalf("Ensure: %+v, %v", in, err)
	}
	// The fake cluster has no "kubernetes" Service: the policy assumes.
	if len(warnings) != 1 || !strings.Contains(warnings[0], "--api-server") {
		t.Fatalf("warnings: %q", warnings)
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(context.Background(), fence.ProxyName, metav1.GetOptions{})
	if err != nil || dep.Spec.Template.Spec.Containers[0].Image != "img:1" {
		t.Fatalf("deployment: %v", err)
	}
	n := len(rec.list())
	dep.Annotations[AnnotationVersion] = "v0.9.0"
	if _, err := cs.AppsV1().Deployments(ns).Update(context.Background(), dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if in, err := Ensure(context.Background(), cs, ns, EnsureOptions{Image: "img:2"}); err != nil || len(in.Created) != 0 || in.Service == nil || in.Version != "v0.9.0" {
		t.Fatalf("second Ensure: %+v, %v", in, err)
	}
	if len(rec.list()) != n {
		t.Fatalf("Ensure changed an existing proxy: %v", rec.list()[n:])
	}
	dep, _ = cs.AppsV1().Deployments(ns).Get(context.Background(), fence.ProxyName, metav1.GetOptions{})
	if dep.Spec.Template.Spec.Containers[0].Image != "img:1" {
		t.Fatal("Ensure replaced the image of an existing proxy")
	}
}

func TestDetectAPIServer(t *testing.T) {
	port := int32(6443)
	cs := fake.NewClientset(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"}, Ports: []corev1.ServicePort{{Port: 443}}}},
		endpointSlice("kubernetes", []string{"172.18.0.2", "172.18.0.3"}, port),
	)
	got, err := DetectAPIServer(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, ap := range got {
		s = append(s, ap.String())
	}
	if strings.Join(s, ",") != "10.96.0.1:443,172.18.0.2:6443,172.18.0.3:6443" {
		t.Fatalf("DetectAPIServer = %v", s)
	}
	if _, err := DetectAPIServer(context.Background(), fake.NewClientset()); err == nil {
		t.Fatal("nothing to detect, no error")
	}
}

func TestParsePrivateCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"10.20.0.0/16": "10.20.0.0/16", "10.244.0.7": "10.244.0.7/32", "fd00:10::/64": "fd00:10::/64",
		"::ffff:10.0.0.0/104": "10.0.0.0/8", "0.0.0.0/0": "0.0.0.0/0",
	} {
		p, err := ParsePrivateCIDR(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrivateCIDR(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for in, wantErr := range map[string]string{
		"10.20.0.1/16": "did you mean 10.20.0.0/16", "127.0.0.0/8": "loopback", "169.254.0.0/16": "link-local",
		"93.184.216.0/24": "public addresses only", "nonsense": "expected a CIDR", "fe80::/64": "link-local",
	} {
		if _, err := ParsePrivateCIDR(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParsePrivateCIDR(%q) = %v, want %q", in, err, wantErr)
		}
	}
}

func TestImageTag(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3": "v1.2.3", "v0.1.1-snapshot+abc1234": "v0.1.1-snapshot-abc1234",
		"v0.0.0-20261201152545-0123456789ab+dirty": "v0.0.0-20261201152545-0123456789ab-dirty", "dev": "dev", "": "dev",
		".x": "-x", strings.Repeat("a", 200): strings.Repeat("a", 128),
	} {
		if got := ImageTag(in); got != want {
			t.Errorf("ImageTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func endpointSlice(service string, addrs []string, port int32) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: service, Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: addrs}},
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
	}
}

// A user who may not even read the proxy lacks the plugin's own Role: Ensure
// says so with the refusal itself (CannotReadError), and tries no install,
// which would only be refused for something else.
func TestEnsureCannotRead(t *testing.T) {
	for _, resource := range []string{"services", "deployments", "networkpolicies"} {
		t.Run(resource, func(t *testing.T) {
			cs, rec := recordingCluster("")
			if _, err := Ensure(context.Background(), cs, ns, EnsureOptions{Image: "img:1"}); err != nil {
				t.Fatal(err)
			}
			n := len(rec.list())
			cs.PrependReactor("get", resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: resource}, fence.ProxyName, errors.New("RBAC says no"))
			})
			_, err := Ensure(context.Background(), cs, ns, EnsureOptions{Image: "img:1"})
			var cannot *CannotReadError
			if !errors.As(err, &cannot) || !apierrors.IsForbidden(err) {
				t.Fatalf("Ensure: %v, want a CannotReadError that is a Forbidden", err)
			}
			if got := rec.list()[n:]; len(got) != 0 {
				t.Fatalf("Ensure wrote after a refused read: %v", got)
			}
		})
	}
}

// The key table and the usage ConfigMap are made empty and ours; an
// install over them (egress install, which updates the rest) never
// touches their data, and one of those names that is not ours is refused.
func TestInstallMakesTheKeyTableAndLeavesItsData(t *testing.T) {
	ctx := context.Background()
	cs, _ := recordingCluster("")
	if _, err := Install(ctx, cs, testConfig(), InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, keys.SecretName, metav1.GetOptions{})
	if err != nil || len(sec.Data) != 0 || !ours(sec) || len(sec.OwnerReferences) != 0 {
		t.Fatalf("key table: %+v, %v", sec, err)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, keys.UsageConfigMapName, metav1.GetOptions{})
	if err != nil || len(cm.Data) != 0 || !ours(cm) {
		t.Fatalf("usage: %+v, %v", cm, err)
	}
	sec.Data = map[string][]byte{"agentkernel-a": []byte("row")}
	if _, err := cs.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(ctx, cs, testConfig(), InstallOptions{Update: true}); err != nil {
		t.Fatal(err)
	}
	if sec, _ = cs.CoreV1().Secrets(ns).Get(ctx, keys.SecretName, metav1.GetOptions{}); string(sec.Data["agentkernel-a"]) != "row" {
		t.Fatalf("egress install changed the key table: %v", sec.Data)
	}

	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: keys.SecretName, Namespace: ns, UID: "foreign"}}
	cs, _ = recordingCluster("", foreign)
	_, err = Install(ctx, cs, testConfig(), InstallOptions{})
	var notOurs *NotOursError
	if !errors.As(err, &notOurs) || notOurs.Kind != "Secret" {
		t.Fatalf("a foreign key table: %v", err)
	}
}

// The proxy's Role reads the key table by name and no other Secret, and
// writes the usage ConfigMap by name.
func TestProxyRoleNamesItsSecretAndConfigMap(t *testing.T) {
	for _, r := range testConfig().Objects().Role.Rules {
		for _, res := range r.Resources {
			switch res {
			case "secrets":
				if !slices.Equal(r.ResourceNames, []string{keys.SecretName}) || !slices.Equal(r.Verbs, []string{"get", "list", "watch"}) {
					t.Errorf("secrets: %+v", r)
				}
			case "configmaps":
				if !slices.Equal(r.ResourceNames, []string{keys.UsageConfigMapName}) || slices.Contains(r.Verbs, "create") || slices.Contains(r.Verbs, "delete") {
					t.Errorf("configmaps: %+v", r)
				}
			case "pods", "podtemplates":
				if slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" }) {
					t.Errorf("pods: %+v", r)
				}
			default:
				t.Errorf("the proxy may %v %s", r.Verbs, res)
			}
		}
	}
}
