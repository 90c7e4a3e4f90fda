package doctor

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

func TestKeyTable(t *testing.T) {
	table := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: keys.SecretName, Namespace: "agents"}, Data: map[string][]byte{"a": nil, "b": nil}}
	for name, c := range map[string]struct {
		deny   []string
		table  bool
		status Status
		found  string
	}{
		"missing":   {nil, false, OK, "no model-key table"},
		"present":   {nil, true, OK, "holds 2 sandboxes' keys"},
		"forbidden": {[]string{"patch secrets in agents"}, true, Fail, "you may not patch secret agentkernel-egress-keys"},
	} {
		env := &Env{Namespace: "agents", Clientset: cluster(t, "v1.33.0", c.deny)}
		if c.table {
			env.Clientset = cluster(t, "v1.33.0", c.deny, table)
		}
		r := checkKeyTable(context.Background(), env)
		if len(r) != 1 || r[0].Status != c.status || !strings.Contains(r[0].Found, c.found) {
			t.Errorf("%s: %+v", name, r)
		}
	}
}
