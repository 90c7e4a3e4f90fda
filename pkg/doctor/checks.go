package doctor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/version"

	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// minVersion: scheduling gates, which keep a sandbox from running before
// its NetworkPolicy exists, are on by default from Kubernetes 1.27 (GA in
// 1.30). An older API server drops the gate, and the Pod could start unfenced.
var minVersion = sandbox.MinServerVersion

func checkAPIServer(ctx context.Context, env *Env) []Result {
	type answer struct {
		v   *version.Info
		err error
	}
	done := make(chan answer, 1)
	go func() {
		v, err := env.Clientset.Discovery().ServerVersion()
		done <- answer{v, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = context.Cause(ctx)
	case <-time.After(30 * time.Second):
		a.err = fmt.Errorf("no answer within 30s")
	}
	if a.err != nil {
		return []Result{fail(fmt.Sprintf("cannot reach the API server at %s: %v", env.Server, a.err),
			"check that the cluster is up and that --context/--kubeconfig point at it (kubectl cluster-info)")}
	}
	found := fmt.Sprintf("%s answers: Kubernetes %s", env.Server, a.v.GitVersion)
	if v, err := utilversion.ParseGeneric(a.v.GitVersion); err == nil && v.LessThan(minVersion) {
		return []Result{fail(found+"; older than 1.27, it has no Pod scheduling gates, so a sandbox could run before its NetworkPolicy exists",
			"use a cluster of Kubernetes 1.27 or later")}
	}
	return []Result{ok("%s", found)}
}

func checkIdentity(ctx context.Context, env *Env) []Result {
	r, err := env.Clientset.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || r == nil || r.Status.UserInfo.Username == "" {
		return []Result{warn(fmt.Sprintf("cannot tell who you are (SelfSubjectReview: %v)", err), "nothing to do; it needs Kubernetes 1.28 or later")}
	}
	env.user = r.Status.UserInfo.Username
	groups := r.Status.UserInfo.Groups
	if len(groups) > 6 {
		groups = append(groups[:6:6], fmt.Sprintf("and %d more", len(r.Status.UserInfo.Groups)-6))
	}
	return []Result{ok("you are %s (groups: %s)", env.user, strings.Join(groups, ", "))}
}

const (
	labelEnforce        = "pod-security.kubernetes.io/enforce"
	labelEnforceVersion = "pod-security.kubernetes.io/enforce-version"
)

func checkNamespace(ctx context.Context, env *Env) []Result {
	ns, err := env.Clientset.CoreV1().Namespaces().Get(ctx, env.Namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return []Result{fail(fmt.Sprintf("namespace %q does not exist", env.Namespace),
			fmt.Sprintf("create it (kubectl create namespace %s), or let create make it: kubectl agentkernel create NAME -n %s --create-namespace", env.Namespace, env.Namespace))}
	case err != nil:
		return []Result{warn(fmt.Sprintf("cannot read namespace %q: %v", env.Namespace, err), env.rbacHint())}
	}
	level, ver := ns.Labels[labelEnforce], ns.Labels[labelEnforceVersion]
	if ver == "" {
		ver = "latest"
	}
	label := fmt.Sprintf("kubectl label namespace %s %s=restricted --overwrite", env.Namespace, labelEnforce)
	switch level {
	case "restricted":
		return []Result{ok("namespace %q: Pod Security enforces restricted (version %s)", env.Namespace, ver)}
	case "":
		return []Result{warn(fmt.Sprintf("namespace %q has no %s label: the cluster's default level applies (usually privileged), so other Pods here need not be hardened (sandboxes are, either way)", env.Namespace, labelEnforce), label)}
	}
	return []Result{warn(fmt.Sprintf("namespace %q: Pod Security enforces %s (version %s), not restricted: other Pods here may be less hardened than sandboxes", env.Namespace, level, ver), label)}
}

// checkPermissions asks the API server, for each permission the plugin
// uses, whether this user has it: one line per resource.
func checkPermissions(ctx context.Context, env *Env) []Result {
	perms := rbac.Permissions
	allowed := make([]bool, len(perms))
	errs := make([]error, len(perms))
	var wg sync.WaitGroup
	for i, p := range perms {
		wg.Go(func() { allowed[i], errs[i] = env.canI(ctx, p) })
	}
	wg.Wait()

	type group struct {
		scope         rbac.Scope
		resource      string
		has, lacks    []string
		why, problems []string
	}
	var groups []*group
	byKey := map[string]*group{}
	for i, p := range perms {
		key := string(p.Scope) + " " + p.GroupResource()
		g := byKey[key]
		if g == nil {
			g = &group{scope: p.Scope, resource: p.GroupResource()}
			byKey[key] = g
			groups = append(groups, g)
		}
		switch {
		case errs[i] != nil:
			g.problems = append(g.problems, fmt.Sprintf("%s: %v", p.Verb, errs[i]))
		case allowed[i]:
			g.has = append(g.has, p.Verb)
		default:
			g.lacks = append(g.lacks, p.Verb)
			g.why = append(g.why, p.Why)
		}
	}
	var out []Result
	for _, g := range groups {
		where := fmt.Sprintf("in namespace %q", env.Namespace)
		switch g.scope {
		case rbac.Cluster:
			where = "in every namespace"
		case rbac.ClusterDNS:
			where = "in namespace " + rbac.DNSNamespace
		}
		switch {
		case len(g.problems) > 0:
			out = append(out, warn(fmt.Sprintf("%s %s: cannot check: %s", g.resource, where, strings.Join(g.problems, "; ")), "run doctor again; if it persists, check with: kubectl auth can-i --list -n "+env.Namespace))
		case len(g.lacks) == 0:
			out = append(out, ok("may %s %s %s", strings.Join(g.has, ", "), g.resource, where))
		case g.scope == "" || g.scope == rbac.Namespace:
			out = append(out, fail(fmt.Sprintf("may not %s %s %s (needed for: %s)", strings.Join(g.lacks, ", "), g.resource, where, strings.Join(g.why, "; ")), env.rbacHint()))
		default:
			out = append(out, warn(fmt.Sprintf("may not %s %s %s (optional, for: %s)", strings.Join(g.lacks, ", "), g.resource, where, strings.Join(g.why, "; ")),
				env.rbacHint()+" (with --all-namespaces for the cluster-wide part)"))
		}
	}
	return out
}

// canI asks a SelfSubjectAccessReview; a permission on named objects only
// counts when every one of them is allowed.
func (e *Env) canI(ctx context.Context, p rbac.Permission) (bool, error) {
	resource, sub, _ := strings.Cut(p.Resource, "/")
	attrs := authorizationv1.ResourceAttributes{Verb: p.Verb, Group: p.Group, Resource: resource, Subresource: sub}
	switch p.Scope {
	case rbac.Cluster:
	case rbac.ClusterDNS:
		attrs.Namespace = rbac.DNSNamespace
	default:
		attrs.Namespace = e.Namespace
	}
	names := p.ResourceNames
	if p.Resource == "namespaces" {
		names = []string{e.Namespace} // a Role grants its own namespace only
	}
	if len(names) == 0 {
		names = []string{""}
	}
	for _, name := range names {
		a := attrs
		a.Name = name
		r, err := e.Clientset.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &a},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		if !r.Status.Allowed {
			return false, nil
		}
	}
	return true, nil
}

// defaultSandbox is what create makes without flags.
