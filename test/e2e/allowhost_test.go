package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// The egress proxy's objects on a real API server. On the simulated node
// the proxy's Pod is admitted and "runs" only in the API's view (kwok runs
// no containers): the proxy's own behaviour is tested in-process
// (pkg/egress), with its real Pod watch here against this API server from
// a process on this host (TestEgressGrantsFollowSandboxes), and for real
// on the qemu node (test/realnode).

var proxySelector = labels.SelectorFromSet(sandbox.ProxyLabels()).String()

// proxyObjects lists the proxy's objects in a namespace, as kind/name.
func proxyObjects(t *testing.T, ns string) []string {
	t.Helper()
	ctx := context.Background()
	opts := metav1.ListOptions{LabelSelector: proxySelector}
	var got []string
	add := func(kind string, names ...string) {
		for _, n := range names {
			got = append(got, kind+"/"+n)
		}
	}
	deps, err := env.cs.AppsV1().Deployments(ns).List(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		add("deployment", d.Name)
	}
	svcs, _ := env.cs.CoreV1().Services(ns).List(ctx, opts)
	for _, s := range svcs.Items {
		add("service", s.Name)
	}
	nps, _ := env.cs.NetworkingV1().NetworkPolicies(ns).List(ctx, opts)
	for _, p := range nps.Items {
		add("networkpolicy", p.Name)
	}
	sas, _ := env.cs.CoreV1().ServiceAccounts(ns).List(ctx, opts)
	for _, s := range sas.Items {
		add("serviceaccount", s.Name)
	}
	roles, _ := env.cs.RbacV1().Roles(ns).List(ctx, opts)
	for _, r := range roles.Items {
		add("role", r.Name)
	}
	rbs, _ := env.cs.RbacV1().RoleBindings(ns).List(ctx, opts)
	for _, r := range rbs.Items {
		add("rolebinding", r.Name)
	}
	return got
}

const allProxyObjects = "deployment/agentkernel-egress,service/agentkernel-egress,networkpolicy/agentkernel-egress.proxy," +
	"serviceaccount/agentkernel-egress,role/agentkernel-egress,rolebinding/agentkernel-egress"

func envOf(pod *corev1.Pod) map[string]string {
	m := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestEgressFirstUseInstallsTheProxy(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	ctx := context.Background()

	r := mustPlugin(t, "", "create", "a", "-n", ns, "--allow-host", "api.anthropic.com", "--allow-host", "*.npmjs.org")
	if !strings.Contains(r.stderr, "egress proxy installed in namespace "+ns) {
		t.Fatalf("create did not say it installed the proxy:\n%s", r)
	}
	if got := strings.Join(proxyObjects(t, ns), ","); got != allProxyObjects {
		t.Fatalf("proxy objects: %s", got)
	}
	svc, err := env.cs.CoreV1().Services(ns).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The proxy's Pod is admitted by Pod Security "restricted": the
	// ReplicaSet controller's create went through admission like any.
	eventually(t, 2*time.Minute, "a proxy Pod admitted in "+ns, func() bool {
		pods, err := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: proxySelector})
		return err == nil && len(pods.Items) == 1
	})
	events, err := env.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Reason == "FailedCreate" {
			t.Errorf("event %s: %s", e.Reason, e.Message)
		}
	}

	pod, err := sandbox.Find(ctx, env.cs, ns, "a")
	if err != nil {
		t.Fatal(err)
	}
	want := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "3128")
	e := envOf(pod)
	for _, n := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		if e[n] != want {
			t.Errorf("%s = %q, want %q", n, e[n], want)
		}
	}
	if got := pod.Annotations[fence.AnnotationAllowHosts]; got != `["api.anthropic.com:443","*.npmjs.org:443"]` {
		t.Errorf("grants: %s", got)
	}
	np, err := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, sandbox.PodName("a"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(np.Spec.Egress) != 1 || len(np.Spec.Egress[0].To) != 1 || np.Spec.Egress[0].To[0].PodSelector == nil ||
		!labels.SelectorFromSet(np.Spec.Egress[0].To[0].PodSelector.MatchLabels).Matches(labels.Set(sandbox.ProxyLabels())) {
		t.Errorf("the sandbox's policy allows more than the proxy: %+v", np.Spec.Egress)
	}

	// The second sandbox finds the proxy and changes nothing.
	dep, _ := env.cs.AppsV1().Deployments(ns).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	r = mustPlugin(t, "", "create", "b", "-n", ns, "--allow-host", "example.com:8443")
	if strings.Contains(r.stderr, "installed") {
		t.Errorf("the second create installed again:\n%s", r)
	}
	dep2, _ := env.cs.AppsV1().Deployments(ns).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	if dep2.ResourceVersion != dep.ResourceVersion {
		t.Error("the second create changed the proxy's Deployment")
	}

	st := mustPlugin(t, "", "egress", "status", "-n", ns, "-o", "json")
	var status struct {
		Installed bool     `json:"installed"`
		ClusterIP string   `json:"clusterIP"`
		Fenced    bool     `json:"fenced"`
		Sandboxes []string `json:"sandboxes"`
	}
	if err := json.Unmarshal([]byte(st.stdout), &status); err != nil {
		t.Fatalf("%v\n%s", err, st)
	}
	if !status.Installed || !status.Fenced || status.ClusterIP != svc.Spec.ClusterIP || strings.Join(status.Sandboxes, ",") != "a,b" {
		t.Errorf("status: %+v", status)
	}

	// The proxy is the namespace's: it stays when its sandboxes go, and
	// uninstall refuses while any use it.
	wantError(t, plugin(t, "", "egress", "uninstall", "-n", ns), "2 sandboxes in namespace")
	mustPlugin(t, "", "delete", "a", "b", "-n", ns)
	if got := strings.Join(proxyObjects(t, ns), ","); got != allProxyObjects {
		t.Fatalf("after deleting the sandboxes: %s", got)
	}
	r = mustPlugin(t, "", "egress", "uninstall", "-n", ns)
	if !strings.Contains(r.stdout, "networkpolicy/agentkernel-egress.proxy deleted") {
		t.Errorf("uninstall said:\n%s", r)
	}
	if left := proxyObjects(t, ns); len(left) > 0 {
		t.Fatalf("left after uninstall: %v", left)
	}
	eventually(t, 2*time.Minute, "the proxy's pods to go", func() bool {
		pods, err := env.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: proxySelector})
		return err == nil && len(pods.Items) == 0
	})
	assertNothingLeft(t, ns)
	r = mustPlugin(t, "", "egress", "uninstall", "-n", ns)
	if !strings.Contains(r.stdout, "no egress proxy in namespace") {
		t.Errorf("a second uninstall said:\n%s", r)
	}
}

// The first sandboxes with --allow-host of a namespace, created at once by
// separate processes: every create succeeds, one proxy results, and every
// sandbox names it.
func TestEgressRacingFirstUse(t *testing.T) {
	requireCluster(t)
	const rounds, procs = 3, 5
	for round := 0; round < rounds; round++ {
		ns := newNamespace(t)
		var wg sync.WaitGroup
		results := make([]string, procs)
		for i := 0; i < procs; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, env.binary, "--kubeconfig", env.kubeconfig,
					"create", fmt.Sprintf("s%d", i), "-n", ns, "--allow-host", "example.com")
				out, err := cmd.CombinedOutput()
				if err != nil {
					results[i] = fmt.Sprintf("create s%d: %v: %s", i, err, out)
				}
			}()
		}
		wg.Wait()
		for _, r := range results {
			if r != "" {
				t.Errorf("round %d: %s", round, r)
			}
		}
		if got := strings.Join(proxyObjects(t, ns), ","); got != allProxyObjects {
			t.Fatalf("round %d: proxy objects %s", round, got)
		}
		svc, err := env.cs.CoreV1().Services(ns).Get(context.Background(), fence.ProxyName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods, err := sandbox.List(context.Background(), env.cs, ns, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(pods) != procs {
			t.Fatalf("round %d: %d sandboxes, want %d", round, len(pods), procs)
		}
		for i := range pods {
			if got := envOf(&pods[i])["HTTPS_PROXY"]; got != "http://"+net.JoinHostPort(svc.Spec.ClusterIP, "3128") {
				t.Errorf("round %d: sandbox %s has HTTPS_PROXY %q, the proxy is at %s", round, pods[i].Name, got, svc.Spec.ClusterIP)
			}
		}
	}
}

// A user who may make sandboxes but not the proxy's Role is told who can,
// and nothing is left; once an admin installed the proxy, the same user's
// create works.
func TestEgressInstallNeedsRights(t *testing.T) {
	requireCluster(t)
	if env.limited == "" {
		t.Skip("needs the least-privilege user of the local test cluster")
	}
	ctx := context.Background()
	ns := newNamespace(t)
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "sandboxer"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "secrets", "services", "serviceaccounts"}, Verbs: []string{"get", "list", "watch", "create", "delete", "patch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "create", "delete"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "create", "delete"}},
		},
	}
	if _, err := env.cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sandboxer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "sandboxer"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: localcluster.LimitedUser}},
	}
	if _, err := env.cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"create", "a"}, {"pool", "create", "p", "--size", "1"}} {
		r := pluginAs(t, env.limited, "", append(args, "-n", ns, "--allow-host", "example.com")...)
		wantError(t, r, "ask an admin to run once: kubectl agentkernel egress install -n "+ns)
		if !strings.Contains(r.stderr, "roles.rbac.authorization.k8s.io") {
			t.Errorf("the error does not name what was refused:\n%s", r)
		}
		if left := proxyObjects(t, ns); len(left) > 0 {
			t.Fatalf("a refused install left %v", left)
		}
		assertNothingLeft(t, ns)
		if tmpls, err := env.cs.CoreV1().PodTemplates(ns).List(context.Background(), metav1.ListOptions{}); err != nil || len(tmpls.Items) > 0 {
			t.Fatalf("a refused pool create left PodTemplates: %v %v", tmpls, err)
		}
	}

	mustPlugin(t, "", "egress", "install", "-n", ns)
	r := pluginAs(t, env.limited, "", "create", "a", "-n", ns, "--allow-host", "example.com")
	if r.code != 0 {
		t.Fatalf("create after an admin installed the proxy:\n%s", r)
	}
}

func TestEgressInstallUpdatesAndRefusesForeignObjects(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := newNamespace(t)
	r := mustPlugin(t, "", "egress", "install", "-n", ns, "--image", "example.test/egress:1", "--api-server", "10.0.0.1:443")
	if !strings.Contains(r.stdout, "egress proxy installed in namespace "+ns) || !strings.Contains(r.stdout, "created: networkpolicy/agentkernel-egress.proxy") {
		t.Fatalf("install said:\n%s", r)
	}
	svc, err := env.cs.CoreV1().Services(ns).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Again, changed: applied over what is there; the Service keeps its
	// address, so sandboxes made meanwhile still reach the proxy.
	r = mustPlugin(t, "", "egress", "install", "-n", ns, "--image", "example.test/egress:2", "--replicas", "2",
		"--private-cidr", "10.20.0.0/16", "--api-server", "10.0.0.1:443")
	if !strings.Contains(r.stdout, "created: none; updated: networkpolicy/agentkernel-egress.proxy") {
		t.Fatalf("second install said:\n%s", r)
	}
	dep, err := env.cs.AppsV1().Deployments(ns).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if *dep.Spec.Replicas != 2 || c.Image != "example.test/egress:2" || !strings.Contains(strings.Join(c.Args, " "), "--private-cidr=10.20.0.0/16") {
		t.Errorf("the update did not apply: replicas %d, image %s, args %v", *dep.Spec.Replicas, c.Image, c.Args)
	}
	svc2, _ := env.cs.CoreV1().Services(ns).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	if svc2.Spec.ClusterIP != svc.Spec.ClusterIP {
		t.Errorf("the Service's address changed from %s to %s", svc.Spec.ClusterIP, svc2.Spec.ClusterIP)
	}
	np, _ := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, fence.ProxyPolicyName, metav1.GetOptions{})
	if !policyHasBlock(np, "10.20.0.0/16") || !policyHasBlock(np, "10.0.0.1/32") {
		t.Errorf("the proxy's policy lacks the opened range or the API server: %+v", np.Spec.Egress)
	}
	st := mustPlugin(t, "", "egress", "status", "-n", ns)
	for _, want := range []string{"image:      example.test/egress:2", "/2\n", "private:    10.20.0.0/16", "fenced:     true"} {
		if !strings.Contains(st.stdout, want) {
			t.Errorf("status does not say %q:\n%s", want, st)
		}
	}

	// A Service of the proxy's name that is not ours: refused, untouched,
	// and nothing of the proxy left.
	other := newNamespace(t)
	foreign := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: fence.ProxyName},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if _, err := env.cs.CoreV1().Services(other).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantError(t, plugin(t, "", "egress", "install", "-n", other), `Service "agentkernel-egress" in namespace "`+other+`" exists and was not made by kubectl agentkernel`)
	wantError(t, plugin(t, "", "create", "a", "-n", other, "--allow-host", "example.com"), "was not made by kubectl agentkernel")
	if left := proxyObjects(t, other); len(left) > 0 {
		t.Fatalf("left: %v", left)
	}
	assertNothingLeft(t, other)
	if _, err := env.cs.CoreV1().Services(other).Get(ctx, fence.ProxyName, metav1.GetOptions{}); err != nil {
		t.Fatalf("the foreign Service: %v", err)
	}
	wantError(t, plugin(t, "", "egress", "uninstall", "-n", other, "--force"), "was not made by kubectl agentkernel")
}

func policyHasBlock(np *networkingv1.NetworkPolicy, cidr string) bool {
	for _, r := range np.Spec.Egress {
		for _, p := range r.To {
			if p.IPBlock != nil && p.IPBlock.CIDR == cidr {
				return true
			}
		}
	}
	return false
}

func TestEgressDryRunsCreateNothing(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	mustPlugin(t, "", "create", "a", "-n", ns, "--allow-host", "example.com", "--dry-run=server")
	mustPlugin(t, "", "egress", "install", "-n", ns, "--dry-run=server")
	out := mustPlugin(t, "", "create", "a", "-n", ns, "--allow-host", "example.com", "--dry-run=client", "-o", "yaml")
	if !strings.Contains(out.stdout, "http://agentkernel-egress."+ns+".svc:3128") {
		t.Errorf("client dry run before the proxy exists: HTTPS_PROXY is not the Service's name:\n%s", out.stdout)
	}
	if left := proxyObjects(t, ns); len(left) > 0 {
		t.Fatalf("dry runs left %v", left)
	}
	assertNothingLeft(t, ns)
}

// proxyProcess is the plugin's egress-proxy mode run on this host against
// the test's API server: its Pod watch is the real one, only its clients
// are not sandboxes (there are no sandbox addresses on this host).
type proxyProcess struct {
	addr  string
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
}

// startProxy runs it with the test's credentials, or with extra flags
// (--as the proxy's ServiceAccount).
func startProxy(t *testing.T, ns string, extra ...string) *proxyProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"--kubeconfig", env.kubeconfig, "-n", ns}, extra...)
	cmd := exec.CommandContext(ctx, env.binary, append(args, "egress-proxy", "--listen", "127.0.0.1:0")...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proxyProcess{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			m := map[string]any{}
			p.mu.Lock()
			p.raw.WriteString(sc.Text() + "\n")
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"msg": "NOT JSON", "line": sc.Text()}
			}
			p.lines = append(p.lines, m)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		<-done
		if t.Failed() {
			t.Logf("proxy stdout:\n%s\nstderr:\n%s", p.raw.String(), stderr.String())
		}
	})
	eventually(t, time.Minute, "the proxy to listen", func() bool {
		if l := p.find("listening", nil); l != nil {
			p.addr, _ = l["addr"].(string)
		}
		return p.addr != ""
	})
	return p
}

func (p *proxyProcess) find(msg string, match func(map[string]any) bool) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if l["msg"] == msg && (match == nil || match(l)) {
			return l
		}
	}
	return nil
}

func (p *proxyProcess) allJSON(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if l["msg"] == "NOT JSON" {
			t.Errorf("the proxy wrote a line that is not JSON: %q", l["line"])
		}
	}
}

func TestEgressGrantsFollowSandboxes(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := newNamespace(t)
	p := startProxy(t, ns)

	createSandbox(t, ns, "a", "--allow-host", "api.anthropic.com", "--allow-host", "203.0.113.0/24:8443")
	var ip string
	eventually(t, 2*time.Minute, "sandbox a's address", func() bool {
		pod, err := sandbox.Find(ctx, env.cs, ns, "a")
		ip = ""
		if err == nil {
			ip = pod.Status.PodIP
		}
		return ip != ""
	})
	eventually(t, time.Minute, "the proxy to grant sandbox a", func() bool {
		return p.find("grant", func(l map[string]any) bool {
			return l["sandbox"] == "a" && fmt.Sprint(l["ips"]) == "["+ip+"]" && fmt.Sprint(l["hosts"]) == "[api.anthropic.com:443 203.0.113.0/24:8443]"
		}) != nil
	})

	// A Pod with our labels and grants but not made by the plugin: the
	// proxy says it does not trust it.
	spoof := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "spoof", Labels: map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelSandbox: "spoof"},
			Annotations: map[string]string{fence.AnnotationAllowHosts: `["example.com:443"]`}},
		Spec: hardenedSpec(),
	}
	if _, err := env.cs.CoreV1().Pods(ns).Create(ctx, spoof, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the proxy to refuse the spoofed Pod", func() bool {
		return p.find("untrusted", func(l map[string]any) bool { return l["pod"] == "spoof" }) != nil
	})
	if p.find("grant", func(l map[string]any) bool { return l["pod"] == "spoof" }) != nil {
		t.Fatal("the proxy granted a spoofed Pod")
	}

	// A client that is no sandbox (this host) is refused, with a line.
	resp, body := connectThrough(t, p.addr, "api.anthropic.com:443")
	if resp != http.StatusForbidden || !strings.Contains(body, "no pod in the namespace has address 127.0.0.1") {
		t.Errorf("CONNECT from this host: %d %q", resp, body)
	}
	// The line was written before the answer; it reaches us through a pipe.
	eventually(t, 30*time.Second, "a deny line for the refused CONNECT", func() bool {
		return p.find("deny", func(l map[string]any) bool {
			return l["client"] == "127.0.0.1" && l["target"] == "api.anthropic.com:443"
		}) != nil
	})

	mustPlugin(t, "", "delete", "a", "-n", ns)
	eventually(t, time.Minute, "the proxy to revoke sandbox a", func() bool {
		return p.find("revoke", func(l map[string]any) bool { return l["sandbox"] == "a" }) != nil
	})
	p.allJSON(t)
}

func hardenedSpec() corev1.PodSpec {
	s := sandbox.NewSpec("x", "x")
	return s.Pod().Spec
}

func connectThrough(t *testing.T, proxy, target string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pool create --allow-host installs the namespace's proxy as create does;
// its warm members reach the proxy by cluster IP and are granted exactly
// their pool's hosts while nobody has claimed them (a Pod labelled like a
// member but not made by the pool gets nothing); a claimed member has the
// claim's grant.
func TestEgressPoolAllowHostGrantsItsMembers(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := newNamespace(t)
	p := startProxy(t, ns)

	r := mustPlugin(t, "", "pool", "create", "hp", "--size", "1", "-n", ns, "--allow-host", "registry.npmjs.org")
	if !strings.Contains(r.stderr, "egress proxy installed in namespace "+ns) {
		t.Fatalf("pool create did not say it installed the proxy:\n%s", r)
	}
	if got := strings.Join(proxyObjects(t, ns), ","); got != allProxyObjects {
		t.Fatalf("proxy objects: %s", got)
	}
	role, err := env.cs.RbacV1().Roles(ns).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	if err != nil || len(role.Rules) != 3 || strings.Join(role.Rules[0].Resources, ",") != "pods,podtemplates" {
		t.Fatalf("the proxy's Role: %+v, %v", role, err)
	}
	svc, err := env.cs.CoreV1().Services(ns).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	member := onlyReadyMember(t, ns, "hp")
	if got, want := envOf(&member)["HTTPS_PROXY"], "http://"+net.JoinHostPort(svc.Spec.ClusterIP, "3128"); got != want {
		t.Errorf("the member's HTTPS_PROXY = %q, want %q", got, want)
	}
	eventually(t, time.Minute, "the proxy to grant the warm member its pool's hosts", func() bool {
		return p.find("grant", func(l map[string]any) bool {
			return l["pool"] == "hp" && l["pod"] == member.Name && l["sandbox"] == nil &&
				fmt.Sprint(l["ips"]) == "["+member.Status.PodIP+"]" && fmt.Sprint(l["hosts"]) == "[registry.npmjs.org:443]"
		}) != nil
	})

	// Labelled, named and annotated like a member, but the pool did not
	// make it (no owner): the proxy says it does not trust it.
	spoof := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: sandbox.PoolMemberPrefix("hp") + "spoof",
			Labels:      map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelPool: "hp"},
			Annotations: map[string]string{fence.AnnotationAllowHosts: `["registry.npmjs.org:443"]`}},
		Spec: hardenedSpec(),
	}
	if _, err := env.cs.CoreV1().Pods(ns).Create(ctx, spoof, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the proxy to refuse the spoofed member", func() bool {
		return p.find("untrusted", func(l map[string]any) bool {
			return l["pod"] == spoof.Name && strings.Contains(fmt.Sprint(l["reason"]), "it is not owned by the PodTemplate agentkernel-pool-hp")
		}) != nil
	})
	if p.find("grant", func(l map[string]any) bool { return l["pod"] == spoof.Name }) != nil {
		t.Fatal("the proxy granted a spoofed member")
	}
	if err := env.cs.CoreV1().Pods(ns).Delete(ctx, spoof.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// Claimed, it is a sandbox: the claim's grant.
	mustPlugin(t, "", "create", "c", "--pool", "hp", "-n", ns)
	eventually(t, time.Minute, "the proxy to grant the claimed member as sandbox c", func() bool {
		return p.find("grant", func(l map[string]any) bool {
			return l["sandbox"] == "c" && l["pod"] == member.Name && fmt.Sprint(l["hosts"]) == "[registry.npmjs.org:443]"
		}) != nil
	})
	p.allJSON(t)
	mustPlugin(t, "", "delete", "c", "-n", ns)
	mustPlugin(t, "", "pool", "delete", "hp", "-n", ns)
}
