package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// The egress proxy on the real node: the proxy's image (the plugin's own
// binary, built by build/build.sh) runs under Pod Security "restricted",
// watches the API server, and a sandbox made with --allow-host reaches
// exactly its own granted hosts through it, enforced end to end by
// kube-network-policies.
//
// The guest has no internet, no DNS and no kube-proxy, so:
//   - the "internet" hosts are two web servers in the guest's pod network,
//     named allowed.test and denied.test by hostAliases in the proxy's Pod
//     (the proxy resolves names itself; the sandboxes never do), and the
//     namespace opens the pod network to the proxy with --private-cidr;
//   - Services have no data path: the sandboxes talk to the proxy Pod's
//     address (their policy allows the proxy's Pods, whatever address they
//     are reached by);
//   - Pods cannot reach the API server: only the node's own address gets
//     through qemu's forward at 10.0.2.2 (pod traffic is not masqueraded).
//     A relay in the node's network namespace (a hostNetwork busybox nc,
//     in a namespace of its own) forwards the node's port to it; the proxy
//     reaches the relay as kubernetes.default.svc (a name in the API
//     server's certificate, via hostAliases) through
//     KUBERNETES_SERVICE_HOST/PORT, and its policy allows it (--api-server).
// What this does not cover: a client following HTTPS_PROXY (busybox has no
// working one here: its wget segfaults), the Service's cluster IP, real DNS.

// EgressImage is the proxy image build/build.sh puts in the guest.
const EgressImage = "agentkernel.test/egress-proxy:1"

func (s *suite) startTextServer(ctx context.Context, t *testing.T, name, text string) string {
	t.Helper()
	script := `mkdir -p /tmp/www && echo ` + text + ` > /tmp/www/index.html && httpd -p 8080 -h /tmp/www; ` + sleeper
	p := s.startPod(ctx, t, hardenedPod(name, SandboxImage, script, nil))
	if p.Status.PodIP == "" {
		t.Fatalf("server pod %s has no IP", name)
	}
	return p.Status.PodIP
}

// viaProxy sends raw proxy requests (CONNECT, or a plain HTTP request in
// absolute form) to the proxy from inside a pod, with nc as the client.
func (s *suite) viaProxy(ctx context.Context, t *testing.T, viaPlugin bool, pod, proxyIP, request string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	cmd := []string{"sh", "-c", `printf '` + request + `' | nc -w 6 ` + proxyIP + ` 3128`}
	if viaPlugin {
		return s.pluginRun(ctx, "", append([]string{"exec", "-n", s.namespace, pod, "--"}, cmd...)...)
	}
	return s.kubectlRun(ctx, "", append([]string{"exec", "-n", s.namespace, pod, "--"}, cmd...)...)
}

func connectRequest(target string) string {
	return `CONNECT ` + target + ` HTTP/1.1\r\nHost: ` + target + `\r\n\r\nGET / HTTP/1.0\r\nHost: ` + target + `\r\n\r\n`
}

func TestEgressProxy(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	allowedIP := s.startTextServer(ctx, t, "egress-allowed", "served-by-allowed")
	deniedIP := s.startTextServer(ctx, t, "egress-denied", "served-by-denied")
	proxy := s.installEgress(ctx, t, s.namespace, []corev1.HostAlias{
		{IP: allowedIP, Hostnames: []string{"allowed.test"}},
		{IP: deniedIP, Hostnames: []string{"denied.test"}},
		{IP: "127.0.0.1", Hostnames: []string{"loop.test"}},
		{IP: "169.254.169.254", Hostnames: []string{"metadata.test"}},
	})
	t.Logf("proxy pod %s at %s; servers allowed.test=%s denied.test=%s", proxy.Name, proxy.Status.PodIP, allowedIP, deniedIP)
	proxyIP := proxy.Status.PodIP

	// Small: two sandboxes, the proxy, two servers and the relay share the
	// guest's two CPUs.
	small := []string{"--cpu", "100m", "--memory", "128Mi"}
	s.createSandbox(ctx, t, "egress-a", append(small, "--allow-host", "allowed.test:8080", "--allow-host", "loop.test:8080", "--allow-host", "metadata.test:80")...)
	s.createSandbox(ctx, t, "egress-b", append(small, "--allow-host", "denied.test:8080")...)
	if r := s.sandboxExec(ctx, "egress-a", "", "sh", "-c", "echo $HTTPS_PROXY $http_proxy"); r.code != 0 || !strings.Contains(r.stdout, ":3128 http://") {
		t.Errorf("sandbox a's proxy environment: %s", r)
	}

	// The grant table follows the watch: wait until the proxy serves a.
	var last result
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		last = s.viaProxy(ctx, t, true, "egress-a", proxyIP, connectRequest("allowed.test:8080"))
		return strings.Contains(last.stdout, "served-by-allowed"), nil
	})
	if err != nil {
		t.Fatalf("sandbox a cannot reach allowed.test through the proxy: %v; last try: %s\nproxy log:\n%s\n%s", err, last, s.proxyLog(ctx, s.namespace, proxy.Name), s.node.Diagnostics())
	}
	if !strings.Contains(last.stdout, "HTTP/1.1 200 Connection established") {
		t.Errorf("CONNECT answer: %s", last)
	}

	type check struct {
		what, sandbox, request, want string
	}
	for _, c := range []check{
		{"plain HTTP to an allowed host", "egress-a", `GET http://allowed.test:8080/ HTTP/1.0\r\nHost: allowed.test:8080\r\n\r\n`, "served-by-allowed"},
		{"a denied host", "egress-a", connectRequest("denied.test:8080"), "403 Forbidden"},
		{"b's own grant", "egress-b", connectRequest("denied.test:8080"), "served-by-denied"},
		{"a's grant, from b", "egress-b", connectRequest("allowed.test:8080"), "403 Forbidden"},
		{"a granted name that resolves to loopback", "egress-a", connectRequest("loop.test:8080"), "loopback"},
		{"a granted name that resolves to the metadata address", "egress-a", connectRequest("metadata.test:80"), "link-local"},
		{"an IP literal nobody was granted", "egress-a", connectRequest(allowedIP + ":8080"), "403 Forbidden"},
	} {
		r := s.viaProxy(ctx, t, true, c.sandbox, proxyIP, c.request)
		if !strings.Contains(r.stdout, c.want) || (strings.Contains(c.want, "403") || c.want == "loopback" || c.want == "link-local") && strings.Contains(r.stdout, "served-by") {
			t.Errorf("%s (%s): want %q: %s", c.what, c.sandbox, c.want, r)
		}
	}

	// A direct connection, around the proxy, is cut off by the sandbox's
	// NetworkPolicy: to the allowed host's address as to any other.
	for _, ip := range []string{allowedIP, deniedIP} {
		if ok, r := s.canConnect(ctx, true, "egress-a", ip); ok {
			t.Errorf("sandbox a reached %s directly, bypassing the proxy: %s", ip, r)
		}
	}

	// A Pod with a sandbox's labels and grants, not made by the plugin,
	// reaches the proxy (its policy admits our labels) and gets nothing.
	spoofLabels := map[string]string{"agentkernel/managed-by": "agentkernel", sandboxLabel: "spoof"}
	spoofPod := hardenedPod("egress-spoof", SandboxImage, sleeper, spoofLabels)
	spoofPod.Annotations = map[string]string{"agentkernel/allow-hosts": `["allowed.test:8080"]`}
	s.startPod(ctx, t, spoofPod)
	r := s.viaProxy(ctx, t, false, "egress-spoof", proxyIP, connectRequest("allowed.test:8080"))
	if !strings.Contains(r.stdout, "403 Forbidden") || !strings.Contains(r.stdout, "not a sandbox") {
		t.Errorf("the spoofed Pod: %s", r)
	}

	// Every decision is one JSON line in the proxy's log.
	log := s.proxyLog(ctx, s.namespace, proxy.Name)
	var allows, denies int
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("proxy log line is not JSON: %q", line)
			continue
		}
		switch {
		case m["msg"] == "allow" && m["sandbox"] == "egress-a" && m["target"] == "allowed.test:8080":
			allows++
		case m["msg"] == "deny" && m["sandbox"] == "egress-b" && m["target"] == "allowed.test:8080":
			denies++
		}
	}
	if allows == 0 || denies == 0 {
		t.Errorf("the proxy's log lacks the decisions (allow a→allowed.test: %d, deny b→allowed.test: %d):\n%s", allows, denies, log)
	}
}

// installEgress installs the egress proxy in ns, as an admin would with
// the options this guest needs (see the top of this file), names the
// "internet" hosts by aliases in its Pod, and returns that Pod once it
// listens. It is uninstalled when the test ends.
func (s *suite) installEgress(ctx context.Context, t *testing.T, ns string, aliases []corev1.HostAlias) *corev1.Pod {
	t.Helper()
	return s.installEgressTrusting(ctx, t, ns, aliases, "")
}

// testCADir is where the proxy finds the test's CA (installEgressTrusting).
const testCADir = "/etc/agentkernel-test-ca"

// installEgressTrusting is installEgress whose proxy verifies upstream TLS
// against the CA in ConfigMap caConfigMap (key ca.crt) instead of the
// system's roots, when it is not empty: Go reads $SSL_CERT_FILE, as a
// user's cluster would mount a private CA. The guest's stand-ins for
// public APIs have certificates only that CA signed.
func (s *suite) installEgressTrusting(ctx context.Context, t *testing.T, ns string, aliases []corev1.HostAlias, caConfigMap string) *corev1.Pod {
	t.Helper()
	u, err := url.Parse(s.cluster.Server)
	if err != nil {
		t.Fatal(err)
	}
	apiPort := u.Port()
	relay := s.startAPIRelay(ctx, t, apiPort)
	t0 := time.Now()
	if r := s.pluginRun(ctx, "", "egress", "install", "-n", ns, "--image", EgressImage,
		"--private-cidr", "10.244.0.0/24", "--api-server", relay+":"+apiPort); r.code != 0 {
		t.Fatalf("egress install: %s", r)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		_ = s.pluginRun(c, "", "egress", "uninstall", "-n", ns, "--force")
	})
	aliases = append(aliases, corev1.HostAlias{IP: relay, Hostnames: []string{"kubernetes.default.svc"}})
	container := map[string]any{"name": "proxy", "env": []map[string]any{
		{"name": "KUBERNETES_SERVICE_HOST", "value": "kubernetes.default.svc"},
		{"name": "KUBERNETES_SERVICE_PORT", "value": apiPort},
	}}
	podSpec := map[string]any{"hostAliases": aliases, "containers": []map[string]any{container}}
	if caConfigMap != "" {
		container["env"] = append(container["env"].([]map[string]any), map[string]any{"name": "SSL_CERT_FILE", "value": testCADir + "/ca.crt"})
		container["volumeMounts"] = []map[string]any{{"name": "test-ca", "mountPath": testCADir, "readOnly": true}}
		podSpec["volumes"] = []map[string]any{{"name": "test-ca", "configMap": map[string]any{"name": caConfigMap}}}
	}
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{"spec": podSpec}}}
	body, _ := json.Marshal(patch)
	if _, err := s.client.AppsV1().Deployments(ns).Patch(ctx, "agentkernel-egress", types.StrategicMergePatchType, body, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	proxy := s.waitForProxy(ctx, t, ns)
	record("egress: install → proxy listening", time.Since(t0))
	return proxy
}

// startAPIRelay runs a relay from the node's port apiPort to the API
// server's forward (10.0.2.2) and returns the address pods reach the node
// by: their gateway on the pod bridge.
func (s *suite) startAPIRelay(ctx context.Context, t *testing.T, apiPort string) string {
	t.Helper()
	const relayNS = "agentkernel-realnode-relay" // hostNetwork needs Pod Security "privileged"
	s.privilegedNamespace(ctx, t, relayNS)
	pod := hardenedPod("api-relay", SandboxImage, `nc -ll -p `+apiPort+` -e nc `+apiHostIP+` `+apiPort+` & `+sleeper, nil)
	pod.Namespace = relayNS
	pod.Spec.HostNetwork = true
	pods := s.client.CoreV1().Pods(relayNS)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, podRunningTimeout, func() (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	}); err != nil {
		t.Fatalf("the API relay did not start: %v\n%s", err, s.node.Diagnostics())
	}
	return "10.244.0.1" // the bridge CNI's gateway (guest/10-agentkernel.conflist)
}

// waitForProxy waits for a proxy Pod of the Deployment's current template
// that says it is listening (it lists the namespace's Pods first).
func (s *suite) waitForProxy(ctx context.Context, t *testing.T, ns string) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	var why string
	err := poll(ctx, 2*podRunningTimeout, func() (bool, error) {
		dep, err := s.client.AppsV1().Deployments(ns).Get(ctx, "agentkernel-egress", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if dep.Status.ObservedGeneration < dep.Generation || dep.Status.UpdatedReplicas < 1 {
			why = "rollout not started"
			return false, nil
		}
		pods, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
			LabelSelector: labels.SelectorFromSet(dep.Spec.Selector.MatchLabels).String(),
		})
		if err != nil {
			return false, err
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || len(p.Spec.HostAliases) == 0 {
				why = fmt.Sprintf("pod %s: %s", p.Name, statusLine(p))
				continue
			}
			logs, _ := s.client.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
			if strings.Contains(string(logs), `"msg":"listening"`) {
				found = p
				return true, nil
			}
			why = fmt.Sprintf("pod %s running, not listening yet: %s", p.Name, lastLines(string(logs), 3))
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the egress proxy did not come up: %v (%s)\n%s", err, why, s.node.Diagnostics())
	}
	return found
}

func statusLine(p *corev1.Pod) string {
	for _, c := range p.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil {
			return w.Reason + ": " + w.Message
		}
		if term := c.State.Terminated; term != nil {
			return fmt.Sprintf("terminated %d %s: %s", term.ExitCode, term.Reason, term.Message)
		}
	}
	return string(p.Status.Phase)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func (s *suite) proxyLog(ctx context.Context, ns, pod string) string {
	c, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	r := s.kubectlRun(c, "", "logs", "-n", ns, pod)
	return r.stdout + r.stderr
}

// privilegedNamespace makes a namespace without Pod Security labels (so
// "privileged": hostNetwork, hostPath), waits for its ServiceAccount, and
// deletes it when the test ends, waiting until it is gone: the next test
// may make it again.
func (s *suite) privilegedNamespace(ctx context.Context, t *testing.T, ns string) {
	t.Helper()
	if _, err := s.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.deleteNamespace(t, ns) })
	if err := poll(ctx, time.Minute, func() (bool, error) {
		_, err := s.client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// deleteNamespace deletes ns and waits until it is gone.
func (s *suite) deleteNamespace(t *testing.T, ns string) {
	ctx := context.Background()
	nss := s.client.CoreV1().Namespaces()
	if err := nss.Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", ns, err)
		return
	}
	if err := poll(ctx, deleteTimeout, func() (bool, error) {
		_, err := nss.Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Errorf("namespace %s not gone: %v", ns, err)
	}
}
