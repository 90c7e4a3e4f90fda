package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

var egressLong = templates.LongDesc(`
	Manage the namespace's egress proxy: the HTTP(S) proxy through which a sandbox made
	with --allow-host reaches exactly the hosts it was granted, and nothing else.

	The first sandbox with --allow-host in a namespace installs the proxy (a small
	Deployment, Service and NetworkPolicy, admitted by Pod Security "restricted"); an
	admin can install it ahead of time, with options, and remove it again.`)

var egressExample = templates.Examples(`
	# A sandbox that may reach its model API and nothing else
	kubectl agentkernel create claude --allow-host api.anthropic.com

	# Install the proxy ahead of time (for users who may not create Roles), letting
	# granted names resolve into an internal range
	kubectl agentkernel egress install -n agents --private-cidr 10.20.0.0/16

	# What the proxy runs, and which sandboxes use it
	kubectl agentkernel egress status -n agents

	# Every decision it made, one JSON line each
	kubectl logs -n agents deployment/agentkernel-egress`)

// NewCmdEgress returns the egress command group.
func NewCmdEgress(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "egress",
		Short:   "Manage the namespace's egress proxy for sandboxes made with --allow-host",
		Long:    egressLong,
		Example: egressExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		NewCmdEgressInstall(f, streams),
		NewCmdEgressUninstall(f, streams),
		NewCmdEgressStatus(f, streams),
	)
	return cmd
}

// prepareEgress gives a sandbox with --allow-host its way out: the
// namespace's egress proxy, installed on first use, and the proxy's address
// in the sandbox's environment. Commands that make sandboxes run it as
// sandbox.CreateOptions.Prepare, once the namespace exists. With a client
// dry run nothing is sent: the address is the existing proxy's, if any.
func (c *clients) prepareEgress(dryRun cmdutil.DryRunStrategy, warn io.Writer) func(context.Context, *sandbox.Spec) error {
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
		spec.EgressProxyURL = fence.ProxyURL(spec.Namespace, in.Service.Spec.ClusterIP)
		return nil
	}
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
		// explain to add its own to.
		return fmt.Errorf("%v; the first sandbox with --allow-host in a namespace installs its egress proxy, which needs rights to create Deployments, Services, NetworkPolicies, ServiceAccounts, Roles and RoleBindings there: ask an admin to run once: kubectl agentkernel egress install -n %s", err, namespace)
	}
	return err
}

// explainEgressAdmin says, when egress install or uninstall is refused,
// that it is an admin's work and which Role it takes.
func explainEgressAdmin(err error, namespace string) error {
	var notOurs *egress.NotOursError
	if apierrors.IsForbidden(err) && !errors.As(err, &notOurs) {
		return fmt.Errorf("%v; installing or removing the namespace's egress proxy is an admin's work (it makes a ServiceAccount, a Role and a RoleBinding): ask a cluster admin to run it, or to grant you what it takes (kubectl agentkernel rbac -n %s --egress-admin prints that Role)", err, namespace)
	}
	return err
}
