package cmd

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

const testKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
`

// rateLimiterOf returns the limiter of the clientset the commands build from flags.
func rateLimiterOf(t *testing.T, flags *genericclioptions.ConfigFlags) flowcontrol.RateLimiter {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	flags.KubeConfig = &path
	cs, err := cmdutil.NewFactory(cmdutil.NewMatchVersionFlags(flags)).KubernetesClientSet()
	if err != nil {
		t.Fatal(err)
	}
	return cs.CoreV1().RESTClient().GetRateLimiter()
}

func TestClientsAreNotThrottledClientSide(t *testing.T) {
	if rl := rateLimiterOf(t, genericclioptions.NewConfigFlags(true)); rl == nil || rl.QPS() != restclient.DefaultQPS {
		t.Fatalf("control: client-go's default clientset should carry a %v/s limiter, got %v", restclient.DefaultQPS, rl)
	}
	if rl := rateLimiterOf(t, newConfigFlags()); rl != nil {
		t.Errorf("the plugin's clientset has a client-side rate limiter (%v/s); want none", rl.QPS())
	}
}

func TestClientRateKeepsACallersOwnLimit(t *testing.T) {
	own := flowcontrol.NewTokenBucketRateLimiter(7, 3)
	for _, c := range []*restclient.Config{{QPS: 20, Burst: 40}, {RateLimiter: own}} {
		before := *c
		got := withClientRate(c)
		if got.QPS != before.QPS || got.Burst != before.Burst || got.RateLimiter != before.RateLimiter {
			t.Errorf("withClientRate(%v/%v) = %v/%v; a caller's own limit must stay", before.QPS, before.Burst, got.QPS, got.Burst)
		}
	}
}
