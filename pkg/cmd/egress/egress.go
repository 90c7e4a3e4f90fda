// Package egress holds the egress command family (egress install,
// uninstall, status) and the hidden egress-proxy command the proxy's Pods
// run. Installing the proxy on a sandbox's first use (create and run
// --allow-host) is the top-level commands' and lives in
// pkg/cmd/internal/cli.
package egress

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress"
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

// explainEgressAdmin says, when egress install or uninstall is refused,
// that it is an admin's work and which Role it takes.
func explainEgressAdmin(err error, namespace string) error {
	var notOurs *egress.NotOursError
	if apierrors.IsForbidden(err) && !errors.As(err, &notOurs) {
		return fmt.Errorf("%v; installing or removing the namespace's egress proxy is an admin's work (it makes a ServiceAccount, a Role and a RoleBinding): ask a cluster admin to run it, or to grant you what it takes (kubectl agentkernel rbac -n %s --egress-admin prints that Role)", err, namespace)
	}
	return err
}
