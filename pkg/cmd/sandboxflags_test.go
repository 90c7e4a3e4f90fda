package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/cli"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// dryRunObjects runs create --dry-run=client -o yaml and decodes what it shows.
func dryRunObjects(t *testing.T, args ...string) (*networkingv1.NetworkPolicy, *corev1.Pod) {
	t.Helper()
	out, err := runCreate(t, nil, append([]string{"demo", "--dry-run=client", "-o", "yaml"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var list corev1.List
	if err := yaml.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var np *networkingv1.NetworkPolicy
	var pod *corev1.Pod
	for _, item := range list.Items {
		var m metav1.TypeMeta
		_ = yaml.Unmarshal(item.Raw, &m)
		switch m.Kind {
		case "NetworkPolicy":
			np = &networkingv1.NetworkPolicy{}
			_ = yaml.Unmarshal(item.Raw, np)
		case "Pod":
			pod = &corev1.Pod{}
			_ = yaml.Unmarshal(item.Raw, pod)
		}
	}
	if pod == nil {
		t.Fatalf("no Pod in:\n%s", out)
	}
	return np, pod
}

// --allow-egress makes an egress sandbox whose policy lists exactly those
// destinations and DNS, shown whole by a client-side dry run.
func TestCreateAllowEgress(t *testing.T) {
	np, pod := dryRunObjects(t, "--allow-egress", "203.0.113.0/24:443", "--allow-egress", "[2001:db8::1]:8443/tcp", "--dns", "169.254.20.10")
	if np == nil || pod.Annotations[sandbox.AnnotationNetwork] != "egress" {
		t.Fatalf("no egress policy: %v %v", np, pod.Annotations)
	}
	if got := pod.Annotations[sandbox.AnnotationAllowEgress]; got != "203.0.113.0/24:443/TCP,[2001:db8::1/128]:8443/TCP" {
		t.Errorf("allow-egress annotation %q", got)
	}
	var peers []string
	for _, r := range np.Spec.Egress {
		for _, p := range r.To {
			if p.IPBlock == nil {
				t.Errorf("a peer that is not an address block: %+v (DNS was given with --dns)", p)
				continue
			}
			peers = append(peers, p.IPBlock.CIDR)
		}
	}
	if got := strings.Join(peers, " "); got != "203.0.113.0/24 2001:db8::1/128 169.254.20.10/32" {
		t.Errorf("egress peers %q", got)
	}
}

func TestCreateEgressFlagErrors(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"bad cidr":           {[]string{"--allow-egress", "10.1.2.3/8"}, "did you mean 10.0.0.0/8"},
		"host name":          {[]string{"--allow-egress", "api.example.com:443"}, "not an IP address"},
		"with no network":    {[]string{"--allow-egress", "203.0.113.0/24", "--network", "none"}, "cannot go with --network none"},
		"with open network":  {[]string{"--allow-egress", "203.0.113.0/24", "--network", "open"}, "cannot go with --network open"},
		"dns with protocol":  {[]string{"--dns", "10.0.0.10:53/udp"}, "both UDP and TCP"},
		"dns with no egress": {[]string{"--dns", "10.0.0.10", "--network", "none"}, "--dns only matters with --network egress"},
		"dns alone":          {[]string{"--dns", "10.0.0.10"}, "--dns only matters with --network egress"}, // never a way to the internet
		"with allow-host":    {[]string{"--allow-egress", "203.0.113.0/24", "--allow-host", "example.com"}, "--allow-egress and --allow-host cannot be combined"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := runCreate(t, nil, append([]string{"d"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// The allow-list works with a profile whose network is egress anyway.
	if np, _ := dryRunObjects(t, "--profile", "moderate", "--allow-egress", "203.0.113.0/24"); np == nil || len(np.Spec.Egress) != 2 {
		t.Errorf("moderate + --allow-egress: %+v", np)
	}
}

// list -o wide shows who made a sandbox, with what, and for how long.
func TestListWideShowsProvenance(t *testing.T) {
	s := sandbox.NewSpec("one", "test")
	s.Agent, s.CreatedBy, s.TTL = "claude", "alice@example.com", 2*time.Hour
	pod := s.Pod()
	var wide bytes.Buffer
	if err := printers.NewTablePrinter(printers.PrintOptions{Wide: true}).PrintObj(SandboxTable([]corev1.Pod{*pod}, time.Now()), &wide); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"AGENT", "claude", "TTL", "2h0m0s", "CREATED-BY", "alice@example.com", "VERSION", pod.Annotations[sandbox.AnnotationVersion]} {
		if !strings.Contains(wide.String(), want) {
			t.Errorf("wide list lacks %q:\n%s", want, wide.String())
		}
	}
}

// Policies add up: create names each other policy that widens the fence,
// and says so when it cannot look.
func TestWarnWideningPolicies(t *testing.T) {
	spec := sandbox.NewSpec("demo", "agents")
	allow := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-egress", Namespace: "agents"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, Egress: []networkingv1.NetworkPolicyEgressRule{{}}}}
	var errOut bytes.Buffer
	warnWideningPolicies(context.Background(), &cli.Clients{Clientset: fake.NewClientset(allow)}, &errOut, &spec)
	if got := errOut.String(); !strings.HasPrefix(got, `Warning: NetworkPolicy "allow-egress" also selects sandbox/demo and allows it egress; policies add up`) || strings.Count(got, "\n") != 1 {
		t.Errorf("warning: %q", got)
	}
	errOut.Reset()
	open := spec
	open.Network = sandbox.NetworkOpen
	warnWideningPolicies(context.Background(), &cli.Clients{Clientset: fake.NewClientset(allow)}, &errOut, &open)
	if errOut.Len() != 0 {
		t.Errorf("an open sandbox has no fence to widen: %q", errOut.String())
	}
	cs := fake.NewClientset()
	cs.PrependReactor("list", "networkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "networking.k8s.io", Resource: "networkpolicies"}, "", nil)
	})
	warnWideningPolicies(context.Background(), &cli.Clients{Clientset: cs}, &errOut, &spec)
	if got := errOut.String(); !strings.Contains(got, "Warning: could not check whether other NetworkPolicies widen the fence of sandbox/demo") || !strings.Contains(got, "kubectl agentkernel rbac -n agents") {
		t.Errorf("a forbidden list: %q", got)
	}
}
