package main

// The persistence rows (issue #22): suspend, resume and fork of a
// persistent sandbox, each against a cold create of the same persistent
// sandbox (`create --persist`, the workspace made and bound from nothing).
// Both sides are the plugin: plain kubectl has no suspend or resume, and a
// cold create is what a user without them would do instead. The "kubectl"
// column of these rows is therefore that cold create.
//
// The local cluster has no provisioner: as test/e2e's storageFor does, the
// bench makes one PersistentVolume per workspace (untimed, in Prepare) of a
// StorageClass name of its own, and deletes them when the row is done.

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

const (
	benchPVLabel    = "agentkernel-bench/pv"
	benchPersistGiB = "1Gi"
)

// persistClass is the StorageClass name of the bench's PVs, one per run.
var persistClass = "bench-persist-" + sandbox.RandomHex(4)

// benchPV makes one PV for one workspace; the PV controller binds it to
// the next claim of persistClass.
func benchPV(ctx context.Context, e *Env, name string) error {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: persistClass + "-" + name, Labels: map[string]string{benchPVLabel: persistClass}},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:              persistClass,
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(benchPersistGiB)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			// The simulated node mounts nothing.
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/bench/" + name}},
		},
	}
	_, err := e.Clientset.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	return err
}

// dropPVs deletes the bench's PVs (cluster-scoped: the namespace's
// deletion does not take them).
func dropPVs(ctx context.Context, e *Env) error {
	return e.Clientset.CoreV1().PersistentVolumes().DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: benchPVLabel + "=" + persistClass})
}

// persistArgs create a persistent sandbox on one of the bench's PVs.
func persistArgs(name string, extra ...string) []string {
	return append([]string{name, "--persist=" + benchPersistGiB, "--storage-class", persistClass}, extra...)
}

// createPersist makes a persistent sandbox and its PV (untimed setup).
func createPersist(ctx context.Context, e *Env, name string) error {
	if err := benchPV(ctx, e, name); err != nil {
		return err
	}
	_, err := e.run(ctx, nil, e.ours("create", persistArgs(name)...)...)
	return err
}

// deletePersist deletes a sandbox, its workspace and its PV (untimed).
func deletePersist(ctx context.Context, e *Env, name string) error {
	if _, err := e.run(ctx, nil, e.ours("delete", name, "--wait", "--ignore-not-found")...); err != nil {
		return err
	}
	return e.Clientset.CoreV1().PersistentVolumes().Delete(ctx, persistClass+"-"+name, metav1.DeleteOptions{})
}

func persistRows() []*Scenario {
	// The other side of every row: the same persistent sandbox, cold.
	cold := func(prefix string) Side {
		name := func(round int) string { return fmt.Sprintf("%s%d", prefix, round) }
		return Side{
			Label:   "kubectl agentkernel create --persist (cold: a new workspace, bound, and its Pod)",
			Prepare: func(ctx context.Context, e *Env, round int) error { return benchPV(ctx, e, name(round)) },
			Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
				return e.run(ctx, nil, e.ours("create", persistArgs(name(round))...)...)
			},
			Cleanup: func(ctx context.Context, e *Env, round int) error { return deletePersist(ctx, e, name(round)) },
		}
	}
	done := func(ctx context.Context, e *Env) error { return dropPVs(ctx, e) }
	return []*Scenario{
		{
			Name:    "suspend → Pod gone",
			Cluster: true,
			Setup:   needCluster,
			Ours: Side{
				Label: "kubectl agentkernel suspend (sync, Pod deleted and gone; the workspace kept)",
				Prepare: func(ctx context.Context, e *Env, round int) error {
					return createPersist(ctx, e, fmt.Sprintf("ps%d", round))
				},
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.run(ctx, nil, e.ours("suspend", fmt.Sprintf("ps%d", round))...)
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error {
					return deletePersist(ctx, e, fmt.Sprintf("ps%d", round))
				},
			},
			Kubectl: cold("psk"),
			Done:    done,
			Note:    "the other column is the plugin's cold create --persist of the same sandbox, not kubectl",
		},
		{
			Name:    "resume → exec-ready",
			Cluster: true,
			Setup:   needCluster,
			Ours: Side{
				Label: "kubectl agentkernel resume (a new Pod on the kept workspace, waits until Running)",
				Prepare: func(ctx context.Context, e *Env, round int) error {
					name := fmt.Sprintf("pr%d", round)
					if err := createPersist(ctx, e, name); err != nil {
						return err
					}
					_, err := e.run(ctx, nil, e.ours("suspend", name)...)
					return err
				},
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.run(ctx, nil, e.ours("resume", fmt.Sprintf("pr%d", round))...)
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error {
					return deletePersist(ctx, e, fmt.Sprintf("pr%d", round))
				},
			},
			Kubectl: cold("prk"),
			Done:    done,
			Note:    "the other column is the plugin's cold create --persist of the same sandbox, not kubectl",
		},
		{
			Name:    "fork (create --from SANDBOX) → exec-ready",
			Cluster: true,
			Setup: func(ctx context.Context, e *Env) error {
				if err := needCluster(ctx, e); err != nil {
					return err
				}
				return createPersist(ctx, e, "fork-src")
			},
			Ours: Side{
				Label:   "kubectl agentkernel create --from SANDBOX --persist (a new workspace, its Pod, the source's files streamed in)",
				Prepare: func(ctx context.Context, e *Env, round int) error { return benchPV(ctx, e, fmt.Sprintf("pf%d", round)) },
				Run: func(ctx context.Context, e *Env, round int) (Sample, error) {
					return e.run(ctx, nil, e.ours("create", persistArgs(fmt.Sprintf("pf%d", round), "--from", "fork-src")...)...)
				},
				Cleanup: func(ctx context.Context, e *Env, round int) error {
					return deletePersist(ctx, e, fmt.Sprintf("pf%d", round))
				},
			},
			Kubectl: cold("pfk"),
			Done: func(ctx context.Context, e *Env) error {
				_ = deletePersist(ctx, e, "fork-src")
				return dropPVs(ctx, e)
			},
			Note: "the other column is the plugin's cold create --persist of the same sandbox, not kubectl; on the simulated node the source's workspace is what its exec sees",
		},
	}
}
