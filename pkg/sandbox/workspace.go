package sandbox

import (
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// A persistent sandbox keeps its work on one PersistentVolumeClaim, its
// workspace, which is the root of everything the sandbox owns:
//
//   - the workspace (PVC) holds /workspace and $HOME (as two subPaths of
//     one volume) and the record of the sandbox's shape (AnnotationRecord:
//     the Spec, as create made it), so the data and the knowledge of how to
//     bring its sandbox back can never be separated;
//   - the sandbox's Secret is owned by the workspace: it lives as long as
//     the sandbox, not as long as one Pod;
//   - each incarnation's Pod is owned by the workspace (not as its
//     controller: Ours refuses controlled Pods), and the Pod owns its
//     NetworkPolicy, as a disposable sandbox's does.
//
// Suspending deletes the Pod (and so its policy); resuming makes a new Pod
// and policy from the record, through the same gated create as a new
// sandbox. Nothing needs a controller: the garbage collector removes a
// workspace's Secret and any Pod once the workspace is gone, and the
// cluster's own pvc-protection keeps a workspace while a Pod uses it.

// Workspace is what a persistent sandbox's PersistentVolumeClaim is made of.
type Workspace struct {
	// Size is the claim's storage request.
	Size resource.Quantity `json:"size"`
	// StorageClass is the claim's class; "" is the cluster's default.
	StorageClass string `json:"storageClass,omitempty"`
	// Retain, if set, is how long a suspended workspace is kept: gc
	// deletes it once it has been suspended for longer.
	Retain time.Duration `json:"retain,omitempty"`
	// Source, if set, is what the claim starts with (its dataSource): a
	// VolumeSnapshot to restore, or another workspace to clone. The
	// cluster's CSI driver fills the volume before any Pod mounts it.
	Source *corev1.TypedLocalObjectReference `json:"source,omitempty"`
	// ClaimName is the claim's name when it is not WorkspaceName(sandbox):
	// a pool member's workspace is named as the member, and keeps that
	// name once claimed (workspace_pool.go). Never stored: the claim has it.
	ClaimName string `json:"-"`
}

// DefaultWorkspaceSize is the size of a workspace when none is asked for.
var DefaultWorkspaceSize = resource.MustParse("10Gi")

// Workspace annotations, on the PersistentVolumeClaim.
const (
	// AnnotationRecord holds the sandbox's Spec as created (recordVersion).
	AnnotationRecord = "agentkernel/record"
	// AnnotationSuspendedAt is when the sandbox was last suspended (RFC 3339).
	AnnotationSuspendedAt = "agentkernel/suspended-at"
	// AnnotationSuspendedWhy says why: "suspend", "idle", "ttl" or the
	// reason its last Pod ended.
	AnnotationSuspendedWhy = "agentkernel/suspended-why"

	// workspaceVolume is the Pod's volume for the workspace claim.
	workspaceVolume = "workspace"
	// The subPaths of the claim that /workspace and $HOME are.
	workspaceSubPath = "workspace"
	homeSubPath      = "home"
)

// recordVersion is the version of the AnnotationRecord format.
const recordVersion = 1

// WorkspaceName is the name of the PersistentVolumeClaim of a persistent
// sandbox. It is the cold Pod's name too: kinds do not share names.
func WorkspaceName(name string) string { return NamePrefix + name }

func (w *Workspace) validate() error {
	if w.Size.Sign() <= 0 {
		return field.Invalid("workspaceSize", "`workspaceSize` must be greater than zero (got %q)", w.Size.String())
	}
	if w.StorageClass != "" {
		if errs := validation.IsDNS1123Subdomain(w.StorageClass); len(errs) > 0 {
			return field.Invalid("storageClass", "invalid `storageClass` %q: a StorageClass name is a DNS subdomain", w.StorageClass)
		}
	}
	if w.Retain < 0 || (w.Retain > 0 && w.Retain < time.Minute) {
		return field.Invalid("retain", "`retain` must be at least 1m (or 0 to keep a suspended workspace until it is deleted), not %s", w.Retain)
	}
	return nil
}

// WorkspaceClaim returns the persistent sandbox's PersistentVolumeClaim,
// carrying its record, or nil for a disposable sandbox.
func (s *Spec) WorkspaceClaim() *corev1.PersistentVolumeClaim {
	if s.Workspace == nil {
		return nil
	}
	meta := s.objectMeta(s.Workspace.claimName(s.Name))
	meta.Annotations[AnnotationRecord] = s.record()
	var class *string
	if s.Workspace.StorageClass != "" {
		class = &s.Workspace.StorageClass
	}
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: meta,
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			DataSource:       s.Workspace.Source.DeepCopy(),
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: s.Workspace.Size.DeepCopy()},
			},
		},
	}
}

// volumes are the Pod's volumes and mounts: /workspace and $HOME are two
// emptyDirs, or two subPaths of the workspace claim; /tmp and the run
// directory are always emptyDirs.
func (s *Spec) volumes() ([]corev1.Volume, []corev1.VolumeMount) {
	tmp, run := emptyDir("tmp", s.EphemeralStorage), runDirVolume()
	if s.Workspace == nil {
		return []corev1.Volume{emptyDir("workspace", s.EphemeralStorage), tmp, emptyDir("home", s.EphemeralStorage), run},
			[]corev1.VolumeMount{
				{Name: "workspace", MountPath: WorkspaceDir},
				{Name: tmp.Name, MountPath: TmpDir},
				{Name: "home", MountPath: HomeDir},
				{Name: run.Name, MountPath: RunDir},
			}
	}
	claim := corev1.Volume{
		Name: workspaceVolume,
		VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
			ClaimName: s.Workspace.claimName(s.Name),
		}},
	}
	return []corev1.Volume{claim, tmp, run}, []corev1.VolumeMount{
		{Name: workspaceVolume, MountPath: WorkspaceDir, SubPath: workspaceSubPath},
		{Name: tmp.Name, MountPath: TmpDir},
		{Name: workspaceVolume, MountPath: HomeDir, SubPath: homeSubPath},
		{Name: run.Name, MountPath: RunDir},
	}
}

// workspaceOwner is the ownerReference a persistent sandbox's Pod and
// Secret carry to its workspace. It is not a controller reference: Ours
// refuses Pods that a controller owns.
func workspaceOwner(pvc *corev1.PersistentVolumeClaim) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "PersistentVolumeClaim", Name: pvc.Name, UID: pvc.UID}
}

type storedRecord struct {
	Version int  `json:"version"`
	Spec    Spec `json:"spec"`
}

// record is the Spec as AnnotationRecord stores it: no name or namespace
// (the claim has both), no Shape (never stored).
func (s *Spec) record() string {
	c := s.Clone()
	c.Name, c.Namespace, c.Shape = "", "", nil
	b, err := json.Marshal(storedRecord{Version: recordVersion, Spec: c})
	if err != nil {
		panic(fmt.Sprintf("a Spec always encodes: %v", err))
	}
	return string(b)
}

// OursWorkspace returns nil when pvc is the workspace of the sandbox called
// name, or why it is not: labels, name and owners must agree with the way
// this plugin makes workspaces, as Ours asks of Pods.
func OursWorkspace(pvc *corev1.PersistentVolumeClaim, name string) error {
	switch l := pvc.Labels; {
	case l[LabelManagedBy] != ManagedBy:
		return fmt.Errorf("it lacks the label %s", ManagedSelector)
	case l[LabelSandbox] != name:
		return fmt.Errorf("its label %s is %q, not %q", LabelSandbox, l[LabelSandbox], name)
	case !workspaceNamedFor(pvc, name):
		return fmt.Errorf("its name is neither %q nor that of a member of a sandbox pool", WorkspaceName(name))
	case pvc.Annotations[AnnotationRecord] == "":
		return fmt.Errorf("it has no %s annotation", AnnotationRecord)
	}
	if ref := metav1.GetControllerOfNoCopy(pvc); ref != nil {
		return fmt.Errorf("it is controlled by %s %q", ref.Kind, ref.Name)
	}
	return nil
}

// SpecOf reads back the Spec a workspace records, validated as create
// validates a new one: the record is only as trusted as the users who may
// change PersistentVolumeClaims in the namespace, which is no more than
// those who may create sandboxes there.
func SpecOf(pvc *corev1.PersistentVolumeClaim) (*Spec, error) {
	name := pvc.Labels[LabelSandbox]
	var r storedRecord
	if err := json.Unmarshal([]byte(pvc.Annotations[AnnotationRecord]), &r); err != nil {
		return nil, fmt.Errorf("workspace %q in namespace %q: its %s annotation is not a sandbox record: %v", pvc.Name, pvc.Namespace, AnnotationRecord, err)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("workspace %q in namespace %q: its record has version %d, this plugin reads version %d: upgrade the plugin", pvc.Name, pvc.Namespace, r.Version, recordVersion)
	}
	s := r.Spec
	s.Name, s.Namespace = name, pvc.Namespace
	if s.Workspace == nil {
		return nil, fmt.Errorf("workspace %q in namespace %q: its record describes a sandbox without a workspace", pvc.Name, pvc.Namespace)
	}
	if pvc.Name != WorkspaceName(name) {
		s.Workspace.ClaimName = pvc.Name // claimed from a pool: the member's name
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("workspace %q in namespace %q: its record does not describe a valid sandbox: %w", pvc.Name, pvc.Namespace, err)
	}
	return &s, nil
}

// SuspendedSince is when a workspace's sandbox was suspended, and why; ok
// is false when the workspace does not say (its sandbox was never
// suspended, or its Pod ended and nobody has looked yet).
func SuspendedSince(pvc *corev1.PersistentVolumeClaim) (at time.Time, why string, ok bool) {
	t, err := time.Parse(time.RFC3339, pvc.Annotations[AnnotationSuspendedAt])
	if err != nil {
		return time.Time{}, "", false
	}
	return t, pvc.Annotations[AnnotationSuspendedWhy], true
}

// RetainedUntil is when gc may delete a suspended workspace; ok is false
// when it is kept until deleted (no Retain) or it is not suspended.
func RetainedUntil(pvc *corev1.PersistentVolumeClaim, s *Spec) (time.Time, bool) {
	at, _, ok := SuspendedSince(pvc)
	if !ok || s.Workspace == nil || s.Workspace.Retain <= 0 {
		return time.Time{}, false
	}
	return at.Add(s.Workspace.Retain), true
}
