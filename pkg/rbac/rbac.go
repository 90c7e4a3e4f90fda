// Package rbac says what kubectl agentkernel may do in a cluster, as data:
// every API permission the plugin uses, where, and why. The `rbac` command
// renders it as Roles and bindings (deploy/rbac.yaml is that output),
// `doctor` checks each permission with a SelfSubjectAccessReview, and the
// e2e suite proves the Role is enough for every command and that each
// permission in it is needed by one.
//
// A new command that calls a new API adds a line to Permissions, and a row
// to the e2e table (test/e2e/rbac_test.go) that runs it.
package rbac

import (
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Scope is where a permission is granted.
type Scope string

const (
	// Namespace: in the sandboxes' namespace, by the Role "agentkernel".
	Namespace Scope = "namespace"
	// Cluster: everywhere, by the optional ClusterRole (list -A, RuntimeClasses).
	Cluster Scope = "cluster"
	// ClusterDNS: in kube-system, on the named Services only, by the Role
	// "agentkernel-dns-reader": create finds the cluster's DNS through them.
	ClusterDNS Scope = "cluster-dns"
)

// DNSNamespace is where ClusterDNS permissions are granted.
const DNSNamespace = "kube-system"

// Permission is one verb on one resource.
type Permission struct {
	Verb          string
	Group         string // "" is the core group
	Resource      string // with subresource: "pods/exec"
	ResourceNames []string
	Scope         Scope
	// Why says which commands use it and what for.
	Why string
}

// Permissions is everything the plugin asks the API server to do, beyond
// what every authenticated user may (SelfSubjectReview and
// SelfSubjectAccessReview, granted by system:basic-user).
var Permissions = []Permission{
	{Verb: "create", Resource: "pods", Why: "create, run, serve: the sandbox's Pod; pool create and claims: warm members; doctor: a server-side dry run of a default sandbox"},
	{Verb: "get", Resource: "pods", Why: "exec, cp, shell, attach, logs, port-forward, delete: find a sandbox by name; create: why a name is taken; gc: is an owner gone"},
	{Verb: "list", Resource: "pods", Why: "list; create: is the name held by a sandbox from a pool; pools: their members; gc; mcp: its sandboxes' states; serve: E2B's list"},
	{Verb: "watch", Resource: "pods", Why: "create, run, pool create and delete: wait until the sandbox runs, or is gone"},
	{Verb: "patch", Resource: "pods", Why: "create: lift the scheduling gate once the sandbox is fenced; create --pool: claim a warm member; serve: a sandbox's E2B metadata, and its timeout"},
	{Verb: "delete", Resource: "pods", Why: "delete, run, gc, serve (kill), pool scale and delete; create: undo a create that failed"},
	{Verb: "create", Resource: "pods/exec", Why: "exec, cp, shell, run, mcp, serve (envd): commands and file streams, through the API server (so audited); create --pool: deliver a claim's environment"},
	{Verb: "create", Resource: "pods/attach", Why: "attach: the main process of create --command or run --detach, through the API server (so audited)"},
	{Verb: "get", Resource: "pods/log", Why: "logs: the sandbox's output"},
	{Verb: "create", Resource: "pods/portforward", Why: "port-forward: a local port to the sandbox, through the API server"},
	{Verb: "create", Resource: "secrets", Why: "create --secret-env: the sandbox's secret environment"},
	{Verb: "get", Resource: "secrets", Why: "create: tell a previous sandbox's stale Secret from someone else's"},
	{Verb: "list", Resource: "secrets", Why: "gc: Secrets whose sandbox is gone (a list cannot be narrowed to the plugin's by RBAC: it reads the namespace's Secrets)"},
	{Verb: "delete", Resource: "secrets", Why: "create: replace a stale Secret; undo a create that failed; gc"},
	{Verb: "patch", Resource: "secrets", ResourceNames: []string{EgressKeyTableName},
		Why: "create and run with injected model keys (--allow-host with --agent, --inject): write the sandbox's entry in the egress proxy's key table; delete, gc: remove it"},
	{Verb: "get", Resource: "configmaps", ResourceNames: []string{EgressUsageName},
		Why: "usage, list -o wide: what each sandbox spent through the egress proxy, as the proxy publishes it"},
	{Verb: "create", Group: "networking.k8s.io", Resource: "networkpolicies", Why: "create: the sandbox's fence"},
	{Verb: "get", Group: "networking.k8s.io", Resource: "networkpolicies", Why: "create: tell a previous sandbox's stale NetworkPolicy from someone else's; create --allow-host, egress status: the egress proxy's fence"},
	{Verb: "list", Group: "networking.k8s.io", Resource: "networkpolicies", Why: "create and doctor: find other NetworkPolicies that widen the fence; gc"},
	{Verb: "delete", Group: "networking.k8s.io", Resource: "networkpolicies", Why: "create: replace a stale NetworkPolicy; undo a create that failed; gc"},
	{Verb: "create", Resource: "podtemplates", Why: "pool create: the pool's definition (a PodTemplate)"},
	{Verb: "get", Resource: "podtemplates", Why: "pool scale and delete; create --pool: refill the pool from its definition; gc: is a member's pool still there"},
	{Verb: "list", Resource: "podtemplates", Why: "pool list; doctor: the namespace's pools"},
	{Verb: "patch", Resource: "podtemplates", Why: "pool scale: the pool's size"},
	{Verb: "delete", Resource: "podtemplates", Why: "pool delete; pool create: undo a create that failed"},
	{Verb: "create", Resource: "persistentvolumeclaims", Why: "create --persist: the sandbox's workspace; pool create --persist and refills: each member's"},
	{Verb: "get", Resource: "persistentvolumeclaims", Why: "suspend, resume, delete and every command on a suspended sandbox: its workspace and record; create: is the name held by a suspended sandbox; create --pool: a persistent pool member's workspace, before it is trusted"},
	{Verb: "list", Resource: "persistentvolumeclaims", Why: "list: suspended sandboxes; gc: workspaces kept past their --retain; suspend, resume, delete: the workspace of a sandbox claimed from a persistent pool (found by label)"},
	{Verb: "patch", Resource: "persistentvolumeclaims", Why: "suspend, resume, gc: record on the workspace when and why its sandbox was suspended; create --pool --persist: make the member's workspace the sandbox's"},
	{Verb: "delete", Resource: "persistentvolumeclaims", Why: "delete, gc: a persistent sandbox's workspace; create: undo a create (or a claim from a persistent pool) that failed"},
	{Verb: "create", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshots", Why: "snapshot NAME: a CSI snapshot of a persistent sandbox's workspace"},
	{Verb: "get", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshots", Why: "create --from SNAPSHOT: the snapshot a workspace is restored from"},
	{Verb: "watch", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshots", Why: "snapshot NAME: wait until the snapshot is ready to use (a watch from the snapshot as made: no list)"},
	{Verb: "delete", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshots", Why: "snapshot NAME: remove a snapshot that failed or was not ready in time"},
	{Verb: "get", Resource: "services", ResourceNames: []string{EgressProxyName},
		Why: "create --allow-host, egress status: the namespace's egress proxy (an admin installs it: egress install)"},
	{Verb: "get", Group: "apps", Resource: "deployments", ResourceNames: []string{EgressProxyName},
		Why: "create --allow-host, egress status: is the egress proxy there"},
	{Verb: "get", Resource: "namespaces", Why: "doctor: the namespace's Pod Security labels; create, run, pool create: the UID range it assigns (OpenShift), without which sandboxes run as UID 1000 (a Role grants this for its own namespace only)"},
	{Verb: "list", Resource: "limitranges", Why: "doctor: limits that would refuse a sandbox"},
	{Verb: "list", Resource: "resourcequotas", Why: "doctor: quota left for sandboxes"},
	{Verb: "get", Resource: "services", Scope: ClusterDNS, ResourceNames: []string{"kube-dns", "node-local-dns", "kube-dns-upstream"},
		Why: "create --network egress: find the cluster's DNS (kube-dns, NodeLocal DNSCache) for the sandbox's DNS rule"},
	{Verb: "list", Resource: "pods", Scope: Cluster, Why: "list -A: sandboxes in every namespace"},
	{Verb: "list", Resource: "podtemplates", Scope: Cluster, Why: "pool list -A: pools in every namespace"},
	{Verb: "list", Group: "storage.k8s.io", Resource: "storageclasses", Why: "doctor: the default StorageClass a persistent sandbox's workspace comes from", Scope: Cluster},
	{Verb: "get", Group: "storage.k8s.io", Resource: "csidrivers", Why: "create --from NAME: whether the source workspace's driver is a CSI driver that can clone it (without it, the work is copied)", Scope: Cluster},
	{Verb: "list", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshotclasses", Why: "doctor: whether snapshot can take CSI snapshots (a default VolumeSnapshotClass for the workspace's driver)", Scope: Cluster},
	{Verb: "list", Group: "node.k8s.io", Resource: "runtimeclasses", Why: "doctor: which RuntimeClasses (gVisor, Kata) there are", Scope: Cluster},
}

// EgressAdmin is what `egress install` and `egress uninstall` need in the
// namespace beyond Permissions: they make the namespace's egress proxy,
// which has a ServiceAccount and a Role of its own. That is an admin's
// work, not a user's: the Role "agentkernel-egress-admin" is rendered only
// when asked for (rbac --egress-admin), and doctor does not ask for it.
// Objects that exist are reached by name only; a create cannot be narrowed
// by name in RBAC. The proxy's Role grants get, list and watch pods, which
// its creator must hold (RBAC's escalation check): the plugin's Role does.
var EgressAdmin = []Permission{
	{Verb: "create", Resource: "serviceaccounts", Why: "egress install: the proxy's ServiceAccount"},
	{Verb: "get", Resource: "serviceaccounts", ResourceNames: []string{EgressProxyName}, Why: "egress install and uninstall: is it there, and ours"},
	{Verb: "patch", Resource: "serviceaccounts", ResourceNames: []string{EgressProxyName}, Why: "egress install: update it"},
	{Verb: "delete", Resource: "serviceaccounts", ResourceNames: []string{EgressProxyName}, Why: "egress uninstall; a failed install undone"},
	{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "roles", Why: "egress install: the proxy may get, list and watch the namespace's Pods and PodTemplates"},
	{Verb: "watch", Resource: "podtemplates", Why: "egress install: the proxy's Role lets it watch pools' definitions (what a pool's unclaimed members may reach), and a Role grants only what its maker holds"},
	{Verb: "get", Group: "rbac.authorization.k8s.io", Resource: "roles", ResourceNames: []string{EgressProxyName}, Why: "egress install and uninstall"},
	{Verb: "patch", Group: "rbac.authorization.k8s.io", Resource: "roles", ResourceNames: []string{EgressProxyName}, Why: "egress install: update it"},
	{Verb: "delete", Group: "rbac.authorization.k8s.io", Resource: "roles", ResourceNames: []string{EgressProxyName}, Why: "egress uninstall; a failed install undone"},
	{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Why: "egress install: that Role, bound to the proxy's ServiceAccount"},
	{Verb: "get", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", ResourceNames: []string{EgressProxyName}, Why: "egress install and uninstall"},
	{Verb: "patch", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", ResourceNames: []string{EgressProxyName}, Why: "egress install: update it"},
	{Verb: "delete", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", ResourceNames: []string{EgressProxyName}, Why: "egress uninstall; a failed install undone"},
	{Verb: "create", Resource: "services", Why: "egress install: the proxy's Service"},
	{Verb: "get", Resource: "services", ResourceNames: []string{EgressProxyName}, Why: "egress install and uninstall"},
	{Verb: "patch", Resource: "services", ResourceNames: []string{EgressProxyName}, Why: "egress install: update it"},
	{Verb: "delete", Resource: "services", ResourceNames: []string{EgressProxyName}, Why: "egress uninstall; a failed install undone"},
	{Verb: "create", Group: "apps", Resource: "deployments", Why: "egress install: the proxy's Deployment"},
	{Verb: "get", Group: "apps", Resource: "deployments", ResourceNames: []string{EgressProxyName}, Why: "egress install and uninstall"},
	{Verb: "patch", Group: "apps", Resource: "deployments", ResourceNames: []string{EgressProxyName}, Why: "egress install: update it"},
	{Verb: "delete", Group: "apps", Resource: "deployments", ResourceNames: []string{EgressProxyName}, Why: "egress uninstall; a failed install undone"},
	{Verb: "create", Group: "networking.k8s.io", Resource: "networkpolicies", Why: "egress install: the proxy's fence"},
	{Verb: "get", Group: "networking.k8s.io", Resource: "networkpolicies", ResourceNames: []string{EgressProxyPolicyName}, Why: "egress install and uninstall"},
	{Verb: "patch", Group: "networking.k8s.io", Resource: "networkpolicies", ResourceNames: []string{EgressProxyPolicyName}, Why: "egress install: update it"},
	{Verb: "delete", Group: "networking.k8s.io", Resource: "networkpolicies", ResourceNames: []string{EgressProxyPolicyName}, Why: "egress uninstall (last, once the proxy's Pods are gone); a failed install undone"},
	{Verb: "list", Resource: "pods", Why: "egress uninstall: sandboxes still using the proxy; wait until the proxy's Pods are gone"},
	{Verb: "watch", Resource: "secrets", ResourceNames: []string{EgressKeyTableName}, Why: "egress install: the proxy's Role lets it watch the model-key table, that Secret alone (a Role grants only what its maker holds; create, get and delete secrets come with the plugin's Role)"},
	{Verb: "create", Resource: "configmaps", Why: "egress install: the ConfigMap the proxy publishes each sandbox's model-API usage to"},
	{Verb: "get", Resource: "configmaps", ResourceNames: []string{EgressUsageName}, Why: "egress install and uninstall: is it there, and ours; the proxy's Role lets it read it"},
	{Verb: "update", Resource: "configmaps", ResourceNames: []string{EgressUsageName}, Why: "egress install: the proxy's Role lets it update it (a Role grants only what its maker holds)"},
	{Verb: "patch", Resource: "configmaps", ResourceNames: []string{EgressUsageName}, Why: "egress install: the proxy's Role lets it patch it (a Role grants only what its maker holds)"},
	{Verb: "delete", Resource: "configmaps", ResourceNames: []string{EgressUsageName}, Why: "egress uninstall; a failed install undone"},
}

// EgressKeyTableName is the namespace's model-key table, the one Secret
// the egress proxy may read (keys.SecretName); EgressUsageName the
// ConfigMap it publishes usage to (keys.UsageConfigMapName).
const (
	EgressKeyTableName = "agentkernel-egress-keys"
	EgressUsageName    = "agentkernel-egress-usage"
)

// EgressProxyName is the name of the egress proxy's Service and Deployment
// (fence.ProxyName; this package imports no domain code).
const EgressProxyName = "agentkernel-egress"

// EgressProxyPolicyName is the name of the egress proxy's NetworkPolicy
// (fence.ProxyPolicyName).
const EgressProxyPolicyName = "agentkernel-egress.proxy"

// Of returns the permissions of one scope.
func Of(scope Scope) []Permission {
	var out []Permission
	for _, p := range Permissions {
		if p.Scope == scope || (scope == Namespace && p.Scope == "") {
			out = append(out, p)
		}
	}
	return out
}

// String is the permission as `kubectl auth can-i` takes it:
// "create pods/exec", "list networkpolicies.networking.k8s.io",
// "get services -n kube-system", "list pods -A".
func (p Permission) String() string {
	s := p.Verb + " " + p.GroupResource()
	switch p.Scope {
	case Cluster:
		s += " -A"
	case ClusterDNS:
		s += " -n " + DNSNamespace
	}
	return s
}

// names is " [only NAME, ...]" for a permission on named objects only.
func (p Permission) names() string {
	if len(p.ResourceNames) == 0 {
		return ""
	}
	return " [only " + strings.Join(p.ResourceNames, ", ") + "]"
}

// GroupResource is "pods", "pods/exec" or "networkpolicies.networking.k8s.io".
func (p Permission) GroupResource() string {
	res, sub, _ := strings.Cut(p.Resource, "/")
	if p.Group != "" {
		res += "." + p.Group
	}
	if sub != "" {
		res += "/" + sub
	}
	return res
}

// Find returns the permission spelled s (as String writes it).
func Find(s string) (Permission, bool) {
	for _, p := range Permissions {
		if p.String() == s {
			return p, true
		}
	}
	return Permission{}, false
}

// Names of what Objects renders.
const (
	RoleName        = "agentkernel"
	EgressAdminRole = "agentkernel-egress-admin"
	DNSRoleName     = "agentkernel-dns-reader"
	ClusterRoleName = "agentkernel-cluster-reader"
)

// Options choose what Objects renders.
type Options struct {
	Namespace string
	// Subject is bound to the roles; nil renders the roles alone.
	Subject *rbacv1.Subject
	// Cluster adds the optional ClusterRole (list -A, RuntimeClasses).
	Cluster bool
	// DNS adds the Role in kube-system that lets create find the cluster's DNS.
	DNS bool
	// EgressAdmin adds the Role in the namespace that egress install and
	// uninstall need (an admin's, not a user's).
	EgressAdmin bool
	// Without leaves permissions out (tests use it to prove each is needed).
	Without []string
}

// Objects renders the roles (and bindings, given a subject).
func Objects(o Options) []runtime.Object {
	var objs []runtime.Object
	add := func(perms []Permission, role metav1.ObjectMeta, kind string) {
		rules := rules(perms, o.Without)
		if len(rules) == 0 {
			return
		}
		if kind == "ClusterRole" {
			objs = append(objs, &rbacv1.ClusterRole{TypeMeta: typeMeta(kind), ObjectMeta: role, Rules: rules})
		} else {
			objs = append(objs, &rbacv1.Role{TypeMeta: typeMeta(kind), ObjectMeta: role, Rules: rules})
		}
		if o.Subject == nil {
			return
		}
		binding := metav1.ObjectMeta{Name: role.Name + ":" + subjectName(*o.Subject), Namespace: role.Namespace, Labels: role.Labels}
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role.Name}
		subjects := []rbacv1.Subject{*o.Subject}
		if kind == "ClusterRole" {
			objs = append(objs, &rbacv1.ClusterRoleBinding{TypeMeta: typeMeta("ClusterRoleBinding"), ObjectMeta: binding, RoleRef: ref, Subjects: subjects})
		} else {
			objs = append(objs, &rbacv1.RoleBinding{TypeMeta: typeMeta("RoleBinding"), ObjectMeta: binding, RoleRef: ref, Subjects: subjects})
		}
	}
	add(Of(Namespace), meta(RoleName, o.Namespace), "Role")
	if o.DNS {
		add(Of(ClusterDNS), meta(DNSRoleName, DNSNamespace), "Role")
	}
	if o.Cluster {
		add(Of(Cluster), meta(ClusterRoleName, ""), "ClusterRole")
	}
	if o.EgressAdmin {
		add(EgressAdmin, meta(EgressAdminRole, o.Namespace), "Role")
	}
	return objs
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
}

func meta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "kubectl-agentkernel"}}
}

// rules merges permissions into one rule per resource (and names), verbs in
// the order Permissions lists them.
func rules(perms []Permission, without []string) []rbacv1.PolicyRule {
	skip := map[string]bool{}
	for _, w := range without {
		skip[w] = true
	}
	var out []rbacv1.PolicyRule
	index := map[string]int{}
	for _, p := range perms {
		if skip[p.String()] {
			continue
		}
		key := p.Group + "/" + p.Resource + "/" + strings.Join(p.ResourceNames, ",")
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, rbacv1.PolicyRule{APIGroups: []string{p.Group}, Resources: []string{p.Resource}, ResourceNames: p.ResourceNames})
		}
		out[i].Verbs = append(out[i].Verbs, p.Verb)
	}
	return out
}

// subjectName makes a subject part of an object name (no '/' or '%').
func subjectName(s rbacv1.Subject) string {
	name := s.Name
	if s.Kind == rbacv1.ServiceAccountKind {
		name = s.Namespace + ":" + s.Name
	}
	name = strings.NewReplacer("/", "-", "%", "-").Replace(name)
	return strings.ToLower(s.Kind) + ":" + name
}

// Subject builds the subject of exactly one of user, group or service
// account ("NAMESPACE:NAME"); all empty gives nil.
func Subject(user, group, serviceAccount string) (*rbacv1.Subject, error) {
	given := 0
	for _, s := range []string{user, group, serviceAccount} {
		if s != "" {
			given++
		}
	}
	switch {
	case given == 0:
		return nil, nil
	case given > 1:
		return nil, fmt.Errorf("give one of --user, --group or --serviceaccount; to bind more, run the command once for each")
	case user != "":
		return &rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}, nil
	case group != "":
		return &rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: group}, nil
	}
	ns, name, ok := strings.Cut(serviceAccount, ":")
	if !ok || ns == "" || name == "" || strings.Contains(name, ":") {
		return nil, fmt.Errorf("--serviceaccount %q: expected NAMESPACE:NAME, e.g. agents:ci", serviceAccount)
	}
	return &rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}, nil
}

// Command is the command line that renders these options.
func (o Options) Command() string {
	args := []string{"kubectl agentkernel rbac -n", o.Namespace}
	if s := o.Subject; s != nil {
		switch s.Kind {
		case rbacv1.UserKind:
			args = append(args, "--user", s.Name)
		case rbacv1.GroupKind:
			args = append(args, "--group", s.Name)
		default:
			args = append(args, "--serviceaccount", s.Namespace+":"+s.Name)
		}
	}
	if o.Cluster {
		args = append(args, "--all-namespaces")
	}
	if !o.DNS {
		args = append(args, "--dns-reader=false")
	}
	if o.EgressAdmin {
		args = append(args, "--egress-admin")
	}
	return strings.Join(args, " ")
}

// Comment explains the objects in YAML comment lines: what each permission
// is for, so an admin reviewing the manifest need not guess.
func Comment(o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Least-privilege RBAC for kubectl agentkernel in namespace %q, made by:\n#   %s\n", o.Namespace, o.Command())
	b.WriteString("# Each permission and what it is for:\n")
	skip := map[string]bool{}
	for _, w := range o.Without {
		skip[w] = true
	}
	scopes := []Scope{Namespace}
	if o.DNS {
		scopes = append(scopes, ClusterDNS)
	}
	if o.Cluster {
		scopes = append(scopes, Cluster)
	}
	width := 0
	listed := Permissions
	if o.EgressAdmin {
		listed = append(listed[:len(listed):len(listed)], EgressAdmin...)
	}
	for _, p := range listed {
		width = max(width, len(p.String()))
	}
	for _, scope := range scopes {
		for _, p := range Of(scope) {
			if !skip[p.String()] {
				fmt.Fprintf(&b, "#   %-*s  %s%s\n", width, p.String(), p.Why, p.names())
			}
		}
	}
	if o.EgressAdmin {
		fmt.Fprintf(&b, "# And, for an admin, what egress install and uninstall need (Role %s):\n", EgressAdminRole)
		for _, p := range EgressAdmin {
			fmt.Fprintf(&b, "#   %-*s  %s%s\n", width, p.String(), p.Why, p.names())
		}
	}
	b.WriteString("# Not granted: create --create-namespace needs \"create namespaces\" cluster-wide.\n")
	if o.Subject == nil {
		b.WriteString("# No subject given: bind the roles with --user, --group or --serviceaccount.\n")
	}
	return b.String()
}
