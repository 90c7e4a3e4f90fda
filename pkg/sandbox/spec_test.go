package sandbox

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
)

func TestPodPassesPodSecurityRestricted(t *testing.T) {
	variants := map[string]func(*Spec){
		"default":      func(*Spec) {},
		"moderate":     func(s *Spec) { s.Profile = ProfileModerate; s.Network, s.ReadOnlyRoot = ProfileModerate.Defaults() },
		"permissive":   func(s *Spec) { s.Profile = ProfilePermissive; s.Network, s.ReadOnlyRoot = ProfilePermissive.Defaults() },
		"everything":   everything,
		"custom uid":   func(s *Spec) { s.UID = 424242 },
		"secrets env":  func(s *Spec) { s.SecretEnvNames = []string{"API_KEY"} },
		"warm install": func(s *Spec) { s.WarmInstall = "npm install --global tool@1" },
	}
	for name, mutate := range variants {
		t.Run(name, func(t *testing.T) {
			s := NewSpec("demo", "ns")
			mutate(&s)
			if err := s.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if v := fakecluster.RestrictedViolations(t, s.Pod()); v != "" {
				t.Fatalf("sandbox pod violates restricted: %s", v)
			}
		})
	}
}

func everything(s *Spec) {
	s.Image = "node:22"
	s.RuntimeClassName = "gvisor"
	s.NodeSelector = map[string]string{"pool": "agents"}
	s.ServiceAccountName = "agent"
	s.Env = []corev1.EnvVar{{Name: "MODE", Value: "x=y"}}
	s.Labels = map[string]string{"team": "ml"}
	s.Ports = []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
}

// The check above must be able to fail: each weakening is caught.
func TestWeakenedPodIsCaught(t *testing.T) {
	weakenings := map[string]func(*corev1.Pod){
		"privilege escalation": func(p *corev1.Pod) { p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true) },
		"capabilities kept":    func(p *corev1.Pod) { p.Spec.Containers[0].SecurityContext.Capabilities = nil },
		"root allowed": func(p *corev1.Pod) {
			p.Spec.SecurityContext.RunAsNonRoot = nil
			p.Spec.Containers[0].SecurityContext.RunAsNonRoot = nil
		},
		"no seccomp": func(p *corev1.Pod) {
			p.Spec.SecurityContext.SeccompProfile = nil
			p.Spec.Containers[0].SecurityContext.SeccompProfile = nil
		},
		"host network": func(p *corev1.Pod) { p.Spec.HostNetwork = true },
	}
	for name, weaken := range weakenings {
		t.Run(name, func(t *testing.T) {
			s := NewSpec("demo", "ns")
			pod := s.Pod()
			weaken(pod)
			if v := fakecluster.RestrictedViolations(t, pod); v == "" {
				t.Fatal("a weakened pod passed the restricted check")
			}
		})
	}
}

func TestPodHardening(t *testing.T) {
	s := NewSpec("demo", "ns")
	pod := s.Pod()
	c := pod.Spec.Containers[0]
	checks := map[string]bool{
		"name has prefix":              pod.Name == "agentkernel-demo",
		"managed label":                pod.Labels[LabelManagedBy] == "agentkernel",
		"sandbox label":                pod.Labels[LabelSandbox] == "demo",
		"no token":                     !*pod.Spec.AutomountServiceAccountToken,
		"no service links":             !*pod.Spec.EnableServiceLinks,
		"never restarts":               pod.Spec.RestartPolicy == corev1.RestartPolicyNever,
		"fsGroup":                      *pod.Spec.SecurityContext.FSGroup == DefaultUID,
		"runAsGroup":                   *pod.Spec.SecurityContext.RunAsGroup == DefaultUID,
		"read-only root (restrictive)": *c.SecurityContext.ReadOnlyRootFilesystem,
		"limits = requests":            c.Resources.Limits.Memory().Equal(*c.Resources.Requests.Memory()),
		"ephemeral limit":              !c.Resources.Limits.StorageEphemeral().IsZero(),
		"no PSA marker on pod":         pod.Labels["pod-security.kubernetes.io/enforce"] == "",
		"short grace period":           *pod.Spec.TerminationGracePeriodSeconds == GracePeriodSeconds,
		"PID 1 traps TERM":             strings.Contains(c.Command[2], "trap 'exit 0' TERM"),
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s: not so in %+v", what, pod.Spec)
		}
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	for _, p := range []string{WorkspaceDir, TmpDir, HomeDir} {
		if !mounts[p] {
			t.Errorf("no writable volume at %s", p)
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil {
			t.Errorf("volume %s is not a size-limited emptyDir", v.Name)
		}
	}
}

func TestSecretHoldsValuesOnlyInData(t *testing.T) {
	s := NewSpec("demo", "ns")
	if s.Secret(nil) != nil {
		t.Fatal("no secret env, no Secret")
	}
	s.SecretEnvNames = []string{"API_KEY"}
	sec := s.Secret(map[string]string{"API_KEY": "sk-very-secret"})
	if string(sec.Data["API_KEY"]) != "sk-very-secret" || sec.Name != "agentkernel-demo-env" {
		t.Fatalf("secret: %+v", sec)
	}
	pod := s.Pod()
	if strings.Contains(pod.String(), "sk-very-secret") {
		t.Fatal("secret value leaked into the pod spec")
	}
	if pod.Spec.Containers[0].EnvFrom[0].SecretRef.Name != sec.Name {
		t.Fatal("pod does not take its env from the secret")
	}
	red := Redacted(sec)
	if strings.Contains(red.String(), "sk-very-secret") || red.StringData["API_KEY"] != "<redacted>" {
		t.Fatalf("redacted secret: %+v", red)
	}
}

func TestSpecValidate(t *testing.T) {
	cases := map[string]struct {
		mutate func(*Spec)
		want   string
	}{
		"bad name":        {func(s *Spec) { s.Name = "Demo" }, "invalid sandbox name"},
		"bad namespace":   {func(s *Spec) { s.Namespace = "a_b" }, "invalid namespace"},
		"root":            {func(s *Spec) { s.UID = 0 }, "never run as root"},
		"zero cpu":        {func(s *Spec) { s.CPU = resource.MustParse("0") }, "cpu must be greater than zero"},
		"empty image":     {func(s *Spec) { s.Image = " " }, "image must not be empty"},
		"bad profile":     {func(s *Spec) { s.Profile = "yolo" }, "unknown profile"},
		"bad network":     {func(s *Spec) { s.Network = "some" }, "unknown network"},
		"reserved label":  {func(s *Spec) { s.Labels = map[string]string{"agentkernel/sandbox": "x"} }, "reserved"},
		"bad label value": {func(s *Spec) { s.Labels = map[string]string{"a": "b c"} }, "invalid labels value"},
		"bad env name":    {func(s *Spec) { s.Env = []corev1.EnvVar{{Name: "1X"}} }, "invalid environment variable name"},
		"env and secret":  {func(s *Spec) { s.Env = []corev1.EnvVar{{Name: "K"}}; s.SecretEnvNames = []string{"K"} }, "both as env and as secretEnvNames"},
		"duplicate port": {func(s *Spec) {
			s.Ports = []corev1.ContainerPort{{ContainerPort: 1, Protocol: "TCP"}, {ContainerPort: 1, Protocol: "TCP"}}
		}, "given twice"},
		"bad runtime":         {func(s *Spec) { s.RuntimeClassName = "Bad Class" }, "invalid runtimeClassName"},
		"bad selector key":    {func(s *Spec) { s.NodeSelector = map[string]string{"-x": "y"} }, "invalid nodeSelector key"},
		"blank install":       {func(s *Spec) { s.WarmInstall = " \n" }, "the warm install step is blank"},
		"install and main":    {func(s *Spec) { s.WarmInstall = "true"; s.Command = []string{"agent"} }, "a sandbox with a main process (command) installs over exec"},
		"install and secrets": {func(s *Spec) { s.WarmInstall = "true"; s.SecretEnvNames = []string{"KEY"} }, "a warm install runs with no credentials"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := NewSpec("demo", "ns")
			tc.mutate(&s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	ok := []string{"a", "demo", "my-agent-1", strings.Repeat("a", MaxNameLength)}
	bad := []string{"", "Demo", "-a", "a-", "a_b", "a.b", strings.Repeat("a", MaxNameLength+1), "ü"}
	for _, n := range ok {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateName(n); err == nil {
			t.Errorf("ValidateName(%q) accepted", n)
		}
	}
	if len(PodName(strings.Repeat("a", MaxNameLength))) != 63 {
		t.Fatal("the longest name must make a 63-character pod name")
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"demo", "", "A", strings.Repeat("z", 60), "a--b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		// Anything accepted must make valid object names and label values.
		s := NewSpec(name, "ns")
		if err := s.Validate(); err != nil {
			t.Fatalf("name %q passed ValidateName but not Spec.Validate: %v", name, err)
		}
		if len(PodName(name)) > 63 {
			t.Fatalf("pod name too long for %q", name)
		}
	})
}
