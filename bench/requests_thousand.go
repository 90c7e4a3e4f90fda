package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// countThousandRequests is -requests at -thousand n: the API requests of
// list, a claim, gc and delete --all in a namespace of n sandboxes, beside
// kubectl's nearest equivalent, each run once through the recording proxy
// l. The sandboxes are made (and ended) in this process first, untimed and
// not recorded.
func countThousandRequests(ctx context.Context, e *Env, l *requestLog, w io.Writer, n int) error {
	fmt.Fprintf(w, "\nAt %d sandboxes:\n", n)
	ours := thousandLabel + "=ours"
	pod, err := e.kubectlPod("rqk", nil, e.ScaleCPU, e.ScaleMem)
	if err != nil {
		return err
	}
	podFile := filepath.Join(e.Tmp, "rqk-pod.yaml")
	if err := os.WriteFile(podFile, pod, 0o644); err != nil {
		return err
	}
	steps := []struct {
		name, side string
		prepare    func() error
		argv       [][]string
	}{
		{fmt.Sprintf("list, %d sandboxes", n), "agentkernel", func() error { return ensureSandboxes(ctx, e, n) }, [][]string{e.ours("list")}},
		{fmt.Sprintf("list, %d sandboxes", n), "kubectl", nil, [][]string{e.kubectl("get", "pods", "-l", ours)}},
		{fmt.Sprintf("a claim, beside %d", n), "agentkernel", func() error {
			if err := benchPool(ctx, e, "bench-rq", 1); err != nil {
				return err
			}
			return readyMembers(ctx, e, "bench-rq", 1)
		}, [][]string{e.ours("create", "rqc", "--pool", "bench-rq")}},
		{fmt.Sprintf("a claim, beside %d", n), "kubectl (cold: create -f + wait)", nil,
			[][]string{e.kubectl("create", "-f", podFile), e.kubectl("wait", "--for=condition=Ready", "pod/rqk")}},
		{fmt.Sprintf("gc, %d ended sandboxes", n), "agentkernel", func() error { return ensureEnded(ctx, e, n) }, [][]string{e.ours("gc")}},
		{fmt.Sprintf("gc, %d ended sandboxes", n), "kubectl (delete pods -l --field-selector)", func() error { return ensureEnded(ctx, e, n) },
			[][]string{e.kubectl("delete", "pods", "-l", endedLabel, "--field-selector", "status.phase!=Running,status.phase!=Pending")}},
		{fmt.Sprintf("delete --all, %d sandboxes", n), "agentkernel", func() error { return ensureSandboxes(ctx, e, n) },
			[][]string{e.ours("delete", "--all", "--timeout", "10m")}},
		{fmt.Sprintf("delete --all, %d sandboxes", n), "kubectl (delete pods -l)", func() error { return ensureKubectlPods(ctx, e, n, "kq-") },
			[][]string{e.kubectl("delete", "pods", "-l", thousandLabel+"=kubectl", "--timeout", "10m")}},
	}
	for _, s := range steps {
		if s.prepare != nil {
			if err := s.prepare(); err != nil {
				return fmt.Errorf("%s (%s): %w", s.name, s.side, err)
			}
		}
		l.take()
		if _, err := e.runAll(ctx, nil, s.argv...); err != nil {
			return fmt.Errorf("%s (%s): %w", s.name, s.side, err)
		}
		printRequests(w, s.name, s.side, foldNames(l.take()))
	}
	return dropPool(ctx, e, "bench-rq")
}

// foldNames writes NAME for the object's name in each request path, so a
// thousand deletes read as one line, ×1000.
func foldNames(reqs []string) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		method, rest, _ := strings.Cut(r, " ")
		path, suffix, _ := strings.Cut(rest, " ")
		parts := strings.Split(path, "/")
		for j := 1; j < len(parts); j++ {
			switch parts[j-1] {
			case "pods", "secrets", "networkpolicies", "persistentvolumeclaims", "podtemplates":
				if j >= 2 && parts[j-2] == "namespaces" {
					continue // a namespace called pods
				}
				parts[j] = "NAME"
			}
		}
		out[i] = strings.TrimSpace(method + " " + strings.Join(parts, "/") + " " + suffix)
	}
	return out
}
