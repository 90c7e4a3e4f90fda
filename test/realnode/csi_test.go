package realnode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Real dynamic provisioning and CSI snapshots, with plain client-go objects:
// a claim of the driver's class is provisioned when a restricted Pod needs
// it, a VolumeSnapshot of it becomes ready, a claim restored from the
// snapshot and a clone of the claim each hold the files with their owner,
// the restore keeps the content as it was at snapshot time, and deleting
// the claims and the snapshot removes what the driver made in the guest.

const (
	csiWriterUID = 1000
	csiReaderUID = 1001
	csiFSGroup   = 2000
	// csiBindTimeout covers a provision, a snapshot or a delete through the
	// sidecars (each a few API round trips and a tar under TCG).
	csiBindTimeout = 4 * time.Minute
)

func TestCSIStorageOnARealNode(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	class, snapClass := s.csiStorage(ctx, t)
	dyn := csiSetup.dynamic
	pvcs := s.client.CoreV1().PersistentVolumeClaims(s.namespace)
	snaps := dyn.Resource(volumeSnapshots).Namespace(s.namespace)
	id := sandbox.RandomHex(3)
	src, restored, clone, snap := "rn-csi-src-"+id, "rn-csi-restored-"+id, "rn-csi-clone-"+id, "rn-csi-snap-"+id

	claim := func(name string, source *corev1.TypedLocalObjectReference) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PersistentVolumeClaimSpec{
				StorageClassName: ptr.To(class),
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}},
				DataSource:       source,
			},
		}
	}
	t.Cleanup(func() {
		bg := context.Background()
		_ = snaps.Delete(bg, snap, metav1.DeleteOptions{})
		for _, n := range []string{src, restored, clone} {
			_ = pvcs.Delete(bg, n, metav1.DeleteOptions{})
		}
	})

	// 1. A claim of the class, provisioned for the first Pod that uses it.
	if _, err := pvcs.Create(ctx, claim(src, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out := s.runPodToEnd(ctx, t, csiPod("rn-csi-write-"+id, csiWriterUID,
		`echo one > /data/file && stat -c '%u:%g' /data/file`, src))
	if got := strings.TrimSpace(out); got != fmt.Sprintf("%d:%d", csiWriterUID, csiFSGroup) {
		t.Fatalf("the writer's file is owned by %q, want the writer and the fsGroup", got)
	}
	srcPV := s.boundPV(ctx, t, src)

	// 2. A snapshot of it becomes ready to use.
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "snapshot.storage.k8s.io/v1",
		"kind":       "VolumeSnapshot",
		"metadata":   map[string]any{"name": snap},
		"spec": map[string]any{
			"volumeSnapshotClassName": snapClass,
			"source":                  map[string]any{"persistentVolumeClaimName": src},
		},
	}}
	if _, err := snaps.Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var contentName string
	t0 := time.Now()
	err := poll(ctx, csiBindTimeout, func() (bool, error) {
		if err := s.guestStopped(); err != nil {
			return false, err
		}
		got, err := snaps.Get(ctx, snap, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ready, _, _ := unstructured.NestedBool(got.Object, "status", "readyToUse")
		contentName, _, _ = unstructured.NestedString(got.Object, "status", "boundVolumeSnapshotContentName")
		if msg, found, _ := unstructured.NestedString(got.Object, "status", "error", "message"); found {
			t.Logf("VolumeSnapshot %s: %s", snap, msg)
		}
		return ready && contentName != "", nil
	})
	if err != nil {
		t.Fatalf("VolumeSnapshot %s not ready to use: %v\n%s", snap, err, s.node.Diagnostics())
	}
	record("CSI: VolumeSnapshot created → readyToUse", time.Since(t0))
	content, err := dyn.Resource(volumeSnapshotContents).Get(ctx, contentName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snapHandle, _, _ := unstructured.NestedString(content.Object, "status", "snapshotHandle")
	if !strings.HasPrefix(snapHandle, "snap-") {
		t.Fatalf("VolumeSnapshotContent %s has snapshot handle %q, not one of the test driver's", contentName, snapHandle)
	}

	// 3. The original changes after the snapshot.
	s.runPodToEnd(ctx, t, csiPod("rn-csi-modify-"+id, csiWriterUID, `echo two > /data/file && cat /data/file`, src))

	// 4. A claim from the snapshot and a clone of the claim, both read by a
	// Pod of another UID in the same fsGroup, which also lists what the
	// driver keeps in the guest.
	if _, err := pvcs.Create(ctx, claim(restored, &corev1.TypedLocalObjectReference{
		APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: snap,
	}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pvcs.Create(ctx, claim(clone, &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: src}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	base := s.driverBaseClaim(ctx, t, id)
	reader := csiPod("rn-csi-read-"+id, csiReaderUID,
		`for d in restored clone; do echo "$d $(cat /$d/file) $(stat -c '%u:%g' /$d/file)"; done; echo; ls /base/volumes /base/snapshots`,
		"")
	reader.Spec.Volumes = append(reader.Spec.Volumes,
		claimVolume("restored", restored, false), claimVolume("clone", clone, false), claimVolume("base", base, true))
	reader.Spec.Containers[0].VolumeMounts = append(reader.Spec.Containers[0].VolumeMounts,
		corev1.VolumeMount{Name: "restored", MountPath: "/restored"},
		corev1.VolumeMount{Name: "clone", MountPath: "/clone"},
		corev1.VolumeMount{Name: "base", MountPath: "/base", ReadOnly: true})
	out = s.runPodToEnd(ctx, t, reader)
	owner := fmt.Sprintf("%d:%d", csiWriterUID, csiFSGroup)
	for _, want := range []string{"restored one " + owner, "clone two " + owner} {
		if !strings.Contains(out, want+"\n") {
			t.Fatalf("the reader saw\n%s\nwant a line %q (the restore as at snapshot time, the clone as now, both with the writer's owner)", out, want)
		}
	}
	restoredPV, clonePV := s.boundPV(ctx, t, restored), s.boundPV(ctx, t, clone)
	handles := []string{srcPV.Spec.CSI.VolumeHandle, restoredPV.Spec.CSI.VolumeHandle, clonePV.Spec.CSI.VolumeHandle, snapHandle + ".tar"}
	for _, h := range handles {
		if !strings.Contains(out, h) {
			t.Fatalf("the driver's directories in the guest do not list %s:\n%s", h, out)
		}
	}

	// 5. Deleting the claims and the snapshot deletes the volumes and the
	// snapshot in the driver.
	t0 = time.Now()
	for _, n := range []string{restored, clone, src} {
		if err := pvcs.Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := snaps.Delete(ctx, snap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = poll(ctx, csiBindTimeout, func() (bool, error) {
		if err := s.guestStopped(); err != nil {
			return false, err
		}
		for _, pv := range []string{srcPV.Name, restoredPV.Name, clonePV.Name} {
			if _, err := s.client.CoreV1().PersistentVolumes().Get(ctx, pv, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, nil
			}
		}
		_, err := dyn.Resource(volumeSnapshotContents).Get(ctx, contentName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("the PVs and the VolumeSnapshotContent of deleted claims and snapshot are still there: %v\n%s", err, s.node.Diagnostics())
	}
	record("CSI: claims and snapshot deleted → PVs and content gone", time.Since(t0))
	lister := csiPod("rn-csi-list-"+id, csiReaderUID, `ls /base/volumes /base/snapshots`, "")
	lister.Spec.Volumes = append(lister.Spec.Volumes, claimVolume("base", base, true))
	lister.Spec.Containers[0].VolumeMounts = append(lister.Spec.Containers[0].VolumeMounts,
		corev1.VolumeMount{Name: "base", MountPath: "/base", ReadOnly: true})
	out = s.runPodToEnd(ctx, t, lister)
	for _, h := range handles {
		if strings.Contains(out, strings.TrimSuffix(h, ".tar")) {
			t.Fatalf("%s is still in the driver's directories after its claim or snapshot was deleted:\n%s", h, out)
		}
	}
}

// guestStopped is an error once the guest has powered off (its init does so
// when a service dies for good): waiting longer would only time out.
func (s *suite) guestStopped() error {
	select {
	case <-s.node.Exited():
		return errors.New("the realnode guest stopped (console.log says why)")
	default:
		return nil
	}
}

// csiPod is a restricted Pod that runs script once as uid, in the test's
// fsGroup, with claim (if any) at /data.
func csiPod(name string, uid int64, script, claim string) *corev1.Pod {
	pod := hardenedPod(name, SandboxImage, script, nil)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.SecurityContext.RunAsUser = ptr.To(uid)
	pod.Spec.SecurityContext.RunAsGroup = ptr.To(uid)
	pod.Spec.SecurityContext.FSGroup = ptr.To[int64](csiFSGroup)
	if claim != "" {
		pod.Spec.Volumes = append(pod.Spec.Volumes, claimVolume("data", claim, false))
		pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
	}
	return pod
}

func claimVolume(name, claim string, readOnly bool) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly},
	}}
}

// runPodToEnd creates a Pod that runs once, waits until it ends, deletes
// it and returns its log; a Pod that fails fails the test with its log.
func (s *suite) runPodToEnd(ctx context.Context, t *testing.T, pod *corev1.Pod) string {
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
	err := poll(ctx, podRunningTimeout+csiBindTimeout, func() (bool, error) {
		if err := s.guestStopped(); err != nil {
			return false, err
		}
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = p
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	logs, logErr := pods.GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || got.Status.Phase != corev1.PodSucceeded {
		events, _ := s.client.CoreV1().Events(s.namespace).List(ctx, metav1.ListOptions{})
		var ev strings.Builder
		for _, e := range events.Items {
			fmt.Fprintf(&ev, "  %s %s: %s\n", e.InvolvedObject.Name, e.Reason, e.Message)
		}
		t.Fatalf("pod %s did not succeed: %v\nstatus: %+v\nlog: %s %v\nevents:\n%s\n%s", pod.Name, err, statusOf(got), logs, logErr, ev.String(), s.node.Diagnostics())
	}
	record("CSI: run-once pod create → Succeeded", time.Since(t0))
	// A claim stays in use (its pvc-protection finalizer stays) while an
	// ended Pod that mounted it still exists.
	if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatalf("delete the ended pod %s: %v", pod.Name, err)
	}
	return string(logs)
}

// boundPV returns the PV bound to claim, which must be one of the test
// driver's.
func (s *suite) boundPV(ctx context.Context, t *testing.T, claim string) *corev1.PersistentVolume {
	t.Helper()
	pvc, err := s.client.CoreV1().PersistentVolumeClaims(s.namespace).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		t.Fatalf("claim %s is %s, not Bound, after a Pod used it", claim, pvc.Status.Phase)
	}
	pv, err := s.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != CSIDriverName || pv.Spec.CSI.VolumeHandle == "" {
		t.Fatalf("PV %s of claim %s was not provisioned by %s: %+v", pv.Name, claim, CSIDriverName, pv.Spec.PersistentVolumeSource)
	}
	return pv
}

// driverBaseClaim makes a claim of the driver's base directory in the
// guest (a hostPath PV of a class of its own: a hostPath volume is not
// allowed under "restricted", a claim is), so a Pod can list what the
// driver keeps there.
func (s *suite) driverBaseClaim(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	name := "rn-csi-base-" + id
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:              name,
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: CSIBaseDir, Type: ptr.To(corev1.HostPathDirectory),
			}},
		},
	}
	if _, err := s.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvcs := s.client.CoreV1().PersistentVolumeClaims(s.namespace)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(name),
			VolumeName:       name,
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := pvcs.Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := context.Background()
		_ = pvcs.Delete(bg, name, metav1.DeleteOptions{})
		_ = s.client.CoreV1().PersistentVolumes().Delete(bg, name, metav1.DeleteOptions{})
	})
	return name
}
