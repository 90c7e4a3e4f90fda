package sandbox

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// askedPod is the Pod Create sends: a default sandbox behind its gate.
func askedPod() *corev1.Pod {
	s := NewSpec("t", "ns")
	s.TTL = 3600e9
	p := s.Pod()
	p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: FenceGate}}
	return p
}

// apiServerDefaults does to p what the API server itself does to every
// Pod (defaulting, ServiceAccount, DefaultTolerationSeconds, Priority
// admission): none of it is a change of ours.
func apiServerDefaults(p *corev1.Pod) {
	p.UID, p.ResourceVersion = "u1", "7"
	p.Spec.ServiceAccountName = "default"
	p.Spec.DNSPolicy = corev1.DNSClusterFirst
	p.Spec.SchedulerName = "default-scheduler"
	p.Spec.Priority = ptr.To[int32](0)
	p.Spec.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)})
	}
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		c.ImagePullPolicy = corev1.PullIfNotPresent
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	p.Spec.SecurityContext.SELinuxOptions = &corev1.SELinuxOptions{Level: "s0:c26,c5"} // an SCC's level
}

func TestAdmissionChanges(t *testing.T) {
	c0 := func(p *corev1.Pod) *corev1.Container { return &p.Spec.Containers[0] }
	cases := []struct {
		name   string
		mutate func(p *corev1.Pod)
		// want: the changed fields (prefix match); weak: those that weaken.
		want, weak []string
	}{
		{name: "nothing changed", mutate: func(*corev1.Pod) {}},
		{name: "the API server's own defaults", mutate: apiServerDefaults},
		{name: "a label added", mutate: func(p *corev1.Pod) { p.Labels["team"] = "a"; p.Annotations["policy"] = "seen" }},
		{name: "requests raised, as Autopilot does", mutate: func(p *corev1.Pod) {
			c0(p).Resources.Requests[corev1.ResourceCPU] = resource.MustParse("2")
		}, want: []string{"spec.containers[sandbox].resources.requests.cpu"}},
		{name: "a limit lowered", mutate: func(p *corev1.Pod) {
			c0(p).Resources.Limits[corev1.ResourceMemory] = resource.MustParse("512Mi")
		}, want: []string{"spec.containers[sandbox].resources.limits.memory"}},
		{name: "a limit raised", mutate: func(p *corev1.Pod) {
			c0(p).Resources.Limits[corev1.ResourceMemory] = resource.MustParse("8Gi")
		}, weak: []string{"spec.containers[sandbox].resources.limits.memory"}},
		{name: "a limit removed", mutate: func(p *corev1.Pod) {
			delete(c0(p).Resources.Limits, corev1.ResourceCPU)
		}, weak: []string{"spec.containers[sandbox].resources.limits.cpu"}},
		{name: "a sidecar", mutate: func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "proxy", Image: "envoy"})
		}, weak: []string{"spec.containers[proxy]"}},
		{name: "an init container", mutate: func(p *corev1.Pod) {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "init", Image: "x"})
		}, weak: []string{"spec.initContainers[init]"}},
		{name: "read-only root dropped", mutate: func(p *corev1.Pod) {
			c0(p).SecurityContext.ReadOnlyRootFilesystem = nil
		}, weak: []string{"spec.containers[sandbox].securityContext.readOnlyRootFilesystem"}},
		{name: "a hostPath volume", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
			c0(p).VolumeMounts = append(c0(p).VolumeMounts, corev1.VolumeMount{Name: "host", MountPath: "/host"})
		}, want: []string{"spec.containers[sandbox].volumeMounts[/host]"}, weak: []string{"spec.volumes[host]"}},
		{name: "a configMap volume", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}})
		}, want: []string{"spec.volumes[ca]"}},
		{name: "the service account token mounted", mutate: func(p *corev1.Pod) {
			p.Spec.AutomountServiceAccountToken = nil
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}})
		}, weak: []string{"spec.automountServiceAccountToken", "spec.volumes[kube-api-access]"}},
		{name: "another image", mutate: func(p *corev1.Pod) { c0(p).Image = "mirror.example/busybox:1.37.0" },
			weak: []string{"spec.containers[sandbox].image"}},
		{name: "the image pinned to its digest", mutate: func(p *corev1.Pod) {
			c0(p).Image = "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64)
		}, want: []string{"spec.containers[sandbox].image"}},
		{name: "seccomp removed from Pod and container", mutate: func(p *corev1.Pod) {
			p.Spec.SecurityContext.SeccompProfile = nil
			c0(p).SecurityContext.SeccompProfile = nil
		}, weak: []string{"spec.containers[sandbox].securityContext.seccompProfile"}},
		{name: "seccomp removed from the Pod only: the container's holds", mutate: func(p *corev1.Pod) {
			p.Spec.SecurityContext.SeccompProfile = nil
		}},
		{name: "seccomp unconfined", mutate: func(p *corev1.Pod) {
			c0(p).SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}, weak: []string{"spec.containers[sandbox].securityContext.seccompProfile"}},
		{name: "the fence's gate removed", mutate: func(p *corev1.Pod) { p.Spec.SchedulingGates = nil },
			weak: []string{"spec.schedulingGates"}},
		{name: "another gate added", mutate: func(p *corev1.Pod) {
			p.Spec.SchedulingGates = append(p.Spec.SchedulingGates, corev1.PodSchedulingGate{Name: "quota"})
		}},
		{name: "the fence's label changed", mutate: func(p *corev1.Pod) { p.Labels[LabelPool] = "other" },
			weak: []string{"metadata.labels[" + LabelPool + "]"}},
		{name: "a platform's UID", mutate: func(p *corev1.Pod) {
			p.Spec.SecurityContext.RunAsUser = ptr.To[int64](1000680000)
		}, want: []string{"spec.containers[sandbox].securityContext.runAsUser"}},
		{name: "root", mutate: func(p *corev1.Pod) {
			c0(p).SecurityContext.RunAsUser = ptr.To[int64](0)
			c0(p).SecurityContext.RunAsNonRoot = ptr.To(false)
		}, weak: []string{"spec.containers[sandbox].securityContext.runAsUser", "spec.containers[sandbox].securityContext.runAsNonRoot"}},
		{name: "privileged", mutate: func(p *corev1.Pod) { c0(p).SecurityContext.Privileged = ptr.To(true) },
			weak: []string{"spec.containers[sandbox].securityContext.privileged", "spec.containers[sandbox].securityContext.allowPrivilegeEscalation"}},
		{name: "a capability added", mutate: func(p *corev1.Pod) {
			c0(p).SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		}, weak: []string{"spec.containers[sandbox].securityContext.capabilities.add"}},
		{name: "ALL no longer dropped", mutate: func(p *corev1.Pod) { c0(p).SecurityContext.Capabilities = nil },
			weak: []string{"spec.containers[sandbox].securityContext.capabilities.drop"}},
		{name: "a secret in the environment", mutate: func(p *corev1.Pod) {
			c0(p).Env = append(c0(p).Env, corev1.EnvVar{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "t"}}})
		}, weak: []string{"spec.containers[sandbox].env[TOKEN]"}},
		{name: "a plain variable added", mutate: func(p *corev1.Pod) {
			c0(p).Env = append(c0(p).Env, corev1.EnvVar{Name: "REGION", Value: "eu"})
		}, want: []string{"spec.containers[sandbox].env[REGION]"}},
		{name: "the runtime class a user asked for removed", mutate: func(p *corev1.Pod) { p.Spec.RuntimeClassName = nil }},
		{name: "a runtime class the platform chose", mutate: func(p *corev1.Pod) { p.Spec.RuntimeClassName = ptr.To("gvisor") },
			want: []string{"spec.runtimeClassName"}},
		{name: "host network", mutate: func(p *corev1.Pod) { p.Spec.HostNetwork = true }, weak: []string{"spec.hostNetwork"}},
		{name: "user namespaces turned on", mutate: func(p *corev1.Pod) { p.Spec.HostUsers = ptr.To(false) },
			want: []string{"spec.hostUsers"}},
		{name: "the TTL removed", mutate: func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = nil },
			weak: []string{"spec.activeDeadlineSeconds"}},
		{name: "a scratch directory unbounded", mutate: func(p *corev1.Pod) { p.Spec.Volumes[0].EmptyDir.SizeLimit = nil },
			weak: []string{"spec.volumes[" + "workspace" + "].emptyDir.sizeLimit"}},
		{name: "a toleration added", mutate: func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "sandbox", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		}, want: []string{"spec.tolerations"}},
		{name: "apparmor unconfined by the old annotation", mutate: func(p *corev1.Pod) {
			p.Annotations[corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+"sandbox"] = corev1.DeprecatedAppArmorBetaProfileNameUnconfined
		}, weak: []string{"metadata.annotations[" + corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "sandbox]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			asked := askedPod()
			if tc.name == "the runtime class a user asked for removed" {
				asked.Spec.RuntimeClassName = ptr.To("kata")
				tc.weak = []string{"spec.runtimeClassName"}
			}
			stored := asked.DeepCopy()
			tc.mutate(stored)
			got := AdmissionChanges(asked, stored)
			var fields, weak []string
			for _, c := range got {
				fields = append(fields, c.Field)
				if c.Weakens {
					weak = append(weak, c.Field)
				}
			}
			want := append(append([]string(nil), tc.want...), tc.weak...)
			if !sameSet(fields, want) {
				t.Errorf("changed fields = %q, want %q\n%v", fields, want, got)
			}
			if !sameSet(weak, tc.weak) {
				t.Errorf("weakening fields = %q, want %q\n%v", weak, tc.weak, got)
			}
			if len(Weakening(got)) != len(tc.weak) {
				t.Errorf("Weakening = %v, want %d", Weakening(got), len(tc.weak))
			}
		})
	}
}

// A secret a webhook injects is named, never shown.
func TestAdmissionChangesShowNoValues(t *testing.T) {
	asked := askedPod()
	stored := asked.DeepCopy()
	stored.Spec.Containers[0].Env = append(stored.Spec.Containers[0].Env, corev1.EnvVar{Name: "API_KEY", Value: "sk-live-123"})
	stored.Spec.Containers[0].Env[0].Value = "/root/hunter2"
	for _, c := range AdmissionChanges(asked, stored) {
		if strings.Contains(c.String(), "sk-live") || strings.Contains(c.String(), "hunter2") {
			t.Errorf("a change shows a value: %s", c)
		}
	}
}

// The error a weakening makes names the changes and the field that
// accepts them; accepting keeps the changes for the caller to print.
func TestAdmittedRefusesUnlessAccepted(t *testing.T) {
	spec := NewSpec("t", "ns")
	asked := askedPod()
	stored := asked.DeepCopy()
	stored.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = ptr.To(false)
	c := &Created{}
	err := c.admitted(&spec, asked, stored)
	if err == nil {
		t.Fatal("a weakened Pod was kept")
	}
	for _, want := range []string{"readOnlyRootFilesystem: asked true, stored false", "acceptAdmissionChanges", "nothing was kept", `"ns"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	spec.AcceptAdmissionChanges = true
	c = &Created{}
	if err := c.admitted(&spec, asked, stored); err != nil {
		t.Fatalf("accepted, still refused: %v", err)
	}
	if len(c.AdmissionChanges) != 1 || !c.AdmissionChanges[0].Weakens {
		t.Errorf("AdmissionChanges = %v, want the one weakening", c.AdmissionChanges)
	}

	// Outside the fence, no flag keeps it: a gate dropped (an API server
	// before 1.27, or a webhook), a label the NetworkPolicy selects removed.
	for _, unfence := range []func(p *corev1.Pod){
		func(p *corev1.Pod) { p.Spec.SchedulingGates = nil },
		func(p *corev1.Pod) { delete(p.Labels, LabelPool) },
	} {
		stored := asked.DeepCopy()
		unfence(stored)
		err := (&Created{}).admitted(&spec, asked, stored)
		if err == nil || !strings.Contains(err.Error(), "this cannot be accepted") || strings.Contains(err.Error(), "accept it with") {
			t.Errorf("an unfenced Pod, accepted: %v", err)
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// FuzzAdmissionChanges: a stored Pod is the API server's answer, shaped by
// whatever admission the cluster runs. Comparing never panics, and a Pod
// compared with itself has no changes.
func FuzzAdmissionChanges(f *testing.F) {
	seed, _ := json.Marshal(askedPod())
	f.Add(seed)
	f.Add([]byte(`{"spec":{"containers":[{"name":"a"},{"name":"a","env":[{"name":"X"},{"name":"X","value":"y"}]}],"volumes":[{"name":"v"},{"name":"v","hostPath":{"path":"/"}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var stored corev1.Pod
		if json.Unmarshal(data, &stored) != nil {
			return
		}
		_ = AdmissionChanges(askedPod(), &stored)
		if got := AdmissionChanges(&stored, stored.DeepCopy()); len(got) > 0 {
			t.Errorf("a Pod compared with itself changed: %v", got)
		}
	})
}
