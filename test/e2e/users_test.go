package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// user is someone the test cluster knows, with a kubeconfig of their own
// and no permission but what a test binds to them.
type user struct {
	name       string
	groups     []string
	kubeconfig string
}

// requireUsers skips unless the test cluster's CA can mint users.
func requireUsers(t *testing.T) {
	t.Helper()
	requireCluster(t)
	if env.cluster == nil {
		t.Skip("needs the local test cluster's CA to make users")
	}
}

// newUser issues a client certificate for a fresh user (CN) in groups (O)
// from the test cluster's CA.
func newUser(t *testing.T, prefix string, groups ...string) user {
	t.Helper()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := prefix + "-" + hex.EncodeToString(suffix)
	ca, err := localcluster.LoadAuthority(env.cluster.PKIDir)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue(time.Now(), localcluster.CertRequest{CommonName: name, Organizations: groups, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	return user{name: name, groups: groups, kubeconfig: writeKubeconfig(t, name, &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key})}
}

// serviceAccountUser makes a service account and a kubeconfig with a token for it.
func serviceAccountUser(t *testing.T, ns, name string) user {
	t.Helper()
	ctx := context.Background()
	if _, err := env.cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := env.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	full := "system:serviceaccount:" + ns + ":" + name
	return user{name: full, groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns},
		kubeconfig: writeKubeconfig(t, name, &clientcmdapi.AuthInfo{Token: tok.Status.Token})}
}

func writeKubeconfig(t *testing.T, name string, auth *clientcmdapi.AuthInfo) string {
	t.Helper()
	admin, err := clientcmd.LoadFromFile(env.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	for n, c := range admin.Clusters {
		cfg.Clusters[n] = c
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: n, AuthInfo: name, Namespace: "default"}
	}
	cfg.AuthInfos[name] = auth
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectl runs the test cluster's kubectl as admin.
func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(env.kubectl, append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %v: %v\n%s%s", args, err, out.String(), errOut.String())
	}
	return out.String()
}

// applyRBAC applies, as admin, what `kubectl agentkernel rbac ARGS` prints
// (the real binary's output, as an admin would apply it), and removes the
// cluster-wide and kube-system objects when the test ends.
func applyRBAC(t *testing.T, args ...string) {
	t.Helper()
	r := mustPlugin(t, "", append([]string{"rbac"}, args...)...)
	kubectl(t, r.stdout, "apply", "-f", "-")
	t.Cleanup(func() { kubectl(t, r.stdout, "delete", "--ignore-not-found", "--wait=false", "-f", "-") })
}

// applyObjects applies rendered RBAC objects, deleting those of full that
// objs lacks (a Role left with no rule is not rendered at all).
func applyObjects(t *testing.T, full, objs []runtime.Object) {
	t.Helper()
	var apply, remove bytes.Buffer
	p := &printers.YAMLPrinter{}
	have := map[string]bool{}
	for _, o := range objs {
		have[objectKey(o)] = true
		if err := p.PrintObj(o, &apply); err != nil {
			t.Fatal(err)
		}
	}
	q := &printers.YAMLPrinter{}
	for _, o := range full {
		if !have[objectKey(o)] {
			if err := q.PrintObj(o, &remove); err != nil {
				t.Fatal(err)
			}
		}
	}
	kubectl(t, apply.String(), "apply", "-f", "-")
	if remove.Len() > 0 {
		kubectl(t, remove.String(), "delete", "--ignore-not-found", "-f", "-")
	}
}

func objectKey(o runtime.Object) string {
	m, _ := o.(metav1.Object)
	return o.GetObjectKind().GroupVersionKind().Kind + "/" + m.GetNamespace() + "/" + m.GetName()
}

// waitForAccess waits until the authorizer gives u the permission (or, with
// want false, refuses it): RBAC changes reach the API server's cache a
// moment after they are written.
func waitForAccess(t *testing.T, u user, ns string, p rbac.Permission, want bool) {
	t.Helper()
	resource, sub, _ := strings.Cut(p.Resource, "/")
	attrs := &authorizationv1.ResourceAttributes{Verb: p.Verb, Group: p.Group, Resource: resource, Subresource: sub, Namespace: ns}
	switch p.Scope {
	case rbac.Cluster:
		attrs.Namespace = ""
	case rbac.ClusterDNS:
		attrs.Namespace = rbac.DNSNamespace
	}
	if len(p.ResourceNames) > 0 {
		attrs.Name = p.ResourceNames[0]
	}
	if p.Resource == "namespaces" {
		attrs.Name = ns
	}
	eventually(t, time.Minute, "RBAC to say "+u.name+" may "+p.String()+" = "+map[bool]string{true: "yes", false: "no"}[want], func() bool {
		r, err := env.cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: u.name, Groups: append([]string{"system:authenticated"}, u.groups...), ResourceAttributes: attrs},
		}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed == want
	})
}
