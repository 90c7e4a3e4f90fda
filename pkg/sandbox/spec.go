package sandbox

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// Profile bundles the network and root-filesystem defaults of a sandbox.
type Profile string

const (
	// ProfileRestrictive: no network at all and a read-only root filesystem.
	ProfileRestrictive Profile = "restrictive"
	// ProfileModerate: egress to the internet only, writable root.
	ProfileModerate Profile = "moderate"
	// ProfilePermissive: the namespace's normal networking, writable root.
	ProfilePermissive Profile = "permissive"
)

// Profiles lists the valid profiles, most locked-down first.
var Profiles = []Profile{ProfileRestrictive, ProfileModerate, ProfilePermissive}

// Network says what a sandbox may reach.
type Network string

const (
	// NetworkNone: a deny-all NetworkPolicy, created before the Pod.
	NetworkNone Network = "none"
	// NetworkEgress: no ingress; egress to public addresses and cluster DNS,
	// never to private ranges or the cloud metadata endpoint.
	NetworkEgress Network = "egress"
	// NetworkOpen: no NetworkPolicy of ours.
	NetworkOpen Network = "open"
)

// Networks lists the valid network modes.
var Networks = []Network{NetworkNone, NetworkEgress, NetworkOpen}

// Defaults returns the network and read-only-root setting a profile implies.
func (p Profile) Defaults() (Network, bool) {
	switch p {
	case ProfileModerate:
		return NetworkEgress, false
	case ProfilePermissive:
		return NetworkOpen, false
	default:
		return NetworkNone, true
	}
}

// ParseProfile turns a flag value into a Profile.
func ParseProfile(s string) (Profile, error) {
	for _, p := range Profiles {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown profile %q: use one of %s", s, joinQuoted(Profiles))
}

// ParseNetwork turns a flag value into a Network.
func ParseNetwork(s string) (Network, error) {
	for _, n := range Networks {
		if string(n) == s {
			return n, nil
		}
	}
	return "", fmt.Errorf("unknown network %q: use one of %s", s, joinQuoted(Networks))
}

func joinQuoted[T ~string](vals []T) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// Paths inside every sandbox. Each is a size-limited emptyDir, so a read-only
// root filesystem still leaves the agent somewhere to work.
const (
	WorkspaceDir = "/workspace"
	TmpDir       = "/tmp"
	HomeDir      = "/home/sandbox"
)

// Defaults for a new sandbox.
const (
	// DefaultImage is small, public and has sh and tar (cp needs both).
	DefaultImage = "docker.io/library/busybox:1.37.0"
	// DefaultUID is an unprivileged user that exists in no common image, so
	// nothing in the image is owned by it.
	DefaultUID int64 = 1000
	// GracePeriodSeconds is short: sandboxes are disposable and PID 1 exits
	// on SIGTERM at once.
	GracePeriodSeconds int64 = 10
)

var (
	DefaultCPU              = resource.MustParse("1")
	DefaultMemory           = resource.MustParse("1Gi")
	DefaultEphemeralStorage = resource.MustParse("2Gi")
)

// Spec is everything a user can choose about a sandbox.
type Spec struct {
	Name      string
	Namespace string

	Image           string
	ImagePullPolicy corev1.PullPolicy
	Profile         Profile
	Network         Network
	ReadOnlyRoot    bool

	CPU              resource.Quantity
	Memory           resource.Quantity
	EphemeralStorage resource.Quantity

	RuntimeClassName   string
	NodeSelector       map[string]string
	ServiceAccountName string
	Env                []corev1.EnvVar
	// SecretEnvNames are the names of environment variables whose values go
	// into the sandbox's Secret. The values themselves never enter the Spec.
	SecretEnvNames []string
	Labels         map[string]string
	Ports          []corev1.ContainerPort
	UID            int64
	// UIDChosen says the user chose UID; otherwise a namespace whose
	// platform assigns UIDs from a range (OpenShift) decides it (Fit).
	UIDChosen bool `json:",omitempty"`
	// GID, if set, is the group (runAsGroup, fsGroup) when it cannot be
	// UID: the namespace admits other groups than UIDs (Fit).
	GID int64 `json:",omitempty"`
	// TTL, if set, ends the sandbox that long after it started, enforced by
	// the kubelet (activeDeadlineSeconds) even if no client ever comes back.
	TTL time.Duration

	// AllowEgress, for an egress sandbox, replaces the public internet as
	// what it may reach (--allow-egress); DNS stays allowed.
	AllowEgress []fence.Destination
	// DNS is where an egress sandbox may send DNS queries; nil: the
	// cluster's, as DetectDNS finds it when the sandbox is created.
	DNS []fence.Destination
	// Agent names the agent preset the sandbox was made from, if any.
	Agent string
	// CreatedBy is the user the API server knows the creator as (Create
	// asks it); recorded, like the plugin's version, on every object.
	CreatedBy string
	// Command, if set, is the sandbox's main process (an agent) instead of
	// the idle loop: the sandbox ends when it does. See mainprocess.go.
	Command []string
	// Stdin keeps the main process's stdin open, for attach; TTY gives it
	// a terminal (and needs Stdin).
	Stdin, TTY bool
	// HoldCommand starts Command only once StartCommand has run in the
	// sandbox, so that files can be copied in (and the agent installed)
	// before it starts.
	HoldCommand bool
	// IdleTimeout, if set, makes the sandbox's PID 1 exit once no other
	// process has run in it for that long (see pid1.go).
	IdleTimeout time.Duration

	// Shape, when set, makes the Pod something other than a sandbox of its
	// own: a pool's warm member (see Shape). Never set by users, never
	// stored.
	Shape Shape `json:"-"`
	// AllowHosts, if set, are the only hosts the sandbox may reach: over
	// HTTP(S), through its namespace's egress proxy (egressproxy.go), in
	// canonical form (CanonicalAllowHosts). Network must be NetworkNone.
	AllowHosts []string
	// Inject are the model keys the egress proxy adds to the sandbox's
	// requests (inject.go): their values are CreateOptions.InjectValues,
	// never in the Spec, the Pod or the sandbox's Secret. Needs AllowHosts.
	Inject []keys.Injection `json:",omitempty"`
	// KeyGrant is the grant of the sandbox's entry in the key table, made
	// by Create (or a claim) and put on the Pod. Never stored.
	KeyGrant string `json:"-"`
	// EgressProxyURL is the proxy's address (ProxyURL), filled in once the
	// proxy's Service is known.
	EgressProxyURL string
	// Workspace, if set, makes the sandbox persistent: /workspace and $HOME
	// live on a PersistentVolumeClaim that outlives its Pods (workspace.go).
	Workspace *Workspace `json:",omitempty"`
	// WarmInstall, if set, is a shell script (an agent's install step) the
	// sandbox's PID 1 runs when it starts, before the sandbox is ready: a
	// pool member's, so that a claim gets the agent installed. Never with
	// SecretEnvNames or Command (warminstall.go).
	WarmInstall string `json:",omitempty"`
	// AcceptAdmissionChanges keeps a sandbox whose Pod the cluster's
	// admission changed in ways that weaken it (admission.go).
	AcceptAdmissionChanges bool `json:",omitempty"`

	// namespaceUnread is why FromNamespace could not read the namespace.
	namespaceUnread error
}

// NewSpec returns the spec of a default, restrictive sandbox.
func NewSpec(name, namespace string) Spec {
	network, readOnly := ProfileRestrictive.Defaults()
	return Spec{
		Name:             name,
		Namespace:        namespace,
		Image:            DefaultImage,
		Profile:          ProfileRestrictive,
		Network:          network,
		ReadOnlyRoot:     readOnly,
		CPU:              DefaultCPU.DeepCopy(),
		Memory:           DefaultMemory.DeepCopy(),
		EphemeralStorage: DefaultEphemeralStorage.DeepCopy(),
		UID:              DefaultUID,
	}
}

// Validate checks the spec without contacting a cluster.
func (s *Spec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Label(s.Namespace); len(errs) > 0 {
		return fmt.Errorf("invalid namespace %q: %s", s.Namespace, strings.Join(errs, "; "))
	}
	if strings.TrimSpace(s.Image) == "" {
		return field.Invalid("image", "`image` must not be empty")
	}
	if _, err := ParseProfile(string(s.Profile)); err != nil {
		return err
	}
	if _, err := ParseNetwork(string(s.Network)); err != nil {
		return err
	}
	if s.UID <= 0 {
		return field.Invalid("uid", "`uid` must be a positive UID (got %d): sandboxes never run as root", s.UID)
	}
	if s.GID < 0 {
		return field.Invalid("uid", "the group of `uid` must be a positive GID (got %d)", s.GID)
	}
	if s.TTL < 0 || (s.TTL > 0 && s.TTL < time.Second) {
		return field.Invalid("ttl", "`ttl` must be at least 1s (or 0 for no limit), not %s", s.TTL)
	}
	if err := validateIdleTimeout(s.IdleTimeout); err != nil {
		return err
	}
	for f, q := range map[string]resource.Quantity{"cpu": s.CPU, "memory": s.Memory, "ephemeralStorage": s.EphemeralStorage} {
		if q.Sign() <= 0 {
			return field.Invalid(f, "`%s` must be greater than zero (got %q)", f, q.String())
		}
	}
	if s.RuntimeClassName != "" {
		if errs := validation.IsDNS1123Subdomain(s.RuntimeClassName); len(errs) > 0 {
			return field.Invalid("runtimeClassName", "invalid `runtimeClassName` %q: %s", s.RuntimeClassName, strings.Join(errs, "; "))
		}
	}
	if s.ServiceAccountName != "" {
		if errs := validation.IsDNS1123Subdomain(s.ServiceAccountName); len(errs) > 0 {
			return field.Invalid("serviceAccountName", "invalid `serviceAccountName` %q: %s", s.ServiceAccountName, strings.Join(errs, "; "))
		}
	}
	for k, v := range s.NodeSelector {
		if err := fence.ValidateLabel("`nodeSelector`", k, v); err != nil {
			return field.Error{Field: "nodeSelector", Detail: err.Error()}
		}
	}
	for k, v := range s.Labels {
		if err := fence.ValidateLabel("`labels`", k, v); err != nil {
			return field.Error{Field: "labels", Detail: err.Error()}
		}
		if strings.HasPrefix(k, "agentkernel/") {
			return field.Invalid("labels", "`labels` %s: the agentkernel/ prefix is reserved for the plugin's own labels", k)
		}
	}
	seenEnv := map[string]bool{}
	for _, e := range s.Env {
		if err := ValidateEnvName(e.Name); err != nil {
			return err
		}
		seenEnv[e.Name] = true
	}
	for _, n := range s.SecretEnvNames {
		if err := ValidateEnvName(n); err != nil {
			return err
		}
		if seenEnv[n] {
			return field.Invalid("secretEnvNames", "%s is given both as `env` and as `secretEnvNames`; use one", n)
		}
	}
	if err := s.validateEgress(); err != nil {
		return err
	}
	if err := s.validateMain(); err != nil {
		return err
	}
	if err := s.validateAllowHosts(); err != nil {
		return err
	}
	if err := s.validateInject(); err != nil {
		return err
	}
	if err := s.validateWarmInstall(); err != nil {
		return err
	}
	if s.Workspace != nil {
		if err := s.Workspace.validate(); err != nil {
			return err
		}
	}
	seenPort := map[string]bool{}
	for _, p := range s.Ports {
		key := fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)
		if seenPort[key] {
			return field.Invalid("ports", "`ports` %s is given twice", strings.ToLower(key))
		}
		seenPort[key] = true
	}
	return nil
}

// ValidateEnvName checks an environment variable name.
func ValidateEnvName(name string) error {
	if errs := validation.IsEnvVarName(name); len(errs) > 0 || name == "" {
		return fmt.Errorf("invalid environment variable name %q: use letters, digits, '_', '-' or '.', not starting with a digit", name)
	}
	return nil
}

// SelectorLabels identify one sandbox's objects.
func (s *Spec) SelectorLabels() map[string]string {
	return map[string]string{
		LabelSandbox:   s.Name,
		LabelManagedBy: ManagedBy,
	}
}

func (s *Spec) objectMeta(name string) metav1.ObjectMeta {
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	for k, v := range s.SelectorLabels() {
		labels[k] = v
	}
	if s.Shape != nil {
		s.Shape.Labels(labels)
	}
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: s.Namespace,
		Labels:    labels,
		Annotations: s.provenance(map[string]string{
			AnnotationProfile: string(s.Profile),
			AnnotationNetwork: string(s.Network),
		}),
	}
}

// Pod returns the sandbox Pod. It passes Pod Security "restricted".
func (s *Spec) Pod() *corev1.Pod {
	meta := s.objectMeta(PodName(s.Name))
	if s.Shape == nil {
		meta.Labels[LabelPool] = PoolActive
	}
	s.annotateAllowHosts(meta.Annotations)
	s.annotateKeyGrant(meta.Annotations)

	resources := corev1.ResourceList{
		corev1.ResourceCPU:              s.CPU,
		corev1.ResourceMemory:           s.Memory,
		corev1.ResourceEphemeralStorage: s.EphemeralStorage,
	}
	env := []corev1.EnvVar{
		{Name: "HOME", Value: HomeDir},
		{Name: "TMPDIR", Value: TmpDir},
	}
	env = append(env, userEnv()...)
	env = append(env, s.egressProxyEnv()...)
	env = append(env, s.injectEnv()...)
	for _, e := range s.Env {
		env = SetEnv(env, e)
	}
	var envFrom []corev1.EnvFromSource
	if len(s.SecretEnvNames) > 0 {
		envFrom = []corev1.EnvFromSource{{
			SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: SecretName(s.Name)}},
		}}
	}
	ports := append([]corev1.ContainerPort(nil), s.Ports...)
	var nodeSelector map[string]string
	if len(s.NodeSelector) > 0 {
		nodeSelector = map[string]string{}
		for k, v := range s.NodeSelector {
			nodeSelector[k] = v
		}
	}
	var runtimeClass *string
	if s.RuntimeClassName != "" {
		runtimeClass = ptr.To(s.RuntimeClassName)
	}

	volumes, mounts := s.volumes()

	var deadline *int64
	if s.TTL > 0 {
		deadline = ptr.To(int64(math.Ceil(s.TTL.Seconds())))
		meta.Annotations[AnnotationTTL] = s.TTL.String()
	}
	if s.IdleTimeout > 0 {
		meta.Annotations[AnnotationIdleTimeout] = s.IdleTimeout.String()
	}

	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: meta,
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         deadline,
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			ServiceAccountName:            s.ServiceAccountName,
			TerminationGracePeriodSeconds: ptr.To(GracePeriodSeconds),
			RuntimeClassName:              runtimeClass,
			NodeSelector:                  nodeSelector,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To(s.UID),
				RunAsGroup:     ptr.To(s.gid()),
				FSGroup:        ptr.To(s.gid()),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            ContainerName,
				Image:           s.Image,
				ImagePullPolicy: s.ImagePullPolicy,
				Command:         s.containerCommand(),
				Stdin:           s.Stdin,
				TTY:             s.TTY,
				WorkingDir:      WorkspaceDir,
				Env:             env,
				EnvFrom:         envFrom,
				Ports:           ports,
				Resources:       corev1.ResourceRequirements{Requests: resources, Limits: resources.DeepCopy()},
				SecurityContext: &corev1.SecurityContext{
					Privileged:               ptr.To(false),
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(s.ReadOnlyRoot),
					RunAsNonRoot:             ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
				VolumeMounts:             mounts,
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				StartupProbe:             s.startupProbe(),
			}},
			Volumes: volumes,
		},
	}
	if s.Shape != nil {
		s.Shape.Pod(pod)
	}
	return pod
}

func emptyDir(name string, limit resource.Quantity) corev1.Volume {
	return corev1.Volume{
		Name:         name,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(limit.DeepCopy())}},
	}
}

// SetEnv sets e in env, replacing a variable of its name.
func SetEnv(env []corev1.EnvVar, e corev1.EnvVar) []corev1.EnvVar {
	for i := range env {
		if env[i].Name == e.Name {
			env[i] = e
			return env
		}
	}
	return append(env, e)
}

// Secret returns the Secret holding the sandbox's secret environment, or nil
// when there is none. Values come from the caller's environment, never from
// flags, so they appear in no argument list and no Pod spec.
func (s *Spec) Secret(values map[string]string) *corev1.Secret {
	if len(s.SecretEnvNames) == 0 {
		return nil
	}
	data := map[string][]byte{}
	for _, n := range s.SecretEnvNames {
		data[n] = []byte(values[n])
	}
	meta := s.objectMeta(SecretName(s.Name))
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta,
		Type:       corev1.SecretTypeOpaque,
		Immutable:  ptr.To(true),
		Data:       data,
	}
}

// Redacted returns a copy of a Secret safe to print: keys kept, values gone.
func Redacted(s *corev1.Secret) *corev1.Secret {
	c := s.DeepCopy()
	keys := make([]string, 0, len(c.Data))
	for k := range c.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	c.Data = nil
	c.StringData = map[string]string{}
	for _, k := range keys {
		c.StringData[k] = "<redacted>"
	}
	return c
}
