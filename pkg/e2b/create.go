package e2b

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/agentkernel/kubectl-agentkernel/pkg/agents"
	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	egresskeys "github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// DefaultTemplate is E2B's default template, the SDK's when none is named.
const DefaultTemplate = "base"

// maxEnvVars bounds a request's environment.
const maxEnvVars = 256

// CreateSandbox makes a sandbox from a template: E2B's default ("base": the
// server's own sandbox, or a claim from its --pool), the name of a warm
// pool in the namespace (a claim: instant when a member is ready), or an
// agent preset's name (its image, resources and network, within the
// server's). Every sandbox is one `create` would make, within the ceiling
// of serve's own sandbox flags.
func (s *Server) CreateSandbox(w http.ResponseWriter, r *http.Request) {
	var in api.NewSandbox
	if err := decode(r, &in); err != nil {
		s.writeError(w, err)
		return
	}
	out, err := s.create(r.Context(), in)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) create(ctx context.Context, in api.NewSandbox) (*api.Sandbox, error) {
	if err := unsupportedCreate(in); err != nil {
		return nil, err
	}
	ttl, err := s.timeout(in.Timeout)
	if err != nil {
		return nil, err
	}
	meta, err := checkMetadata(in.Metadata)
	if err != nil {
		return nil, err
	}
	template := in.TemplateID
	if template == "" {
		template = DefaultTemplate
	}
	release, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	name := sandbox.GeneratedName("e2b")
	// The Pod's deadline is the ceiling, serve's --ttl: the timeout asked
	// is its E2B end, which setTimeout and connect may move (timeout.go).
	ceiling := s.o.Spec.TTL
	if ceiling <= 0 {
		ceiling = ttl
	}
	spec, secrets, err := s.envSpec(name, ceiling, in.EnvVars)
	if err != nil {
		return nil, err
	}
	// No internet is narrower than any ceiling: always allowed, and it
	// holds over a preset's network; a pool's must already be none.
	noInternet := in.AllowInternetAccess != nil && !*in.AllowInternetAccess

	var pod *corev1.Pod
	switch poolName, preset, err := s.resolveTemplate(ctx, template); {
	case err != nil:
		return nil, err
	case poolName != "":
		pod, err = s.claim(ctx, poolName, &spec, secrets, noInternet)
		if err != nil {
			return nil, err
		}
	default:
		if preset != nil {
			if err := s.applyPreset(&spec, preset); err != nil {
				return nil, err
			}
		}
		if noInternet {
			spec.Network, spec.AllowHosts = sandbox.NetworkNone, nil
		}
		if errs := sandbox.Within(&s.o.Spec, &spec); len(errs) > 0 {
			return nil, errorf(http.StatusBadRequest, "template %q would make a sandbox beyond serve's limits: %s; start serve with wider sandbox flags, or use another template", template, errs[0].Error())
		}
		if err := spec.Validate(); err != nil {
			return nil, errorf(http.StatusBadRequest, "%v", err)
		}
		created, err := sandbox.Create(ctx, s.o.Clientset, &spec, sandbox.CreateOptions{
			SecretValues: secrets,
			Prepare:      s.o.Prepare,
			Wait:         true,
			Timeout:      s.o.StartTimeout,
		})
		if err != nil {
			return nil, err
		}
		pod = created.Pod
	}
	if pod, err = s.describeNew(ctx, pod, template, meta, s.within(pod, ttl)); err != nil {
		cctx, cancel := sandbox.CleanupContext(ctx)
		defer cancel()
		if _, derr := sandbox.Delete(cctx, s.o.Clientset, s.o.Namespace, name, nil); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	s.o.Log.Info("created sandbox", "sandbox", name, "template", template, "timeout", ttl.String())
	return s.sandboxOf(ctx, pod)
}

// unsupportedCreate refuses what serve cannot give a sandbox, each with
// what to do instead, rather than silently make something else.
func unsupportedCreate(in api.NewSandbox) error {
	switch {
	case in.AutoPause != nil && *in.AutoPause:
		return errorf(http.StatusBadRequest, "onTimeout 'pause' is not supported: serve's sandboxes end at their timeout (their files with them); leave out lifecycle.onTimeout")
	case in.AutoResume != nil && in.AutoResume.Enabled:
		return errorf(http.StatusBadRequest, "autoResume is not supported by serve; leave it out")
	case in.VolumeMounts != nil && len(*in.VolumeMounts) > 0:
		return errorf(http.StatusBadRequest, "volumeMounts are not supported by serve; copy files in with sandbox.files.write")
	case in.Mcp != nil && len(*in.Mcp) > 0:
		return errorf(http.StatusBadRequest, "mcp is not supported by serve; leave it out")
	case in.Network != nil && (in.Network.AllowOut != nil && len(*in.Network.AllowOut) > 0 ||
		in.Network.DenyOut != nil && len(*in.Network.DenyOut) > 0 ||
		in.Network.Rules != nil && len(*in.Network.Rules) > 0 || in.Network.EgressProxy != nil):
		return errorf(http.StatusBadRequest, "network allowOut, denyOut, rules and egressProxy are not supported by serve: its sandboxes' network is serve's --profile/--network/--allow-host; use allowInternetAccess: false for none")
	case in.Iam != nil && in.Iam.Tokens != nil && len(*in.Iam.Tokens) > 0:
		return errorf(http.StatusBadRequest, "iam tokens are not supported by serve; leave them out")
	}
	return nil
}

// timeout is the TTL of a sandbox asked for seconds (E2B's default: 300),
// at most serve's --ttl.
func (s *Server) timeout(seconds *int32) (time.Duration, error) {
	d := 300 * time.Second
	if seconds != nil {
		d = time.Duration(*seconds) * time.Second
	}
	most := s.o.Spec.TTL
	if d <= 0 {
		return 0, errorf(http.StatusBadRequest, "timeout must be a positive number of seconds, at most %d (serve's --ttl)", int64(most/time.Second))
	}
	if most > 0 && d > most {
		return 0, errorf(http.StatusBadRequest, "timeout %ds is more than serve allows: at most %d seconds (its --ttl %s)", int64(d/time.Second), int64(most/time.Second), most)
	}
	return d, nil
}

// envSpec is serve's sandbox called name with the request's environment:
// the names serve's --secret-env-var patterns match go into its Secret, the
// others into its Pod spec.
func (s *Server) envSpec(name string, ttl time.Duration, env *api.EnvVars) (sandbox.Spec, map[string]string, error) {
	base := s.o.Spec
	spec := base
	spec.Name, spec.Namespace, spec.TTL = name, s.o.Namespace, ttl
	spec.Labels = maps.Clone(base.Labels)
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[LabelServe] = "true"
	spec.Env = slices.Clone(base.Env)
	spec.SecretEnvNames = slices.Clone(base.SecretEnvNames)
	secrets := make(map[string]string, len(s.o.SecretValues))
	for k, v := range s.o.SecretValues {
		secrets[k] = v
	}
	if env == nil {
		return spec, secrets, nil
	}
	if len(*env) > maxEnvVars {
		return spec, nil, errorf(http.StatusBadRequest, "%d envVars are too many: at most %d", len(*env), maxEnvVars)
	}
	keys := make([]string, 0, len(*env))
	for k := range *env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := sandbox.ValidateEnvName(k); err != nil {
			return spec, nil, errorf(http.StatusBadRequest, "envVars: %v", err)
		}
		if slices.Contains(base.SecretEnvNames, k) {
			return spec, nil, errorf(http.StatusBadRequest, "envVars: %s is set by serve from a secret (its --secret-env); leave it out", k)
		}
		if slices.ContainsFunc(base.Inject, func(in egresskeys.Injection) bool { return in.Variable == k }) {
			return spec, nil, errorf(http.StatusBadRequest, "envVars: %s is a model key serve's egress proxy adds (its --inject); leave it out", k)
		}
		v := (*env)[k]
		spec.Env = slices.DeleteFunc(spec.Env, func(e corev1.EnvVar) bool { return e.Name == k })
		if s.secretEnv(k) {
			spec.SecretEnvNames = append(spec.SecretEnvNames, k)
			secrets[k] = v
			continue
		}
		spec.Env = append(spec.Env, corev1.EnvVar{Name: k, Value: v})
	}
	return spec, secrets, nil
}

func (s *Server) secretEnv(name string) bool {
	for _, p := range s.o.SecretEnvPatterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// resolveTemplate says what a templateID names: a warm pool (poolName), an
// agent preset, or serve's own sandbox (neither; "base", or its --pool).
func (s *Server) resolveTemplate(ctx context.Context, template string) (poolName string, preset *agents.Preset, err error) {
	if template == DefaultTemplate {
		return s.o.DefaultPool, nil, nil
	}
	if pool.ValidatePoolName(template) == nil {
		_, err := pool.GetPool(ctx, s.o.Clientset, s.o.Namespace, template)
		var missing *pool.PoolNotFoundError
		switch {
		case err == nil:
			return template, nil, nil
		case !errors.As(err, &missing):
			return "", nil, err
		}
	}
	if s.o.Agents != nil {
		if p, err := s.o.Agents.Get(template); err == nil {
			return "", p, nil
		}
	}
	var presets []string
	if s.o.Agents != nil {
		presets = s.o.Agents.Names()
	}
	return "", nil, errorf(http.StatusNotFound, "template %.80q not found: use %q (serve's own sandbox), the name of a warm pool in namespace %s (kubectl agentkernel pool list -n %s), or an agent preset (%s)",
		template, DefaultTemplate, s.o.Namespace, s.o.Namespace, strings.Join(presets, ", "))
}

// applyPreset gives spec a preset's image, resources, network and plain
// environment; Within then holds them to serve's ceiling. The preset's
// install step and command are `run --agent`'s: an E2B sandbox idles until
// the SDK runs something.
func (s *Server) applyPreset(spec *sandbox.Spec, p *agents.Preset) error {
	if p.Image != "" {
		spec.Image = p.Image
		if s.o.Spec.ImagePullPolicy != corev1.PullAlways {
			spec.ImagePullPolicy = ""
		}
	}
	for _, q := range []struct {
		field, value string
		dst          *resource.Quantity
	}{{"cpu", p.CPU, &spec.CPU}, {"memory", p.Memory, &spec.Memory}, {"ephemeralStorage", p.EphemeralStorage, &spec.EphemeralStorage}} {
		if q.value == "" {
			continue
		}
		v, err := sandbox.ParseQuantity(q.field, q.value)
		if err != nil {
			return err
		}
		*q.dst = v
	}
	if p.Profile != "" {
		pr, err := sandbox.ParseProfile(p.Profile)
		if err != nil {
			return err
		}
		spec.Profile = pr
		spec.Network, spec.ReadOnlyRoot = pr.Defaults()
	}
	if p.Network != "" {
		n, err := sandbox.ParseNetwork(p.Network)
		if err != nil {
			return err
		}
		spec.Network = n
	}
	if p.ReadOnly != nil {
		spec.ReadOnlyRoot = *p.ReadOnly
	}
	spec.ReadOnlyRoot = spec.ReadOnlyRoot || s.o.Spec.ReadOnlyRoot
	spec.Agent = p.Name
	keys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.ContainsFunc(spec.Env, func(e corev1.EnvVar) bool { return e.Name == k }) || slices.Contains(spec.SecretEnvNames, k) {
			continue // the request's or serve's own
		}
		spec.Env = append(spec.Env, corev1.EnvVar{Name: k, Value: p.Env[k]})
	}
	return nil
}

// claim takes a sandbox from a warm pool, as `create --pool` does, with
// the request's environment and timeout; a pool whose sandboxes are beyond
// serve's ceiling is refused before any member is taken.
func (s *Server) claim(ctx context.Context, poolName string, spec *sandbox.Spec, secrets map[string]string, noInternet bool) (*corev1.Pod, error) {
	a, err := pool.Acquire(ctx, s.o.Clientset, spec, pool.AcquireOptions{
		Pool: poolName,
		Exec: func(pod *corev1.Pod) *sandbox.PodExec {
			return sandbox.NewPodExec(s.o.Config, s.o.RESTClient, s.o.Executor, pod)
		},
		RefillInBackground: true,
		Admit: func(asked *sandbox.Spec) error {
			if noInternet && (asked.Network != sandbox.NetworkNone || len(asked.AllowHosts) > 0) {
				return errorf(http.StatusBadRequest, "pool %q makes sandboxes with network %s, and allowInternetAccess is false; use a pool of network none, or another template", poolName, asked.Network)
			}
			if errs := sandbox.Within(&s.o.Spec, asked); len(errs) > 0 {
				return errorf(http.StatusBadRequest, "pool %q makes sandboxes beyond serve's limits: %s; use a pool within them, or start serve with wider sandbox flags", poolName, errs[0].Error())
			}
			return nil
		},
		CreateOptions: sandbox.CreateOptions{SecretValues: secrets, Prepare: s.o.Prepare, Wait: true, Timeout: s.o.StartTimeout},
	})
	if err != nil {
		return nil, err
	}
	s.refills.Add(1)
	go func() {
		defer s.refills.Done()
		if err := a.WaitRefill(); err != nil {
			s.o.Log.Warn("refilling the pool", "pool", poolName, "error", err)
		}
	}()
	if !a.Warm {
		s.o.Log.Info("pool had no ready member: created cold from its definition", "pool", poolName, "why", a.Why)
	}
	return a.Pod, nil
}

// decode reads a JSON body (bounded by ServeHTTP) into v.
func decode(r *http.Request, v any) error {
	dec := jsonDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxBody)
		}
		return errorf(http.StatusBadRequest, "request body is not the JSON this operation takes: %v", err)
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return errorf(http.StatusBadRequest, "request body has more after its JSON object: send one object")
	}
	return nil
}

// LabelServe marks the sandboxes serve made: MaxSandboxes counts them.
const LabelServe = "e2b.agentkernel/serve"

// admit holds a create to MaxSandboxes, counting serve's running sandboxes
// and the creates under way; E2B answers 429 at its concurrency limit.
func (s *Server) admit(ctx context.Context) (release func(), err error) {
	if s.o.MaxSandboxes <= 0 {
		return func() {}, nil
	}
	s.admitting.Lock()
	defer s.admitting.Unlock()
	pods, err := sandbox.List(ctx, s.o.Clientset, s.o.Namespace, LabelServe+"=true")
	if err != nil {
		return nil, err
	}
	live := 0
	for i := range pods {
		if p := &pods[i]; p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			live++
		}
	}
	if live+s.creating >= s.o.MaxSandboxes {
		return nil, errorf(http.StatusTooManyRequests, "serve runs at most %d sandboxes at once (its --max-sandboxes), and has %d; kill one first", s.o.MaxSandboxes, live+s.creating)
	}
	s.creating++
	return func() {
		s.admitting.Lock()
		s.creating--
		s.admitting.Unlock()
	}, nil
}
