package pool

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// What a claim gets from a pool's definition, and when a claim does not
// match the pool it asks for.

// claimedSpec is the sandbox a claim of a pool defined by def gets: the
// pool's shape, with the claim's name and PerClaimFields. A claim that
// insists (match) on a field the pool has otherwise is refused.
func claimedSpec(pool string, def, claim *sandbox.Spec, match []string) (*sandbox.Spec, error) {
	if err := samePersistence(pool, def, claim); err != nil {
		return nil, err
	}
	var diffs, fields []string
	for _, f := range match {
		if d := differs(f, def, claim); d != "" {
			diffs = append(diffs, d)
			fields = append(fields, f)
		}
	}
	if len(diffs) > 0 {
		// A field.Error, so that each edge names the fields its own way.
		fe := field.Invalid(fields[0], "pool %q in namespace %q does not match this claim: %s; leave these out to take the pool's, or use a pool (or a cold create) that has them",
			pool, claim.Namespace, strings.Join(diffs, "; "))
		if slices.Contains(fields, "agent") && claim.Agent != "" {
			fe.Step = field.Step{Hint: field.HintPoolForAgent, Value: claim.Agent}
		}
		return nil, fe
	}
	s := def.Clone()
	s.Shape = nil
	// A claimed member's install ran when it warmed up (its Pod says so:
	// sandbox.WarmInstalled); a sandbox made cold for the claim has the
	// claim's credentials, and installs over exec once it is ready.
	s.WarmInstall = ""
	s.Name, s.Namespace = claim.Name, claim.Namespace
	for _, e := range claim.Env {
		s.Env = sandbox.SetEnv(s.Env, e)
	}
	// The keys the pool's members are made to have injected go to the
	// egress proxy's key table, not into the sandbox (claimMember).
	s.SecretEnvNames = slices.DeleteFunc(append([]string(nil), claim.SecretEnvNames...), s.Injects)
	if len(claim.Labels) > 0 && s.Labels == nil {
		s.Labels = map[string]string{}
	}
	for k, v := range claim.Labels {
		s.Labels[k] = v
	}
	if claim.TTL > 0 {
		s.TTL = claim.TTL
	}
	if claim.IdleTimeout > 0 {
		s.IdleTimeout = claim.IdleTimeout
	}
	if s.Workspace != nil && claim.Workspace != nil && claim.Workspace.Retain > 0 {
		s.Workspace.Retain = claim.Workspace.Retain
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// differs says how a claim's field differs from the pool's, or "".
func differs(field string, pool, claim *sandbox.Spec) string {
	var a, b any
	switch field {
	case "image":
		a, b = pool.Image, claim.Image
	case "imagePullPolicy":
		a, b = pool.ImagePullPolicy, claim.ImagePullPolicy
	case "cpu":
		if pool.CPU.Cmp(claim.CPU) == 0 {
			return ""
		}
		a, b = quantity(pool.CPU.String()), quantity(claim.CPU.String())
	case "memory":
		if pool.Memory.Cmp(claim.Memory) == 0 {
			return ""
		}
		a, b = quantity(pool.Memory.String()), quantity(claim.Memory.String())
	case "ephemeralStorage":
		if pool.EphemeralStorage.Cmp(claim.EphemeralStorage) == 0 {
			return ""
		}
		a, b = quantity(pool.EphemeralStorage.String()), quantity(claim.EphemeralStorage.String())
	case "profile":
		a, b = pool.Profile, claim.Profile
	case "network":
		// The same mode is not the same reach: a pool made with
		// allowEgress 10.0.0.0/8 is no network "egress" (public only).
		for _, e := range sandbox.Within(claim, pool) {
			if e.Field == "allowEgress" {
				return fmt.Sprintf("`network`: the pool's sandboxes may reach %s, beyond the claim's `network` %s (%s)", e.Asked, claim.Network, e.Ceiling)
			}
		}
		a, b = pool.Network, claim.Network
	case "readOnlyRoot":
		a, b = pool.ReadOnlyRoot, claim.ReadOnlyRoot
	case "runtimeClassName":
		a, b = pool.RuntimeClassName, claim.RuntimeClassName
	case "nodeSelector":
		if len(pool.NodeSelector) == 0 && len(claim.NodeSelector) == 0 {
			return ""
		}
		a, b = pool.NodeSelector, claim.NodeSelector
	case "serviceAccountName":
		a, b = pool.ServiceAccountName, claim.ServiceAccountName
	case "ports":
		if len(pool.Ports) == 0 && len(claim.Ports) == 0 {
			return ""
		}
		a, b = pool.Ports, claim.Ports
	case "uid":
		a, b = pool.UID, claim.UID
	case "agent":
		a, b = pool.Agent, claim.Agent
	case "acceptAdmissionChanges":
		a, b = pool.AcceptAdmissionChanges, claim.AcceptAdmissionChanges
	case "workspaceSize":
		if pool.Workspace == nil || claim.Workspace == nil || pool.Workspace.Size.Cmp(claim.Workspace.Size) == 0 {
			return "" // persistence itself: samePersistence
		}
		a, b = quantity(pool.Workspace.Size.String()), quantity(claim.Workspace.Size.String())
	case "storageClass":
		if pool.Workspace == nil || claim.Workspace == nil {
			return ""
		}
		a, b = pool.Workspace.StorageClass, claim.Workspace.StorageClass
	}
	if reflect.DeepEqual(a, b) {
		return ""
	}
	d := fmt.Sprintf("`%s`: the pool has %s, the claim asks for %s", field, show(a), show(b))
	if field == "agent" && claim.Agent != "" {
		d += "`step`" // the edge's words for HintPoolForAgent
	}
	return d
}

// quantity is shown unquoted.
type quantity string

func show(v any) string {
	switch v := v.(type) {
	case quantity:
		return string(v)
	case string:
		if v == "" {
			return "none"
		}
		return fmt.Sprintf("%q", v)
	case []corev1.ContainerPort:
		var ps []string
		for _, p := range v {
			ps = append(ps, fmt.Sprintf("%d/%s", p.ContainerPort, strings.ToLower(string(p.Protocol))))
		}
		return strings.Join(ps, ",")
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.String:
		return show(reflect.ValueOf(v).String())
	case reflect.Map:
		if reflect.ValueOf(v).Len() == 0 {
			return "none"
		}
	}
	return fmt.Sprint(v)
}

// ClaimedSpec is the sandbox a claim of pool p gets (see Acquire): what
// `create --pool --dry-run` shows.
func ClaimedSpec(p *Pool, claim *sandbox.Spec, match []string) (*sandbox.Spec, error) {
	return claimedSpec(p.Name, &p.Spec, claim, match)
}

// samePersistence refuses a claim whose persistence is not the pool's: a
// claim asking for a workspace must come from a pool whose members each
// have one, and a claim from such a pool must ask for it (it gets a
// sandbox that outlives its Pods, with storage to delete).
func samePersistence(pool string, def, claim *sandbox.Spec) error {
	switch {
	case claim.Workspace != nil && def.Workspace == nil:
		return field.Invalid("workspaceSize", "pool %q in namespace %q is not persistent: its sandboxes have no workspace; leave out `workspaceSize` to claim a disposable one, or claim from a pool created with `workspaceSize`, or create the persistent sandbox without a pool",
			pool, claim.Namespace)
	case claim.Workspace == nil && def.Workspace != nil:
		return field.Invalid("workspaceSize", "pool %q in namespace %q is persistent: each of its sandboxes keeps its work on a workspace of its own (%s), kept until the sandbox is deleted; claim with `workspaceSize` to take one, or use a pool without",
			pool, claim.Namespace, def.Workspace.Size.String())
	}
	return nil
}
