package mcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// CreateInput is what an agent may choose about a new sandbox.
type CreateInput struct {
	Name             string            `json:"name,omitempty" jsonschema:"name of the sandbox: lower-case letters, digits and '-'; leave out to get a generated one"`
	Image            string            `json:"image,omitempty" jsonschema:"container image; it needs /bin/sh (and tar for copy_in/copy_out of directories). Default: the server's"`
	Profile          string            `json:"profile,omitempty" jsonschema:"restrictive (no network, read-only root), moderate (egress to the internet only) or permissive (the namespace's networking); at most as open as the server's"`
	Network          string            `json:"network,omitempty" jsonschema:"none, egress or open, overriding the profile's; at most as open as the server's"`
	CPU              string            `json:"cpu,omitempty" jsonschema:"CPU request and limit, e.g. 500m; at most the server's"`
	Memory           string            `json:"memory,omitempty" jsonschema:"memory request and limit, e.g. 512Mi; at most the server's"`
	EphemeralStorage string            `json:"ephemeral_storage,omitempty" jsonschema:"ephemeral storage, also the size of each writable directory, e.g. 1Gi; at most the server's"`
	TTL              string            `json:"ttl,omitempty" jsonschema:"how long the sandbox may live, e.g. 30m; default and most: the server's"`
	Env              map[string]string `json:"env,omitempty" jsonschema:"environment variables of the sandbox; visible in its Pod spec, so never secrets"`
	Pool             string            `json:"pool,omitempty" jsonschema:"take a warm sandbox from this pool instead of making one (fast start; the pool fixes image and resources)"`
	Persist          bool              `json:"persist,omitempty" jsonschema:"keep /workspace and home on a persistent volume: the sandbox can be suspended and resumed, and its TTL suspends it rather than ending its work (only if the server allows it)"`
	WorkspaceSize    string            `json:"workspace_size,omitempty" jsonschema:"with persist: the size of the volume, e.g. 5Gi; default 10Gi or the server's most, whichever is less"`
	StorageClass     string            `json:"storage_class,omitempty" jsonschema:"with persist: the volume's StorageClass, one the server allows; default: the cluster's default class"`
	Retain           string            `json:"retain,omitempty" jsonschema:"with persist: how long a suspended sandbox's files are kept, e.g. 24h; default and most: the server's"`
}

// SandboxInfo describes a sandbox to an agent.
type SandboxInfo struct {
	Name             string `json:"name"`
	Namespace        string `json:"namespace"`
	Status           string `json:"status"`
	Usable           bool   `json:"usable" jsonschema:"whether the sandbox can run commands now"`
	Note             string `json:"note,omitempty" jsonschema:"why the sandbox cannot be used, if it cannot"`
	CreatedByServer  bool   `json:"created_by_this_server" jsonschema:"made in this session, and deleted when it ends (unless the server keeps them); otherwise adopted"`
	Image            string `json:"image,omitempty"`
	Profile          string `json:"profile,omitempty"`
	Network          string `json:"network,omitempty"`
	ReadOnlyRoot     bool   `json:"read_only_root"`
	CPU              string `json:"cpu,omitempty"`
	Memory           string `json:"memory,omitempty"`
	EphemeralStorage string `json:"ephemeral_storage,omitempty"`
	ExpiresAt        string `json:"expires_at,omitempty" jsonschema:"when the sandbox's TTL ends it (RFC 3339)"`
	Workspace        string `json:"workspace" jsonschema:"the writable directory relative paths start at"`
	Persistent       bool   `json:"persistent,omitempty" jsonschema:"its files are on a persistent volume: it can be suspended and resumed"`
	WorkspaceSize    string `json:"workspace_size,omitempty"`
	StorageClass     string `json:"storage_class,omitempty"`
	SuspendedSince   string `json:"suspended_since,omitempty" jsonschema:"when it was suspended (RFC 3339), if it is"`
	SuspendedWhy     string `json:"suspended_why,omitempty" jsonschema:"why: suspended, idle, ttl, or how its last Pod ended"`
}

func (s *Server) create(ctx context.Context, in CreateInput) (SandboxInfo, error) {
	name := in.Name
	if name == "" {
		name = sandbox.GeneratedName("mcp")
	}
	if err := sandbox.ValidateName(name); err != nil {
		return SandboxInfo{}, err
	}
	ttl := s.o.Spec.TTL
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil {
			return SandboxInfo{}, fmt.Errorf("invalid ttl %q: use a duration such as 30m or 2h", in.TTL)
		}
		if d < time.Second || d > s.o.Spec.TTL {
			return SandboxInfo{}, fmt.Errorf("ttl %s is out of range: from 1s to %s (the server's --ttl)", d, s.o.Spec.TTL)
		}
		ttl = d
	}
	var spec sandbox.Spec
	if in.Pool == "" {
		var err error
		if spec, err = s.specFor(name, ttl, in); err != nil {
			return SandboxInfo{}, err
		}
	} else if err := poolOnly(in); err != nil {
		return SandboxInfo{}, err
	}

	release, err := s.scope.reserve(name)
	if err != nil {
		return SandboxInfo{}, err
	}
	defer release()
	var pod *corev1.Pod
	if in.Pool != "" {
		if s.o.Pools == nil {
			return SandboxInfo{}, fmt.Errorf("this server cannot take sandboxes from pools (pool %q); create one without pool", in.Pool)
		}
		if pod, err = s.o.Pools.Claim(ctx, in.Pool, name, ttl); err != nil {
			return SandboxInfo{}, err
		}
	} else {
		created, err := sandbox.Create(ctx, s.o.Clientset, &spec, sandbox.CreateOptions{
			SecretValues: s.o.SecretValues,
			Wait:         true,
			Timeout:      s.o.StartTimeout,
		})
		if err != nil {
			return SandboxInfo{}, err
		}
		pod = created.Pod
	}
	t, err := s.scope.add(pod, true)
	if err != nil {
		// The server began to stop while the sandbox was being made.
		cctx, cancel := sandbox.CleanupContext(ctx)
		defer cancel()
		derr := sandbox.DeletePod(cctx, s.o.Clientset, pod, nil)
		if t := (target{name: name, workspace: workspaceOf(pod)}); t.workspace != "" {
			derr = errors.Join(derr, s.removeWorkspace(cctx, t))
		}
		return SandboxInfo{}, errors.Join(err, derr)
	}
	s.log.Info("created sandbox", "sandbox", name, "image", imageOf(pod), "network", pod.Annotations[sandbox.AnnotationNetwork], "ttl", ttl.String(), "persistent", t.workspace != "")
	return s.describe(ctx, t, "", true), nil
}

// poolOnly refuses choices that a pool's members have already made.
func poolOnly(in CreateInput) error {
	if in.Image != "" || in.Profile != "" || in.Network != "" || in.CPU != "" || in.Memory != "" || in.EphemeralStorage != "" || len(in.Env) > 0 {
		return fmt.Errorf("a sandbox from pool %q comes as the pool made it: leave out image, profile, network, cpu, memory, ephemeral_storage and env", in.Pool)
	}
	if in.Persist || in.WorkspaceSize != "" || in.StorageClass != "" || in.Retain != "" {
		return fmt.Errorf("this server takes no persistent sandboxes from pools (pool %q): leave out persist, workspace_size, storage_class and retain, or create one without pool", in.Pool)
	}
	return nil
}

// specFor is the server's sandbox with the agent's choices, none of which
// may open it wider or make it bigger than the server's own settings.
func (s *Server) specFor(name string, ttl time.Duration, in CreateInput) (sandbox.Spec, error) {
	base := s.o.Spec
	spec := base
	spec.Name = name
	spec.TTL = ttl
	spec.Env = slices.Clone(base.Env)
	if in.Image != "" {
		spec.Image = in.Image
		if base.ImagePullPolicy != corev1.PullAlways {
			spec.ImagePullPolicy = "" // the server's policy was for its image; Always holds for any
		}
	}
	if in.Profile != "" {
		p, err := sandbox.ParseProfile(in.Profile)
		if err != nil {
			return spec, err
		}
		spec.Profile = p
		spec.Network, spec.ReadOnlyRoot = p.Defaults()
	}
	if in.Network != "" {
		n, err := sandbox.ParseNetwork(in.Network)
		if err != nil {
			return spec, err
		}
		spec.Network = n
	}
	// A read-only root the server asked for stays read-only.
	spec.ReadOnlyRoot = spec.ReadOnlyRoot || base.ReadOnlyRoot
	w, err := s.workspaceFor(in)
	if err != nil {
		return spec, err
	}
	spec.Workspace = w
	for _, r := range []struct {
		field, value string
		dst          *resource.Quantity
		most         resource.Quantity
	}{
		{"cpu", in.CPU, &spec.CPU, base.CPU},
		{"memory", in.Memory, &spec.Memory, base.Memory},
		{"ephemeral_storage", in.EphemeralStorage, &spec.EphemeralStorage, base.EphemeralStorage},
	} {
		if r.value == "" {
			*r.dst = r.most.DeepCopy()
			continue
		}
		q, err := sandbox.ParseQuantity(r.field, r.value)
		if err != nil {
			return spec, err
		}
		*r.dst = q
	}
	// One check for a sandbox of the agent's and a pool's (admitPool).
	if errs := sandbox.Within(&base, &spec); len(errs) > 0 {
		return spec, createBeyond(errs[0])
	}
	keys := make([]string, 0, len(in.Env))
	for k := range in.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(base.SecretEnvNames, k) {
			return spec, fmt.Errorf("env %s is set by the server from a secret; leave it out", k)
		}
		spec.Env = slices.DeleteFunc(spec.Env, func(e corev1.EnvVar) bool { return e.Name == k })
		spec.Env = append(spec.Env, corev1.EnvVar{Name: k, Value: in.Env[k]})
	}
	if err := spec.Validate(); err != nil {
		return spec, err
	}
	return spec, nil
}

// createBeyond words a field of create_sandbox's sandbox beyond the
// server's, in the tool's argument names.
func createBeyond(e sandbox.FieldError) error {
	switch e.Field {
	case "network":
		return fmt.Errorf("network %q is more open than this server allows (%q, from its --profile/--network); ask its user to start it with a more open profile if you need it", e.Asked, e.Ceiling)
	case "cpu", "memory":
		return fmt.Errorf("%s %s is more than this server allows (%s)", e.Field, e.Asked, e.Ceiling)
	case "ephemeralStorage":
		return fmt.Errorf("ephemeral_storage %s is more than this server allows (%s)", e.Asked, e.Ceiling)
	}
	// Fields the agent cannot choose: the server's own settings disagree.
	return fmt.Errorf("this server's settings do not hold for the sandbox (%s); ask its user", poolBeyond(e))
}

func imageOf(pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		if c.Name == sandbox.ContainerName {
			return c.Image
		}
	}
	return ""
}

// info describes a sandbox from its Pod; gone says why it cannot be used.
func info(t target, gone string, created bool) SandboxInfo {
	pod := t.pod
	out := SandboxInfo{
		Name:            t.name,
		Namespace:       pod.Namespace,
		Status:          sandbox.Status(pod),
		Usable:          gone == "" && pod.Status.Phase == corev1.PodRunning,
		Note:            gone,
		CreatedByServer: created,
		Image:           imageOf(pod),
		Profile:         pod.Annotations[sandbox.AnnotationProfile],
		Network:         pod.Annotations[sandbox.AnnotationNetwork],
		ExpiresAt:       expiresAt(pod),
		Workspace:       sandbox.WorkspaceDir,
	}
	for _, c := range pod.Spec.Containers {
		if c.Name != sandbox.ContainerName {
			continue
		}
		if c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil {
			out.ReadOnlyRoot = *c.SecurityContext.ReadOnlyRootFilesystem
		}
		lim := c.Resources.Limits
		out.CPU, out.Memory, out.EphemeralStorage = quantity(lim, corev1.ResourceCPU), quantity(lim, corev1.ResourceMemory), quantity(lim, corev1.ResourceEphemeralStorage)
	}
	return out
}

func quantity(l corev1.ResourceList, name corev1.ResourceName) string {
	if q, ok := l[name]; ok {
		return q.String()
	}
	return ""
}

// ListInput takes no arguments.
type ListInput struct{}

// ListOutput is every sandbox in scope.
type ListOutput struct {
	Sandboxes    []SandboxInfo `json:"sandboxes"`
	MaxSandboxes int           `json:"max_sandboxes" jsonschema:"how many sandboxes this server may keep at once"`
}

func (s *Server) list(ctx context.Context, _ ListInput) (ListOutput, error) {
	out := ListOutput{Sandboxes: []SandboxInfo{}, MaxSandboxes: s.o.MaxSandboxes}
	seen := map[string]bool{}
	for _, e := range s.scope.snapshot() {
		if e.removed {
			continue // deleted: no longer a sandbox to list
		}
		out.Sandboxes = append(out.Sandboxes, s.describe(ctx, e.target, e.gone, e.created))
		seen[e.name] = true
	}
	// Adoptable sandboxes not used yet.
	var candidates []corev1.Pod
	if s.scope.selector != nil {
		pods, err := sandbox.List(ctx, s.o.Clientset, s.o.Namespace, s.o.AdoptSelector)
		if err != nil {
			return out, err
		}
		candidates = pods
	}
	for _, name := range s.o.Adopt {
		if seen[name] {
			continue
		}
		pod, err := sandbox.Find(ctx, s.o.Clientset, s.o.Namespace, name)
		var nf *sandbox.NotFoundError
		if errors.As(err, &nf) {
			if info, ok := s.suspendedCandidate(ctx, name); ok {
				seen[name] = true
				out.Sandboxes = append(out.Sandboxes, info)
			}
			continue
		}
		if err != nil {
			return out, err
		}
		candidates = append(candidates, *pod)
	}
	for i := range candidates {
		pod := &candidates[i]
		name := sandbox.NameOf(pod)
		if seen[name] {
			continue
		}
		seen[name] = true
		out.Sandboxes = append(out.Sandboxes, info(target{name: name, pod: pod}, unusable(pod), false))
	}
	sort.Slice(out.Sandboxes, func(i, j int) bool { return out.Sandboxes[i].Name < out.Sandboxes[j].Name })
	return out, nil
}

// DeleteInput names the sandbox to delete.
type DeleteInput struct {
	Sandbox string `json:"sandbox" jsonschema:"name of the sandbox"`
	Wait    *bool  `json:"wait,omitempty" jsonschema:"wait until it is gone (default true), so its name can be used again at once"`
}

// DeleteOutput confirms a deletion.
type DeleteOutput struct {
	Deleted string `json:"deleted"`
	Gone    bool   `json:"gone" jsonschema:"whether it is gone already (false when not waited for)"`
}

func (s *Server) delete(ctx context.Context, in DeleteInput) (DeleteOutput, error) {
	t, err := s.scope.get(ctx, in.Sandbox)
	if err != nil {
		return DeleteOutput{}, err
	}
	wait := time.Duration(0)
	if in.Wait == nil || *in.Wait {
		wait = deleteWait
	}
	if err := s.remove(ctx, t, wait); err != nil {
		return DeleteOutput{}, err
	}
	return DeleteOutput{Deleted: t.name, Gone: wait > 0}, nil
}
