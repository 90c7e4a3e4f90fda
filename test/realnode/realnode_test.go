package realnode

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// Generous bounds: TCG speed varies by ±25 % and more while a Go build runs
// beside the guest.
const (
	podRunningTimeout = 4 * time.Minute
	execTimeout       = 2 * time.Minute
	deleteTimeout     = 3 * time.Minute
)

// procStatus is what /proc/self/status says about the hardening of the
// process that read it.
type procStatus struct{ noNewPrivs, seccomp, capEff string }

func parseStatus(t *testing.T, out string) procStatus {
	t.Helper()
	var s procStatus
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "NoNewPrivs":
			s.noNewPrivs = v
		case "Seccomp":
			s.seccomp = v
		case "CapEff":
			s.capEff = v
		}
	}
	if s.noNewPrivs == "" || s.seccomp == "" || s.capEff == "" {
		t.Fatalf("/proc/self/status lacks NoNewPrivs/Seccomp/CapEff:\n%s", out)
	}
	return s
}

func checkHardened(t *testing.T, status procStatus) {
	t.Helper()
	if status.noNewPrivs != "1" {
		t.Errorf("NoNewPrivs = %s, want 1 (allowPrivilegeEscalation: false)", status.noNewPrivs)
	}
	if status.seccomp != "2" {
		t.Errorf("Seccomp = %s, want 2 (a filter: RuntimeDefault)", status.seccomp)
	}
	if status.capEff != "0000000000000000" {
		t.Errorf("CapEff = %s, want 0000000000000000 (drop ALL)", status.capEff)
	}
}

// sleeper is a PID 1 that exits on SIGTERM, as a sandbox's must.
const sleeper = `trap 'exit 0' TERM; sleep 2147483647 & wait`

func hardenedPod(name, image, script string, labels map[string]string) *corev1.Pod {
	if labels == nil {
		labels = map[string]string{}
	}
	labels["app"] = name
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](1000),
				RunAsGroup:     ptr.To[int64](1000),
				FSGroup:        ptr.To[int64](1000),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "main",
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"sh", "-c", script},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
			}},
			Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
}

// startPod creates a pod and waits until it runs; it is deleted when the test ends.
func (s *suite) startPod(ctx context.Context, t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	pods := s.client.CoreV1().Pods(s.namespace)
	t0 := time.Now()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	t.Cleanup(func() {
		_ = pods.Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	var got *corev1.Pod
	err := poll(ctx, podRunningTimeout, func() (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = p
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && (w.Reason == "CreateContainerConfigError" || w.Reason == "ErrImageNeverPull" ||
				w.Reason == "ImagePullBackOff" || w.Reason == "ErrImagePull" || w.Reason == "CrashLoopBackOff") {
				return false, fmt.Errorf("pod %s cannot start: %s: %s", pod.Name, w.Reason, w.Message)
			}
		}
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s not Running: %v\nlast status: %+v\n%s", pod.Name, err, statusOf(got), s.node.Diagnostics())
	}
	record("hand-written pod: create → Running", time.Since(t0))
	return got
}

func statusOf(p *corev1.Pod) any {
	if p == nil {
		return nil
	}
	return p.Status
}

// deleteAndWait deletes a pod and returns how long it took to be gone and
// the exit code of its container as the kubelet last reported it (-1 if it
// reported none before the pod went away). It watches, so no update is missed.
func (s *suite) deleteAndWait(ctx context.Context, t *testing.T, name string, deleteFn func() error) (time.Duration, int32) {
	t.Helper()
	pods := s.client.CoreV1().Pods(s.namespace)
	ctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		t.Fatalf("watch %s: %v", name, err)
	}
	defer w.Stop()
	exitCode := int32(-1)
	t0 := time.Now()
	if err := deleteFn(); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*corev1.Pod); ok {
			for _, cs := range p.Status.ContainerStatuses {
				if cs.State.Terminated != nil {
					exitCode = cs.State.Terminated.ExitCode
				}
			}
		}
		if ev.Type == watch.Deleted {
			return time.Since(t0), exitCode
		}
	}
	t.Fatalf("pod %s still there after %s", name, deleteTimeout)
	return 0, 0
}

func randomText(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "agentkernel-" + hex.EncodeToString(b) + "\n"
}

func TestNodeJoined(t *testing.T) {
	s := need(t)
	node, err := s.client.CoreV1().Nodes().Get(context.Background(), s.node.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := node.Status.NodeInfo
	t.Logf("node %s: kubelet %s, runtime %s, kernel %s, OS %s, cgroup-driver cgroupfs",
		node.Name, info.KubeletVersion, info.ContainerRuntimeVersion, info.KernelVersion, info.OSImage)
	if want := s.node.Artifacts.Manifest["K8S_VERSION"]; info.KubeletVersion != want {
		t.Errorf("kubelet version %q, want %q", info.KubeletVersion, want)
	}
	if want := strings.TrimPrefix(s.node.Artifacts.Manifest["CONTAINERD_VERSION"], "v"); !strings.Contains(info.ContainerRuntimeVersion, want) {
		t.Errorf("runtime %q, want containerd %s", info.ContainerRuntimeVersion, want)
	}
	internal := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = a.Address
		}
	}
	if internal != "127.0.0.1" {
		t.Errorf("InternalIP %q, want 127.0.0.1 (the apiserver reaches the kubelet through qemu's hostfwd)", internal)
	}
	for _, taint := range node.Spec.Taints {
		t.Errorf("unexpected taint %s=%s:%s", taint.Key, taint.Value, taint.Effect)
	}
}

// TestHandWrittenPod validates the node with kubectl alone: a hardened pod
// under Pod Security "restricted", exec (exit codes, stdin), cp both ways,
// logs and port-forward.
func TestHandWrittenPod(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	script := `echo hello-from-realnode; mkdir -p /tmp/www && echo served-by-realnode > /tmp/www/index.html && httpd -p 8080 -h /tmp/www; ` + sleeper
	pod := s.startPod(ctx, t, hardenedPod("validate", SandboxImage, script, nil))
	ref := s.namespace + "/" + pod.Name
	ex := func(stdin string, args ...string) result {
		c, cancel := context.WithTimeout(ctx, execTimeout)
		defer cancel()
		r := s.kubectlRun(c, stdin, append([]string{"exec", "-n", s.namespace, pod.Name, "-i=" + fmt.Sprint(stdin != ""), "--"}, args...)...)
		record("kubectl exec", r.took)
		return r
	}
	for range speedSamples {
		if r := ex("", "true"); r.code != 0 {
			t.Errorf("kubectl exec true: %s", r)
		} else {
			logSpeed(t, "kubectl-exec-true", r.took)
		}
	}

	r := ex("", "cat", "/proc/self/status")
	if r.code != 0 {
		t.Fatalf("exec cat /proc/self/status: %s", r)
	}
	checkHardened(t, parseStatus(t, r.stdout))
	if r := ex("", "id", "-u"); strings.TrimSpace(r.stdout) != "1000" {
		t.Errorf("id -u: %s", r)
	}
	if r := ex("", "sh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("exit code not propagated: %s", r)
	}
	if r := ex("hello stdin\n", "cat"); r.code != 0 || r.stdout != "hello stdin\n" {
		t.Errorf("stdin through exec: %s", r)
	}
	if r := ex("", "touch", "/probe"); r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("writing / on a read-only root: %s", r)
	}

	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	content := randomText(t)
	if err := os.WriteFile(in, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.kubectlRun(ctx, "", "cp", in, ref+":/tmp/in.txt"); r.code != 0 {
		t.Fatalf("kubectl cp in: %s", r)
	}
	if r := ex("", "cat", "/tmp/in.txt"); r.stdout != content {
		t.Errorf("after cp in, the pod has %q, want %q", r.stdout, content)
	}
	out := filepath.Join(dir, "out.txt")
	if r := s.kubectlRun(ctx, "", "cp", ref+":/tmp/in.txt", out); r.code != 0 {
		t.Fatalf("kubectl cp out: %s", r)
	}
	if b, _ := os.ReadFile(out); string(b) != content {
		t.Errorf("cp out gave %q, want %q", b, content)
	}

	if r := s.kubectlRun(ctx, "", "logs", "-n", s.namespace, pod.Name); !strings.Contains(r.stdout, "hello-from-realnode") {
		t.Errorf("kubectl logs: %s", r)
	}

	checkPortForward(ctx, t, s, pod.Name)

	took, code := s.deleteAndWait(ctx, t, pod.Name, func() error {
		return s.client.CoreV1().Pods(s.namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
	})
	record("hand-written pod: delete → gone", took)
	t.Logf("delete → gone in %s (container exit code %d)", took.Round(100*time.Millisecond), code)
	if code == 137 {
		t.Errorf("PID 1 did not exit on SIGTERM: killed after the grace period")
	}
}

var forwardingLine = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)

func checkPortForward(ctx context.Context, t *testing.T, s *suite, pod string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.kubectl, "--kubeconfig", s.cluster.AdminKubeconfig,
		"port-forward", "-n", s.namespace, "pod/"+pod, "--address", "127.0.0.1", ":8080")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	port := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := forwardingLine.FindStringSubmatch(sc.Text()); m != nil {
			port = m[1]
			break
		}
	}
	if port == "" {
		t.Errorf("kubectl port-forward printed no forwarding line")
		return
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	resp, err := http.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		t.Errorf("GET through port-forward: %v", err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), "served-by-realnode") {
		t.Errorf("port-forward served %q", body)
	}
}

// TestRootImageRefused: an image whose config says User 0, in a pod that asks
// for runAsNonRoot without a runAsUser, must not start.
func TestRootImageRefused(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	pod := hardenedPod("rootimage", RootImage, sleeper, nil)
	pod.Spec.SecurityContext.RunAsUser = nil
	pod.Spec.SecurityContext.RunAsGroup = nil
	pods := s.client.CoreV1().Pods(s.namespace)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		_ = pods.Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	var reason, message string
	err := poll(ctx, podRunningTimeout, func() (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if p.Status.Phase == corev1.PodRunning {
			return false, fmt.Errorf("the kubelet ran a root image under runAsNonRoot")
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == "CreateContainerConfigError" {
				reason, message = w.Reason, w.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, s.node.Diagnostics())
	}
	t.Logf("%s: %s", reason, message)
	if !strings.Contains(message, "runAsNonRoot") {
		t.Errorf("refused for another reason: %s", message)
	}
}

// canConnect asks the server from inside a pod; it reports whether the
// server answered. (nc, not wget: Debian's busybox-static 1.35 wget
// segfaults, on the host as well.)
func (s *suite) canConnect(ctx context.Context, viaPlugin bool, pod, ip string) (bool, result) {
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	cmd := []string{"sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 4 ` + ip + ` 8080`}
	var r result
	if viaPlugin {
		r = s.pluginRun(ctx, "", append([]string{"exec", "-n", s.namespace, pod, "--"}, cmd...)...)
	} else {
		r = s.kubectlRun(ctx, "", append([]string{"exec", "-n", s.namespace, pod, "--"}, cmd...)...)
	}
	return r.code == 0 && strings.Contains(r.stdout, "served-by-realnode"), r
}

func (s *suite) startServer(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	script := `mkdir -p /tmp/www && echo served-by-realnode > /tmp/www/index.html && httpd -p 8080 -h /tmp/www; ` + sleeper
	p := s.startPod(ctx, t, hardenedPod(name, SandboxImage, script, nil))
	if p.Status.PodIP == "" {
		t.Fatalf("server pod %s has no IP", name)
	}
	return p.Status.PodIP
}

// TestNetworkPolicyEnforced proves the policy agent in the guest with
// hand-written pods: a deny-all policy cuts a client off, removing it
// restores the connection.
func TestNetworkPolicyEnforced(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	ip := s.startServer(ctx, t, "np-server")
	s.startPod(ctx, t, hardenedPod("np-client", SandboxImage, sleeper, map[string]string{"role": "np-client"}))
	if ok, r := s.canConnect(ctx, false, "np-client", ip); !ok {
		t.Fatalf("without a policy the client cannot reach the server: %s", r)
	}
	policies := s.client.NetworkingV1().NetworkPolicies(s.namespace)
	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "np-client-deny-all"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "np-client"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	t0 := time.Now()
	if _, err := policies.Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = policies.Delete(context.Background(), policy.Name, metav1.DeleteOptions{}) })
	var last result
	err := poll(ctx, 90*time.Second, func() (bool, error) {
		ok, r := s.canConnect(ctx, false, "np-client", ip)
		last = r
		return !ok, nil
	})
	if err != nil {
		t.Fatalf("a deny-all policy did not stop the client: %v; last try: %s\n%s", err, last, s.node.Diagnostics())
	}
	record("network policy: created → enforced", time.Since(t0))
	if err := policies.Delete(ctx, policy.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = poll(ctx, 90*time.Second, func() (bool, error) {
		ok, r := s.canConnect(ctx, false, "np-client", ip)
		last = r
		return ok, nil
	})
	if err != nil {
		t.Errorf("the client stayed cut off after the policy was deleted: %v; last try: %s", err, last)
	}
}
