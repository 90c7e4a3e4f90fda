package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
	"github.com/agentkernel/kubectl-agentkernel/pkg/version"
)

// PrepareEgress gives a sandbox with --allow-host its way out: the
// namespace's egress proxy, installed on first use, and the proxy's address
// in the sandbox's environment. Commands that make sandboxes run it as
// sandbox.CreateOptions.Prepare, once the namespace exists. With a client
// dry run nothing is sent: the address is the existing proxy's, if any.
func (c *Clients) PrepareEgress(dryRun cmdutil.DryRunStrategy, warn io.Writer) func(context.Context, *sandbox.Spec) error {
	return func(ctx context.Context, spec *sandbox.Spec) error {
		if len(spec.AllowHosts) == 0 {
			return nil
		}
		if dryRun == cmdutil.DryRunClient {
			if svc, err := c.Clientset.CoreV1().Services(spec.Namespace).Get(ctx, fence.ProxyName, metav1.GetOptions{}); err == nil {
				spec.EgressProxyURL = fence.ProxyURL(spec.Namespace, svc.Spec.ClusterIP)
			}
			return nil
		}
		in, err := egress.Ensure(ctx, c.Clientset, spec.Namespace, egress.EnsureOptions{
			ServerDryRun: dryRun == cmdutil.DryRunServer,
			Warn:         func(s string) { fmt.Fprintln(warn, "warning: "+s) },
		})
		if err != nil {
			return explainEgressInstall(err, spec.Namespace)
		}
		if len(in.Created) > 0 && dryRun == cmdutil.DryRunNone {
			// It stays for the namespace's next sandbox with --allow-host,
			// whatever becomes of this one: say so once.
			fmt.Fprintf(warn, "egress proxy installed in namespace %s for sandboxes with --allow-host (see: kubectl agentkernel egress status -n %s)\n", spec.Namespace, spec.Namespace)
		}
		if w := staleProxyWarning(spec, in.Version, version.Get().Version); w != "" {
			fmt.Fprintln(warn, w)
		}
		spec.EgressProxyURL = fence.ProxyURL(spec.Namespace, in.Service.Spec.ClusterIP)
		return nil
	}
}

// staleProxyWarning: a pool's members install their agent through the
// proxy while they warm up, which only a proxy as new as the warm install
// allows; one made by another version of the plugin may refuse them, and
// their install step then fails.
func staleProxyWarning(spec *sandbox.Spec, proxy, plugin string) string {
	if spec.WarmInstall == "" || proxy == "" || proxy == plugin {
		return ""
	}
	return fmt.Sprintf("warning: the egress proxy in namespace %s was installed by version %s of this plugin, not %s: a proxy older than the warm install refuses a pool's unclaimed members, and their install step fails; update it with: kubectl agentkernel egress install -n %s",
		spec.Namespace, proxy, plugin, spec.Namespace)
}

// explainEgressInstall says who can install the proxy when the user cannot.
func explainEgressInstall(err error, namespace string) error {
	var notOurs *egress.NotOursError
	var cannotRead *egress.CannotReadError
	if errors.As(err, &cannotRead) {
		return err // the plugin's Role is missing: explain says how to get it
	}
	if apierrors.IsForbidden(err) && !errors.As(err, &notOurs) {
		// %v, not %w: this is the whole advice, not a Forbidden for
		// Explain to add its own to.
		return fmt.Errorf("%v; the first sandbox with --allow-host in a namespace installs its egress proxy, which needs rights to create Deployments, Services, NetworkPolicies, ServiceAccounts, Roles and RoleBindings there: ask an admin to run once: kubectl agentkernel egress install -n %s", err, namespace)
	}
	return err
}
