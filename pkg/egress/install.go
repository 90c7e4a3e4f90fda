package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// FieldManager owns the fields `egress install` applies.
const FieldManager = "kubectl-agentkernel"

// InstallOptions are the choices of Install beyond the Config.
type InstallOptions struct {
	// Update existing objects to the Config (egress install); otherwise an
	// existing proxy is used as it is (first use by create).
	Update bool
	// ServerDryRun sends everything with dryRun=All.
	ServerDryRun bool
}

// Installed is what Install found or made.
type Installed struct {
	Service *corev1.Service
	// Created and Updated name the objects this call made or changed, as
	// kind/name.
	Created, Updated []string
	// Version is the plugin version that made the proxy's Deployment
	// (AnnotationVersion), when Ensure found one; "" when unknown.
	Version string
}

// NotOursError: an object of the proxy's name exists that the plugin did
// not make.
type NotOursError struct{ Kind, Name, Namespace string }

func (e *NotOursError) Error() string {
	return fmt.Sprintf("%s %q in namespace %q exists and was not made by kubectl agentkernel; remove it, or use another namespace for sandboxes with --allow-host",
		e.Kind, e.Name, e.Namespace)
}

// ours: the proxy's objects carry both of its labels.
func ours(m metav1.Object) bool {
	l := m.GetLabels()
	return l[sandbox.LabelManagedBy] == sandbox.ManagedBy && l[fence.LabelComponent] == fence.ComponentEgressProxy
}

type client[T metav1.Object] struct {
	kind   string
	get    func(context.Context, string, metav1.GetOptions) (T, error)
	create func(context.Context, T, metav1.CreateOptions) (T, error)
	patch  func(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (T, error)
	delete func(context.Context, string, metav1.DeleteOptions) error
}

type step struct {
	kind, name string
	ensure     func(ctx context.Context) (created bool, obj metav1.Object, err error)
	// getOurs reads the object, refusing one the plugin did not make.
	getOurs func(ctx context.Context) (metav1.Object, error)
	remove  func(ctx context.Context, uid types.UID) error
}

func newStep[T metav1.Object](c client[T], obj T, o InstallOptions) step {
	var dryRun []string
	if o.ServerDryRun {
		dryRun = []string{metav1.DryRunAll}
	}
	s := step{kind: c.kind, name: obj.GetName()}
	s.getOurs = func(ctx context.Context) (metav1.Object, error) {
		got, err := c.get(ctx, obj.GetName(), metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if !ours(got) {
			return nil, &NotOursError{c.kind, obj.GetName(), obj.GetNamespace()}
		}
		return got, nil
	}
	s.remove = func(ctx context.Context, uid types.UID) error {
		return c.delete(ctx, obj.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(uid)}})
	}
	s.ensure = func(ctx context.Context) (bool, metav1.Object, error) {
		for attempt := 0; ; attempt++ {
			existing, err := c.get(ctx, obj.GetName(), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				got, err := c.create(ctx, obj, metav1.CreateOptions{DryRun: dryRun, FieldManager: FieldManager})
				if apierrors.IsAlreadyExists(err) && attempt < 3 {
					continue // another create made it meanwhile: look again
				}
				return err == nil, got, err
			case err != nil:
				return false, existing, err
			case !ours(existing):
				return false, existing, &NotOursError{c.kind, obj.GetName(), obj.GetNamespace()}
			case !o.Update:
				return false, existing, nil
			}
			body, err := json.Marshal(obj)
			if err != nil {
				return false, existing, err
			}
			got, err := c.patch(ctx, obj.GetName(), types.ApplyPatchType, body,
				metav1.PatchOptions{FieldManager: FieldManager, Force: ptr.To(true), DryRun: dryRun})
			return false, got, err
		}
	}
	return s
}

func (c *Config) steps(cs kubernetes.Interface, o InstallOptions) []step {
	objs := c.Objects()
	ns := c.Namespace
	np, sa, svc := cs.NetworkingV1().NetworkPolicies(ns), cs.CoreV1().ServiceAccounts(ns), cs.CoreV1().Services(ns)
	role, rb, dep := cs.RbacV1().Roles(ns), cs.RbacV1().RoleBindings(ns), cs.AppsV1().Deployments(ns)
	sec, cm := cs.CoreV1().Secrets(ns), cs.CoreV1().ConfigMaps(ns)
	// The key table's and the usage's data are the plugin's and the
	// proxy's: an install makes them empty if missing, never applies
	// over them.
	made := InstallOptions{ServerDryRun: o.ServerDryRun}
	return []step{
		newStep(client[*networkingv1.NetworkPolicy]{"NetworkPolicy", np.Get, np.Create, np.Patch, np.Delete}, objs.NetworkPolicy, o),
		newStep(client[*corev1.ServiceAccount]{"ServiceAccount", sa.Get, sa.Create, sa.Patch, sa.Delete}, objs.ServiceAccount, o),
		newStep(client[*rbacv1.Role]{"Role", role.Get, role.Create, role.Patch, role.Delete}, objs.Role, o),
		newStep(client[*rbacv1.RoleBinding]{"RoleBinding", rb.Get, rb.Create, rb.Patch, rb.Delete}, objs.RoleBinding, o),
		newStep(client[*corev1.Secret]{"Secret", sec.Get, sec.Create, sec.Patch, sec.Delete}, objs.KeyTable, made),
		newStep(client[*corev1.ConfigMap]{"ConfigMap", cm.Get, cm.Create, cm.Patch, cm.Delete}, objs.Usage, made),
		newStep(client[*corev1.Service]{"Service", svc.Get, svc.Create, svc.Patch, svc.Delete}, objs.Service, o),
		newStep(client[*appsv1.Deployment]{"Deployment", dep.Get, dep.Create, dep.Patch, dep.Delete}, objs.Deployment, o),
	}
}

// Install makes the namespace's proxy, or (with Update) makes it look like
// the Config. Racing installs in one namespace all succeed and make one
// proxy. If a step fails, what this call created is removed again, by
// UID, on the cleanup context (sandbox.WithCleanupContext).
func Install(ctx context.Context, cs kubernetes.Interface, c *Config, o InstallOptions) (_ *Installed, err error) {
	type made struct {
		s   step
		uid types.UID
	}
	var created []made
	defer func() {
		if err == nil || o.ServerDryRun {
			return
		}
		cctx, cancel := sandbox.CleanupContext(ctx)
		defer cancel()
		var left []string
		for i := len(created) - 1; i >= 0; i-- {
			m := created[i]
			if derr := m.s.remove(cctx, m.uid); derr != nil && !apierrors.IsNotFound(derr) {
				left = append(left, strings.ToLower(m.s.kind)+"/"+m.s.name)
			}
		}
		if len(left) > 0 {
			err = fmt.Errorf("%w; cleaning up failed, left behind in namespace %q: %s (remove with: kubectl delete -n %s %s)",
				err, c.Namespace, strings.Join(left, ", "), c.Namespace, strings.Join(left, " "))
		}
	}()
	if err := c.fitNamespace(ctx, cs); err != nil {
		return nil, err
	}
	in := &Installed{}
	for _, s := range c.steps(cs, o) {
		isNew, obj, err := s.ensure(ctx)
		what := strings.ToLower(s.kind) + "/" + s.name
		if err != nil {
			var notOurs *NotOursError
			if errors.As(err, &notOurs) {
				return in, err
			}
			return in, fmt.Errorf("creating the egress proxy's %s in namespace %q: %w", what, c.Namespace, err)
		}
		switch {
		case isNew:
			in.Created = append(in.Created, what)
			created = append(created, made{s, obj.GetUID()})
		case o.Update:
			in.Updated = append(in.Updated, what)
		}
		if svc, ok := obj.(*corev1.Service); ok {
			in.Service = svc
		}
	}
	return in, nil
}

// CannotReadError: the user may not even read the namespace's egress
// proxy. That is the plugin's own Role missing (kubectl agentkernel rbac),
// not an admin's rights to install the proxy: trying to install it would
// only be refused for something else.
type CannotReadError struct{ Err error }

func (e *CannotReadError) Error() string { return e.Err.Error() }
func (e *CannotReadError) Unwrap() error { return e.Err }

// EnsureOptions are the choices of Ensure.
type EnsureOptions struct {
	Image        string
	ServerDryRun bool
	// Warn hears what the user should know (an assumption made).
	Warn func(string)
}

// Ensure finds the namespace's proxy, making it first if it is not there
// (the first sandbox with --allow-host in a namespace); Installed.Created
// says whether it did. An existing proxy is used as it is: `egress
// install` changes one. The proxy stays when the sandbox that made it
// goes: it is the namespace's, for every sandbox with --allow-host.
func Ensure(ctx context.Context, cs kubernetes.Interface, namespace string, o EnsureOptions) (*Installed, error) {
	svc, err := cs.CoreV1().Services(namespace).Get(ctx, fence.ProxyName, metav1.GetOptions{})
	if apierrors.IsForbidden(err) {
		return nil, &CannotReadError{Err: err}
	}
	if err == nil && ours(svc) {
		dep, depErr := cs.AppsV1().Deployments(namespace).Get(ctx, fence.ProxyName, metav1.GetOptions{})
		_, npErr := cs.NetworkingV1().NetworkPolicies(namespace).Get(ctx, fence.ProxyPolicyName, metav1.GetOptions{})
		for _, err := range []error{depErr, npErr} {
			if apierrors.IsForbidden(err) {
				return nil, &CannotReadError{Err: err}
			}
		}
		if depErr == nil && npErr == nil {
			return &Installed{Service: svc, Version: dep.Annotations[AnnotationVersion]}, nil
		}
	}
	c := &Config{Namespace: namespace, Image: o.Image}
	if c.Image == "" {
		c.Image = DefaultImage()
	}
	api, derr := DetectAPIServer(ctx, cs)
	c.APIServer = api
	in, err := Install(ctx, cs, c, InstallOptions{ServerDryRun: o.ServerDryRun})
	// Said only once the proxy is there: an install that failed has its
	// own message.
	if err == nil && derr != nil && o.Warn != nil {
		o.Warn(fmt.Sprintf("cannot read the API server's in-cluster address (%v): the egress proxy's NetworkPolicy lets it reach private addresses on ports 443 and 6443 for its watch (the proxy itself still refuses them to sandboxes); narrow it with: kubectl agentkernel egress install -n %s --api-server IP:PORT", derr, namespace))
	}
	return in, err
}

// DetectAPIServer reads the API server's in-cluster addresses: the
// endpoints and the cluster IP of the "kubernetes" Service in "default".
// Many users may read neither; the error says so.
func DetectAPIServer(ctx context.Context, cs kubernetes.Interface) ([]netip.AddrPort, error) {
	var found []netip.AddrPort
	var errs []error
	sliceList, err := cs.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=kubernetes",
	})
	if err != nil {
		errs = append(errs, err)
	} else {
		for _, es := range sliceList.Items {
			for _, ep := range es.Endpoints {
				for _, addr := range ep.Addresses {
					a, err := netip.ParseAddr(addr)
					if err != nil {
						continue
					}
					for _, p := range es.Ports {
						if p.Port != nil && *p.Port > 0 && *p.Port < 65536 {
							found = append(found, netip.AddrPortFrom(a.Unmap(), uint16(*p.Port)))
						}
					}
				}
			}
		}
	}
	svc, err := cs.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		errs = append(errs, err)
	} else {
		for _, ip := range svc.Spec.ClusterIPs {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				continue
			}
			for _, p := range svc.Spec.Ports {
				if p.Port > 0 && p.Port < 65536 {
					found = append(found, netip.AddrPortFrom(a.Unmap(), uint16(p.Port)))
				}
			}
		}
	}
	if len(found) == 0 {
		if len(errs) == 0 {
			errs = append(errs, errors.New(`the "kubernetes" Service in "default" has no addresses`))
		}
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(found, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return slices.Compact(found), nil
}
