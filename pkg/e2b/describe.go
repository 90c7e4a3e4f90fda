package e2b

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A sandbox's E2B metadata and template live in its Pod's annotations:
// metadata is any strings (label values could not hold them), listed and
// filtered by serve.
const (
	AnnotationMetadata = "agentkernel/e2b-metadata"
	AnnotationTemplate = "agentkernel/e2b-template"
	// AnnotationStarted is when serve handed the sandbox to its client
	// (RFC 3339): the moment its timeout counts from, which is neither the
	// Pod's start (a cold start on a slow node takes a minute before the
	// sandbox is the client's) nor its creation (a pool member may have
	// waited for hours).
	AnnotationStarted = "agentkernel/e2b-started"
)

// Bounds of a request's metadata: it is kept in an annotation, and the
// API server refuses a Pod whose annotations pass 256 KiB.
const (
	maxMetadataEntries = 64
	maxMetadataKey     = 256
	maxMetadataValue   = 2048
)

// clientID is what E2B calls the machine a sandbox runs on.
const clientID = "agentkernel"

func jsonDecoder(r io.Reader) *json.Decoder { return json.NewDecoder(r) }

func checkMetadata(m *api.SandboxMetadata) (map[string]string, error) {
	if m == nil {
		return nil, nil
	}
	if len(*m) > maxMetadataEntries {
		return nil, errorf(http.StatusBadRequest, "metadata has %d entries: at most %d", len(*m), maxMetadataEntries)
	}
	for k, v := range *m {
		if k == "" || len(k) > maxMetadataKey || len(v) > maxMetadataValue || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, errorf(http.StatusBadRequest, "metadata keys must be 1 to %d bytes and values at most %d, in UTF-8", maxMetadataKey, maxMetadataValue)
		}
	}
	return *m, nil
}

// describeNew writes a new sandbox's template, metadata, start (now) and
// E2B end (if not zero) on its Pod, by UID: a Pod that is not the one made
// here is never written.
func (s *Server) describeNew(ctx context.Context, pod *corev1.Pod, template string, meta map[string]string, end time.Time) (*corev1.Pod, error) {
	ann := map[string]any{AnnotationTemplate: template, AnnotationStarted: s.now().UTC().Truncate(time.Second).Format(time.RFC3339)}
	if !end.IsZero() {
		ann[AnnotationEnd] = end.UTC().Format(time.RFC3339)
	}
	if len(meta) > 0 {
		b, err := json.Marshal(meta)
		if err != nil {
			return nil, err
		}
		ann[AnnotationMetadata] = string(b)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID, "annotations": ann}})
	if err != nil {
		return nil, err
	}
	return s.o.Clientset.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
}

// metadataOf is a sandbox's metadata; an annotation that does not read
// back (someone edited it) is none.
func metadataOf(annotations map[string]string) map[string]string {
	m := map[string]string{}
	if v := annotations[AnnotationMetadata]; v != "" {
		_ = json.Unmarshal([]byte(v), &m)
	}
	return m
}

func templateOf(annotations map[string]string) string {
	if t := annotations[AnnotationTemplate]; t != "" {
		return t
	}
	return DefaultTemplate
}

// sandboxOf is create's and connect's answer: the sandbox and its envd
// access token.
func (s *Server) sandboxOf(ctx context.Context, pod *corev1.Pod) (*api.Sandbox, error) {
	uid, err := s.identity(ctx, pod)
	if err != nil {
		return nil, err
	}
	name := sandbox.NameOf(pod)
	token := s.keys.token(s.o.Namespace, name, uid)
	return &api.Sandbox{
		SandboxID:       name,
		TemplateID:      templateOf(pod.Annotations),
		ClientID:        clientID,
		EnvdVersion:     s.o.EnvdVersion,
		EnvdAccessToken: &token,
	}, nil
}

// resources are a sandbox's CPUs (rounded up) and memory and disk in MB.
func resources(pod *corev1.Pod) (cpu, memMB, diskMB int32) {
	for _, c := range pod.Spec.Containers {
		if c.Name != sandbox.ContainerName {
			continue
		}
		l := c.Resources.Limits
		if q, ok := l[corev1.ResourceCPU]; ok {
			cpu = clamp32(int64(math.Ceil(float64(q.MilliValue()) / 1000)))
		}
		if q, ok := l[corev1.ResourceMemory]; ok {
			memMB = clamp32(q.Value() >> 20)
		}
		if q, ok := l[corev1.ResourceEphemeralStorage]; ok {
			diskMB = clamp32(q.Value() >> 20)
		}
	}
	return cpu, memMB, diskMB
}

func clamp32(v int64) int32 { return int32(min(max(v, 0), math.MaxInt32)) }

// startedAt is when the sandbox started: when serve handed it over, or
// for a sandbox serve did not make, when it became ready (else its Pod's
// start, else its creation).
func startedAt(pod *corev1.Pod) time.Time {
	if at, err := time.Parse(time.RFC3339, pod.Annotations[AnnotationStarted]); err == nil {
		return at.UTC()
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.UTC()
		}
	}
	if pod.Status.StartTime != nil {
		return pod.Status.StartTime.UTC()
	}
	return pod.CreationTimestamp.UTC()
}

// endAt is a sandbox's E2B end, or without one its ceiling.
func (s *Server) endAt(pod *corev1.Pod) time.Time {
	if at, ok := endOf(pod); ok {
		return at.UTC()
	}
	if at, ok := s.ceiling(pod); ok {
		return at.UTC()
	}
	// No TTL (a sandbox not made by serve): a year from now stands for never.
	return s.now().AddDate(1, 0, 0).UTC()
}

// listed is a running sandbox as list shows it.
func (s *Server) listed(pod *corev1.Pod) api.ListedSandbox {
	cpu, mem, disk := resources(pod)
	meta := api.SandboxMetadata(metadataOf(pod.Annotations))
	return api.ListedSandbox{
		SandboxID:   sandbox.NameOf(pod),
		TemplateID:  templateOf(pod.Annotations),
		ClientID:    clientID,
		CpuCount:    cpu,
		MemoryMB:    mem,
		DiskSizeMB:  disk,
		StartedAt:   startedAt(pod),
		EndAt:       s.endAt(pod),
		EnvdVersion: s.o.EnvdVersion,
		Metadata:    &meta,
		State:       api.Running,
	}
}

// suspendedListed is a paused (suspended) sandbox as list shows it.
func (s *Server) suspendedListed(ss *sandbox.SuspendedSandbox) api.ListedSandbox {
	meta := api.SandboxMetadata(metadataOf(ss.Workspace.Annotations))
	at := ss.Since
	if at.IsZero() {
		at = ss.Workspace.CreationTimestamp.Time
	}
	return api.ListedSandbox{
		SandboxID:   ss.Name(),
		TemplateID:  templateOf(ss.Workspace.Annotations),
		ClientID:    clientID,
		StartedAt:   ss.Workspace.CreationTimestamp.UTC(),
		EndAt:       at.UTC(),
		EnvdVersion: s.o.EnvdVersion,
		Metadata:    &meta,
		State:       api.Paused,
	}
}

func (s *Server) detail(pod *corev1.Pod) api.SandboxDetail {
	l := s.listed(pod)
	allow := pod.Annotations[sandbox.AnnotationNetwork] != string(sandbox.NetworkNone)
	return api.SandboxDetail{
		SandboxID:           l.SandboxID,
		TemplateID:          l.TemplateID,
		ClientID:            l.ClientID,
		CpuCount:            l.CpuCount,
		MemoryMB:            l.MemoryMB,
		DiskSizeMB:          l.DiskSizeMB,
		StartedAt:           l.StartedAt,
		EndAt:               l.EndAt,
		EnvdVersion:         l.EnvdVersion,
		Metadata:            l.Metadata,
		State:               api.Running,
		AllowInternetAccess: &allow,
	}
}
