package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/kubectl-agentkernel-cluster/admin.kubeconfig": "/tmp/kubectl-agentkernel-cluster/admin.kubeconfig",
		"/tmp/a b":  "'/tmp/a b'",
		"/tmp/it's": `'/tmp/it'\''s'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"up", "extra"}, {"down", "--nope"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		if !errors.Is(err, errUsage) {
			t.Errorf("%v: err %v, want usage", args, err)
		}
		if out.Len() != 0 {
			t.Errorf("%v printed to stdout: %q", args, out.String())
		}
	}
}

func TestEnvWithoutCluster(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"env", "--dir", dir}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no cluster state in "+dir) {
		t.Errorf("env in an empty dir: %v", err)
	}
}
