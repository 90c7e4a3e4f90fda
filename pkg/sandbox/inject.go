package sandbox

import (
	"fmt"
	"net"
	"net/url"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// A sandbox with Spec.Inject never holds those model keys: its variables
// hold keys.Placeholder, its agent's base URLs point at the namespace's
// egress proxy, and the proxy adds the key (from the key table, see
// keytable.go) to what the sandbox sends there, while the Pod lives and
// carries the entry's grant (keys.GrantAnnotation).

// validateInject checks the injections against the rest of the spec: they
// need the proxy route (AllowHosts) with their hosts in it, and a variable
// is injected, plain or secret, never two of these.
func (s *Spec) validateInject() error {
	if len(s.Inject) == 0 {
		return nil
	}
	if len(s.AllowHosts) == 0 {
		return field.Invalid("inject", "`inject` sends the model keys' requests through the namespace's egress proxy, which a sandbox reaches only with `allowHosts`: add the API's host to `allowHosts`")
	}
	seenHost := map[string]bool{}
	for _, in := range s.Inject {
		if err := in.Validate(); err != nil {
			return field.Invalid("inject", "%v", err)
		}
		if seenHost[in.Host] {
			return field.Invalid("inject", "two keys for %s: the proxy adds one key per host; pass one of them", in.Host)
		}
		seenHost[in.Host] = true
		if !slices.Contains(s.AllowHosts, in.Host+":443") {
			return field.Invalid("inject", "%s is injected for %s, which is not in `allowHosts`", in.Variable, in.Host)
		}
		if slices.Contains(s.SecretEnvNames, in.Variable) || slices.ContainsFunc(s.Env, func(e corev1.EnvVar) bool { return e.Name == in.Variable }) {
			return field.Invalid("inject", "%s is both injected and given as `env` or `secretEnvNames`; use one", in.Variable)
		}
	}
	return nil
}

// proxyHostPort is the proxy's address as the sandbox reaches it.
func (s *Spec) proxyHostPort() string {
	u, err := url.Parse(s.proxyURL())
	if err != nil {
		return ""
	}
	return u.Host
}

// injectEnv is what the sandbox sees of its injected keys: placeholders,
// and base URLs that are routes of the proxy.
func (s *Spec) injectEnv() []corev1.EnvVar {
	var env []corev1.EnvVar
	proxy := s.proxyHostPort()
	for _, in := range s.Inject {
		env = append(env, corev1.EnvVar{Name: in.Variable, Value: keys.Placeholder})
		for _, v := range in.BaseURLVariables {
			env = append(env, corev1.EnvVar{Name: v, Value: keys.BaseURL(proxy, in.Host)})
		}
	}
	return env
}

// noProxy is NO_PROXY: the sandbox itself, and, with injected keys, the
// proxy, so that clients send the base URLs' requests to it directly.
func (s *Spec) noProxy() string {
	if len(s.Inject) == 0 {
		return fence.NoProxy
	}
	host, _, err := net.SplitHostPort(s.proxyHostPort())
	if err != nil || host == "" {
		return fence.NoProxy
	}
	return fence.NoProxy + "," + host
}

// annotateKeyGrant marks the Pod with its entry's grant.
func (s *Spec) annotateKeyGrant(annotations map[string]string) {
	if s.KeyGrant != "" {
		annotations[keys.GrantAnnotation] = s.KeyGrant
	}
}

// KeyEntry is the entry of the sandbox's keys, values given by variable.
func (s *Spec) KeyEntry(values map[string]string) keys.Entry {
	e := keys.Entry{Grant: s.KeyGrant}
	for _, in := range s.Inject {
		e.Credentials = append(e.Credentials, keys.Credential{Injection: in, Key: values[in.Variable]})
	}
	return e
}

// newKeyEntry gives the spec a fresh grant and returns its entry, checking
// every key is given (a resumed sandbox's come from the caller's
// environment again).
func (s *Spec) newKeyEntry(values map[string]string) (keys.Entry, error) {
	if len(s.Inject) == 0 || s.Shape != nil {
		return keys.Entry{}, nil // a pool's warm member holds no keys: its claim brings them
	}
	return s.NewKeyEntry(values)
}

// NewKeyEntry gives the spec a fresh grant and returns its entry: what a
// claim of a warm member writes for it (pkg/pool).
func (s *Spec) NewKeyEntry(values map[string]string) (keys.Entry, error) {
	for _, in := range s.Inject {
		if values[in.Variable] == "" {
			return keys.Entry{}, fmt.Errorf("%s is not in your environment: export it first (the namespace's egress proxy adds it to the sandbox's requests to %s; it never enters the sandbox)", in.Variable, in.Host)
		}
	}
	s.KeyGrant = keys.NewGrant()
	return s.KeyEntry(values), nil
}

// lookupKeys reads the keys of inject with lookup (nil: none).
func lookupKeys(inject []keys.Injection, lookup func(string) (string, bool)) map[string]string {
	values := map[string]string{}
	for _, in := range inject {
		if lookup != nil {
			if v, ok := lookup(in.Variable); ok {
				values[in.Variable] = v
			}
		}
	}
	return values
}

// Injects reports whether variable is one of the spec's injected keys.
func (s *Spec) Injects(variable string) bool {
	return slices.ContainsFunc(s.Inject, func(in keys.Injection) bool { return in.Variable == variable })
}
