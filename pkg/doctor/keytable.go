package doctor

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
)

// checkKeyTable reports the namespace's model-key table: the Secret the
// egress proxy reads the keys it injects from, and whether the user may
// write a sandbox's entry there (patch on that one Secret).
func checkKeyTable(ctx context.Context, env *Env) []Result {
	patch := rbac.Permission{Verb: "patch", Resource: "secrets", ResourceNames: []string{keys.SecretName}}
	may, err := env.canI(ctx, patch)
	if err != nil {
		return []Result{warn("cannot ask whether you may write the model-key table: "+err.Error(), env.rbacHint())}
	}
	if !may {
		return []Result{fail(fmt.Sprintf("you may not patch secret %s in namespace %q: sandboxes whose model keys the egress proxy injects (--allow-host with --agent, --inject) cannot be made", keys.SecretName, env.Namespace),
			env.rbacHint()+"; or pass --inject-keys=false (the keys then go into the sandbox's Secret)")}
	}
	table, err := env.Clientset.CoreV1().Secrets(env.Namespace).Get(ctx, keys.SecretName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return []Result{ok("no model-key table (secret %s) in namespace %q yet; the first sandbox with an injected key makes it, and you may write it", keys.SecretName, env.Namespace)}
	case err != nil:
		return []Result{warn("cannot read the model-key table: "+err.Error(), env.rbacHint())}
	}
	return []Result{ok("the model-key table (secret %s) holds %d sandboxes' keys, and you may write it", keys.SecretName, len(table.Data))}
}
