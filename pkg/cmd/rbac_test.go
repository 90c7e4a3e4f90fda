package cmd

import (
	"bufio"
	"context"
	"os"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// deployRBACArgs is how deploy/rbac.yaml is made; CI (this test) checks
// that the file is exactly what the command prints.
var deployRBACArgs = []string{"rbac", "-n", "agentkernel", "--group", "agentkernel-users", "--all-namespaces"}

func runRoot(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	t.Setenv("KUBECONFIG", "/nonexistent") // nothing from this machine may count
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	code := Execute(context.Background(), streams, args)
	return out.String(), errOut.String(), code
}

func TestDeployRBACIsTheCommandsOutput(t *testing.T) {
	out, errOut, code := runRoot(t, deployRBACArgs...)
	if code != 0 {
		t.Fatalf("rbac: %d %s", code, errOut)
	}
	file, err := os.ReadFile("../../deploy/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(file) != out {
		t.Fatalf("deploy/rbac.yaml is not what `kubectl agentkernel %[1]s` prints; regenerate it:\n  go run ./cmd/kubectl-agentkernel %[1]s > deploy/rbac.yaml",
			strings.Join(deployRBACArgs, " "))
	}
	if !strings.Contains(out, "#   kubectl agentkernel "+strings.Join(deployRBACArgs, " ")+"\n") {
		t.Errorf("the output does not say how it was made:\n%s", out)
	}
}

// The printed YAML decodes into exactly the objects rbac.Objects renders,
// for every kind of subject.
func TestRBACPrintsRolesAndBindings(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := rbacv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	cases := map[string]struct {
		args  []string
		kinds string
		subj  rbacv1.Subject
	}{
		"user":            {[]string{"--user", "alice@example.com"}, "Role RoleBinding Role RoleBinding", rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice@example.com"}},
		"group, -A":       {[]string{"--group", "devs", "-A"}, "Role RoleBinding Role RoleBinding ClusterRole ClusterRoleBinding", rbacv1.Subject{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "devs"}},
		"service account": {[]string{"--serviceaccount", "ci:runner", "--dns-reader=false"}, "Role RoleBinding", rbacv1.Subject{Kind: "ServiceAccount", Namespace: "ci", Name: "runner"}},
		"no subject":      {nil, "Role Role", rbacv1.Subject{}},
		"egress admin":    {[]string{"--user", "admin", "--egress-admin"}, "Role RoleBinding Role RoleBinding Role RoleBinding", rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "admin"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runRoot(t, append([]string{"rbac", "-n", "agents"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("%d %s", code, errOut)
			}
			var kinds []string
			r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
			for {
				doc, err := r.Read()
				if err != nil {
					break
				}
				obj, gvk, err := decoder.Decode(doc, nil, nil)
				if err != nil {
					t.Fatalf("%v in:\n%s", err, doc)
				}
				kinds = append(kinds, gvk.Kind)
				switch o := obj.(type) {
				case *rbacv1.Role:
					if o.Name == rbac.RoleName && o.Namespace != "agents" || o.Name == rbac.DNSRoleName && o.Namespace != "kube-system" {
						t.Errorf("role %s in namespace %q", o.Name, o.Namespace)
					}
				case *rbacv1.RoleBinding:
					if len(o.Subjects) != 1 || o.Subjects[0] != tc.subj || o.RoleRef.Kind != "Role" {
						t.Errorf("binding %s: %+v -> %+v", o.Name, o.Subjects, o.RoleRef)
					}
				case *rbacv1.ClusterRoleBinding:
					if len(o.Subjects) != 1 || o.Subjects[0] != tc.subj || o.RoleRef.Name != rbac.ClusterRoleName {
						t.Errorf("cluster binding %s: %+v -> %+v", o.Name, o.Subjects, o.RoleRef)
					}
				}
			}
			if got := strings.Join(kinds, " "); got != tc.kinds {
				t.Errorf("kinds %q, want %q", got, tc.kinds)
			}
			if !strings.Contains(out, "#   create pods/exec") {
				t.Errorf("no comment explains the permissions:\n%s", out)
			}
		})
	}
}

func TestRBACBadInput(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"two subjects": {[]string{"--user", "a", "--group", "b"}, "give one of --user, --group or --serviceaccount"},
		"bad sa":       {[]string{"--serviceaccount", "runner"}, "expected NAMESPACE:NAME"},
		"bad output":   {[]string{"-o", "wide"}, "--output must be yaml or json"},
		"an argument":  {[]string{"alice"}, "unknown command"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, errOut, code := runRoot(t, append([]string{"rbac", "-n", "agents"}, tc.args...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q, want one line with %q", code, errOut, tc.want)
			}
		})
	}
}

// rbac names the egress proxy's objects without importing the domain: the
// names must stay the proxy's.
func TestRBACNamesTheEgressProxysObjects(t *testing.T) {
	if rbac.EgressKeyTableName != keys.SecretName || rbac.EgressUsageName != keys.UsageConfigMapName {
		t.Fatalf("rbac names %q and %q, the key table is %q and usage %q", rbac.EgressKeyTableName, rbac.EgressUsageName, keys.SecretName, keys.UsageConfigMapName)
	}
	if rbac.EgressProxyName != fence.ProxyName || rbac.EgressProxyPolicyName != fence.ProxyPolicyName {
		t.Fatalf("rbac names %q and %q, the proxy is %q with policy %q", rbac.EgressProxyName, rbac.EgressProxyPolicyName, fence.ProxyName, fence.ProxyPolicyName)
	}
	out, _, code := runRoot(t, "rbac", "-n", "agents", "--egress-admin")
	if code != 0 || !strings.Contains(out, "name: "+rbac.EgressAdminRole) || !strings.Contains(out, "#   create rolebindings.rbac.authorization.k8s.io") {
		t.Fatalf("rbac --egress-admin:\n%s", out)
	}
	if out, _, _ := runRoot(t, "rbac", "-n", "agents"); strings.Contains(out, rbac.EgressAdminRole) || strings.Contains(out, "rolebindings") {
		t.Fatalf("the user's RBAC includes the egress admin's:\n%s", out)
	}
}
