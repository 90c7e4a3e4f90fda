package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Persistent sandboxes on a real kubelet: the simulated node mounts nothing,
// so only here do files really outlive a Pod, keep their owner, and travel
// through snapshots and forks.
//
// Storage. The guest has no dynamic provisioner: the tests make their own
// PersistentVolumes, hostPath volumes of a StorageClass name private to the
// test. The sandbox's UID must be able to write the workspace's two subPath
// directories, which the kubelet creates as root with the mode of the
// volume's root; and a hostPath volume gets no fsGroup ownership change. So
// each PV's root must be world-writable. A hostPath of type
// DirectoryOrCreate will not do: the kubelet makes it 0755, root-owned.
// Sharing the guest's /var/tmp (1777) would give every PV the same
// workspace/ and home/ directories, and a fork would "see" its source's
// files without anything having been copied. Instead one hand-written
// unprivileged Pod (a PVC on /var/tmp is allowed under "restricted", a
// hostPath volume is not) makes one 1777 directory per PV below /var/tmp,
// and each PV is a hostPath of type Directory on its own: nothing runs as
// root on the host or in the guest beyond the kubelet itself.

const persistSize = "1Gi"

// persistDirs hands out the per-PV directories, made once per suite.
var persistDirs struct {
	once sync.Once
	dirs []string
	next int
	err  error
	mu   sync.Mutex
}

// persistDirCount: enough for every test here.
const persistDirCount = 12

// makePersistDirs makes persistDirCount world-writable directories in the
// guest's /var/tmp through a throwaway PV, PVC and Pod.
func (s *suite) makePersistDirs(ctx context.Context, t *testing.T) ([]string, error) {
	base := "/var/tmp/agentkernel-pv-" + sandbox.RandomHex(4)
	name := "rn-persist-prep-" + sandbox.RandomHex(3)
	pvs := s.client.CoreV1().PersistentVolumes()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:              name,
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(persistSize)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/var/tmp", Type: ptr.To(corev1.HostPathDirectory),
			}},
		},
	}
	if _, err := pvs.Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	pvcs := s.client.CoreV1().PersistentVolumeClaims(s.namespace)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(name),
			VolumeName:       name,
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(persistSize)}},
		},
	}
	if _, err := pvcs.Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	dirs := make([]string, persistDirCount)
	for i := range dirs {
		dirs[i] = fmt.Sprintf("%s-%d", base, i)
	}
	inPod := make([]string, len(dirs))
	for i, d := range dirs {
		inPod[i] = "/mnt/" + filepath.Base(d)
	}
	pod := hardenedPod(name, "docker.io/library/busybox:1.37.0",
		"mkdir -m 1777 "+strings.Join(inPod, " ")+" && chmod 1777 "+strings.Join(inPod, " ")+" && touch /tmp/done; "+sleeper, nil)
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name},
	}})
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "root", MountPath: "/mnt"})
	// The Pod, PVC and PV go with the first test that asked; the
	// directories stay in the guest (the PV's reclaim policy is Retain).
	s.startPod(ctx, t, pod)
	t.Cleanup(func() {
		bg := context.Background()
		_ = pvcs.Delete(bg, name, metav1.DeleteOptions{})
		_ = pvs.Delete(bg, name, metav1.DeleteOptions{})
	})
	var last result
	err := poll(ctx, execTimeout, func() (bool, error) {
		last = s.kubectlRun(ctx, "", "exec", name, "-n", s.namespace, "--", "sh", "-c", "test -e /tmp/done && stat -c %a "+inPod[len(inPod)-1])
		return last.code == 0, nil
	})
	if err != nil || strings.TrimSpace(last.stdout) != "1777" {
		return nil, fmt.Errorf("making the PVs' directories in the guest: %v: %s", err, last)
	}
	return dirs, nil
}

// persistStorage makes n PersistentVolumes of a StorageClass name private
// to the test, each on its own world-writable directory of the guest, and
// returns the class. The PVs are deleted when the test ends.
func (s *suite) persistStorage(ctx context.Context, t *testing.T, n int) string {
	t.Helper()
	persistDirs.once.Do(func() { persistDirs.dirs, persistDirs.err = s.makePersistDirs(ctx, t) })
	if persistDirs.err != nil {
		t.Fatal(persistDirs.err)
	}
	persistDirs.mu.Lock()
	if persistDirs.next+n > len(persistDirs.dirs) {
		persistDirs.mu.Unlock()
		t.Fatalf("only %d PV directories made; raise persistDirCount", len(persistDirs.dirs))
	}
	dirs := persistDirs.dirs[persistDirs.next : persistDirs.next+n]
	persistDirs.next += n
	persistDirs.mu.Unlock()

	class := "rn-persist-" + sandbox.RandomHex(4)
	for i, dir := range dirs {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", class, i)},
			Spec: corev1.PersistentVolumeSpec{
				StorageClassName:              class,
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(persistSize)},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
					Path: dir, Type: ptr.To(corev1.HostPathDirectory),
				}},
			},
		}
		if _, err := s.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = s.client.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
		})
	}
	return class
}

// createPersistent creates a persistent sandbox (small, so several fit the
// guest) on class and deletes it, workspace and all, when the test ends.
func (s *suite) createPersistent(ctx context.Context, t *testing.T, name, class string, flags ...string) result {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, slowTimeout)
	defer cancel()
	args := append([]string{"create", name, "-n", s.namespace, "--persist=" + persistSize, "--storage-class", class,
		"--timeout", slowTimeout.String()}, small...)
	r := s.pluginRun(c, "", append(args, flags...)...)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		_ = s.pluginRun(c, "", "delete", name, "-n", s.namespace, "--wait", "--ignore-not-found")
	})
	if r.code != 0 {
		t.Fatalf("create %s --persist %v: %s\n%s", name, flags, r, s.node.Diagnostics())
	}
	return r
}

// podsOf lists sandbox name's Pods, on the real node only when onNode.
func (s *suite) podsOf(ctx context.Context, t *testing.T, name string, onNode bool) []corev1.Pod {
	t.Helper()
	opts := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{sandboxLabel: name}).String()}
	if onNode {
		opts.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", s.node.Name).String()
	}
	list, err := s.client.CoreV1().Pods(s.namespace).List(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// runningPodUID is the UID of sandbox name's one Running Pod.
func (s *suite) runningPodUID(ctx context.Context, t *testing.T, name string) types.UID {
	t.Helper()
	pod := s.sandboxPod(ctx, t, name)
	if pod.Status.Phase != corev1.PodRunning {
		t.Fatalf("sandbox %s: %s", name, sandbox.Describe(pod))
	}
	return pod.UID
}

// files is what a test writes in a sandbox: path → content.
type files map[string]string

// inHome sets $f to the script's $1, with a leading "~/" made $HOME/.
const inHome = `f="$1"; case "$f" in "~/"*) f="$HOME/${f#??}";; esac; `

// writeFiles writes fs in the sandbox (the $HOME ones as "~/NAME"), then
// returns the sandbox's UID.
func (s *suite) writeFiles(ctx context.Context, t *testing.T, name string, fs files) string {
	t.Helper()
	for path, content := range fs {
		r := s.sandboxExec(ctx, name, content, "sh", "-c", inHome+`cat > "$f"`, "sh", path)
		if r.code != 0 {
			t.Fatalf("write %s in %s: %s", path, name, r)
		}
	}
	r := s.sandboxExec(ctx, name, "", "id", "-u")
	uid := strings.TrimSpace(r.stdout)
	if r.code != 0 || uid == "" || uid == "0" {
		t.Fatalf("id -u in %s: %s", name, r)
	}
	return uid
}

// checkFiles reads fs back from the sandbox and checks that uid owns each
// file.
func (s *suite) checkFiles(ctx context.Context, t *testing.T, name, uid string, fs files) {
	t.Helper()
	for path, content := range fs {
		r := s.sandboxExec(ctx, name, "", "sh", "-c", inHome+`stat -c %u "$f" && cat "$f"`, "sh", path)
		for try := 1; try < 3 && strings.Contains(r.stderr, "Timeout occurred"); try++ {
			// The API server's exec proxy gave up on a kubelet slowed by TCG
			// on a loaded machine (seen beside a second guest): a read is
			// safe to ask again.
			r = s.sandboxExec(ctx, name, "", "sh", "-c", inHome+`stat -c %u "$f" && cat "$f"`, "sh", path)
		}
		owner, got, _ := strings.Cut(r.stdout, "\n")
		if r.code != 0 || got != content {
			t.Errorf("%s in %s: want %q: %s", path, name, content, r)
			continue
		}
		if owner != uid {
			t.Errorf("%s in %s is owned by UID %s, want the sandbox's %s", path, name, owner, uid)
		}
	}
}

// listShows checks that `list` shows sandbox name with status.
func (s *suite) listShows(ctx context.Context, t *testing.T, name, status string) {
	t.Helper()
	r := s.pluginRun(ctx, "", "list", "-n", s.namespace)
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			if !strings.Contains(line, status) {
				t.Errorf("list shows %s as %q, want %s", name, line, status)
			}
			return
		}
	}
	t.Errorf("list does not show %s: %s", name, r)
}

// TestPersistentSandbox: on a real kubelet, with real files, one
// persistent sandbox lives every state. Its idle timeout ends compute, not
// work: it shows as Suspended, and exec brings it back (files, their owner
// and the secret kept, a new Pod); suspend frees the node, resume brings it
// back again; its work saved to a file starts a second sandbox on a
// volume of its own. (One sandbox for all: every create costs about a
// minute under TCG. The TTL's end is the same ended Pod as the idle
// timeout's, and TestTTLAndIdleTimeoutStopASandbox proves the kubelet
// enforces it; forks stream the same archive, proven on the simulated
// node and in pkg/transfer.)
func TestPersistentSandbox(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	class := s.persistStorage(ctx, t, 2)
	const name = "rn-keep"
	secret := "kept-" + sandbox.RandomHex(8)
	t.Setenv("RN_PERSIST_SECRET", secret)
	r := s.createPersistent(ctx, t, name, class, "--secret-env", "RN_PERSIST_SECRET", "--idle-timeout", "20s")
	record("realnode: create --persist (→ Running)", r.took)
	logSpeed(t, "plugin-create-persist-running", r.took)
	first := s.runningPodUID(ctx, t, name)

	fs := files{
		"/workspace/notes.txt":     randomText(t),
		"/workspace/src/deep.txt":  "",
		"~/.agent-history":         randomText(t),
		"/workspace/with space.md": randomText(t),
	}
	if r := s.sandboxExec(ctx, name, "", "mkdir", "-p", "/workspace/src"); r.code != 0 {
		t.Fatalf("mkdir: %s", r)
	}
	fs["/workspace/src/deep.txt"] = randomText(t)
	uid := s.writeFiles(ctx, t, name, fs)
	s.checkFiles(ctx, t, name, uid, fs)
	t1 := time.Now()

	// The idle timeout suspends it; exec resumes it.
	s.waitSuspended(ctx, t, name)
	record("realnode: --persist --idle-timeout 20s: last exec → Pod ended", time.Since(t1))
	s.listShows(ctx, t, name, "Suspended")
	c, cancel := context.WithTimeout(ctx, slowTimeout)
	defer cancel()
	r = s.pluginRun(c, "", "exec", name, "-n", s.namespace, "--", "cat", "/workspace/notes.txt")
	if r.code != 0 || r.stdout != fs["/workspace/notes.txt"] || !strings.Contains(r.stderr, "resuming sandbox/"+name) {
		t.Fatalf("exec on the idle-suspended sandbox: want it resumed (stderr) and the file: %s\n%s", r, s.node.Diagnostics())
	}
	record("realnode: exec auto-resume (idle-suspended)", r.took)
	logSpeed(t, "plugin-exec-auto-resume", r.took)
	if second := s.runningPodUID(ctx, t, name); second == first {
		t.Fatalf("the resumed sandbox kept Pod %s: want a new Pod", first)
	}
	s.checkFiles(ctx, t, name, uid, fs)
	if r := s.sandboxExec(ctx, name, "", "id", "-u"); strings.TrimSpace(r.stdout) != uid {
		t.Errorf("the resumed sandbox runs as %q, want %s", r.stdout, uid)
	}
	// The real kubelet read the Secret into the new Pod.
	r = s.sandboxExec(ctx, name, "", "sh", "-c", `printf '%s' "$RN_PERSIST_SECRET"`)
	if r.code != 0 || r.stdout != secret {
		t.Errorf("the secret after resume: want %q: %s", secret, r)
	}

	// suspend frees the node (its idle timeout may have done it first).
	c2, cancel2 := context.WithTimeout(ctx, deleteTimeout)
	defer cancel2()
	r = s.pluginRun(c2, "", "suspend", name, "-n", s.namespace)
	if r.code != 0 || !strings.HasPrefix(strings.TrimSpace(r.stdout), "sandbox/"+name+" ") {
		t.Fatalf("suspend: %s", r)
	}
	record("realnode: suspend (→ Pod gone)", r.took)
	logSpeed(t, "plugin-suspend-gone", r.took)
	if pods := s.podsOf(ctx, t, name, true); len(pods) != 0 {
		t.Fatalf("suspend returned, but the node still has %d Pod(s) of the sandbox: %s", len(pods), sandbox.Describe(&pods[0]))
	}
	s.listShows(ctx, t, name, "Suspended")
	c3, cancel3 := context.WithTimeout(ctx, slowTimeout)
	defer cancel3()
	r = s.pluginRun(c3, "", "resume", name, "-n", s.namespace, "--timeout", slowTimeout.String())
	if r.code != 0 {
		t.Fatalf("resume: %s\n%s", r, s.node.Diagnostics())
	}
	record("realnode: resume (→ Running)", r.took)
	logSpeed(t, "plugin-resume-running", r.took)
	s.checkFiles(ctx, t, name, uid, fs)

	// Its work, saved to a file, starts another sandbox (snapshot resumes
	// it first if its idle timeout suspended it again).
	archive := filepath.Join(t.TempDir(), name+".tar.gz")
	c4, cancel4 := context.WithTimeout(ctx, slowTimeout)
	defer cancel4()
	r = s.pluginRun(c4, "", "snapshot", name, "-n", s.namespace, "--to", archive)
	if r.code != 0 {
		t.Fatalf("snapshot --to: %s", r)
	}
	record("realnode: snapshot --to FILE", r.took)
	if st, err := os.Stat(archive); err != nil || st.Size() == 0 {
		t.Fatalf("snapshot wrote no archive: %v", err)
	}
	r = s.createPersistent(ctx, t, "rn-restored", class, "--from", archive)
	record("realnode: create --from FILE (→ Running, filled)", r.took)
	logSpeed(t, "plugin-from-file-running", r.took)
	// A new sandbox has a UID of its own: the restored files are its.
	restoredUID := strings.TrimSpace(s.sandboxExec(ctx, "rn-restored", "", "id", "-u").stdout)
	s.checkFiles(ctx, t, "rn-restored", restoredUID, fs)
}

// waitSuspended waits until sandbox name's Pod has ended by itself, or gone.
func (s *suite) waitSuspended(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	var last string
	err := poll(ctx, endTimeout, func() (bool, error) {
		for _, p := range s.podsOf(ctx, t, name, false) {
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				last = sandbox.Describe(&p)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("sandbox %s did not end within %s: %s (%v)\n%s", name, endTimeout, last, err, s.node.Diagnostics())
	}
}
