package main

// The peer of the agent-sandbox rows (issue #27): kubernetes-sigs/
// agent-sandbox built from the Go module proxy, installed on the same
// cluster and run as a host process (test/peer/agentsandbox), and the
// dynamic-client plumbing the rows use to make its objects and wait for
// their Ready condition.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/test/peer/agentsandbox"
)

// errSkipRow from a row's Setup skips the row with its message instead of
// ending the run (see measureAll).
var errSkipRow = errors.New("row skipped")

// The peer's resources.
var (
	peerSandboxes = schema.GroupVersionResource{Group: "agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxes"}
	peerClaims    = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxclaims"}
	peerTemplates = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxtemplates"}
	peerPools     = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxwarmpools"}
)

// peerRun is the peer as this run has it: built, installed and running
// once, for every agent-sandbox row; or why not.
type peerRun struct {
	tried     bool
	skip      error
	dyn       dynamic.Interface
	ctrl      *agentsandbox.Controller
	installed agentsandbox.Installed
}

var thePeer peerRun

// needPeer builds, installs and starts agent-sandbox the first time a row
// needs it. If any of that fails, every agent-sandbox row is skipped with
// the reason (the rest of the run goes on).
func needPeer(ctx context.Context, e *Env) error {
	if err := needCluster(ctx, e); err != nil {
		return err
	}
	if !thePeer.tried {
		thePeer.tried = true
		thePeer.skip = startPeer(ctx, e)
		if thePeer.skip != nil {
			fmt.Fprintf(os.Stderr, "bench: the agent-sandbox rows are skipped: %v\n", thePeer.skip)
		}
	}
	if thePeer.skip != nil {
		return fmt.Errorf("%w: agent-sandbox %s is not running here: %v", errSkipRow, agentsandbox.Version, thePeer.skip)
	}
	return nil
}

func startPeer(ctx context.Context, e *Env) error {
	fmt.Fprintf(os.Stderr, "bench: agent-sandbox %s from the Go module proxy (built once, cached)\n", agentsandbox.Version)
	p, err := agentsandbox.Build(ctx, os.Stderr)
	if err != nil {
		return fmt.Errorf("cannot build it: %w", err)
	}
	if thePeer.installed, err = p.Install(ctx, e.Config); err != nil {
		return fmt.Errorf("cannot install it: %w", err)
	}
	log, err := os.Create(filepath.Join(e.Tmp, "agent-sandbox-controller.log"))
	if err != nil {
		return err
	}
	if thePeer.ctrl, err = p.Start(ctx, e.Config, e.Kubeconfig, e.Tmp, log); err != nil {
		// The log is in the scratch directory, which goes at the end of
		// the run: its last lines go with the reason.
		tail, _ := os.ReadFile(log.Name())
		return fmt.Errorf("cannot start its controller: %w; the end of its log:\n%s", err, tail[max(0, len(tail)-2048):])
	}
	if thePeer.dyn, err = dynamic.NewForConfig(e.Config); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: agent-sandbox %s installed (%s) and its controller running on the host (%s)\n",
		agentsandbox.Version, thePeer.installed, strings.Join(agentsandbox.ControllerArgs(0)[:3], " "))
	return nil
}

// stopPeer ends the peer's controller, before the namespace and the
// cluster go.
func stopPeer() { thePeer.ctrl.Stop() }

// peer returns the dynamic client of one of the peer's resources in the
// bench namespace.
func (e *Env) peer(gvr schema.GroupVersionResource) dynamic.ResourceInterface {
	return thePeer.dyn.Resource(gvr).Namespace(e.Namespace)
}

// peerObject is an object of the peer's API.
func peerObject(gvr schema.GroupVersionResource, kind, name string, labels map[string]string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(gvr.GroupVersion().String())
	u.SetKind(kind)
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

// peerRoundLabel is the round a claim of a peer row was made in.
const peerRoundLabel = "agentkernel-bench-peer-round"

// peerPodTemplate is the Pod of our sandbox (network open, as every compared
// row), as the podTemplate of a Sandbox or SandboxTemplate: both sides run
// the same hardened Pod.
func (e *Env) peerPodTemplate(cpu, memory string) (map[string]any, error) {
	spec := sandbox.NewSpec("peer", e.Namespace)
	spec.Network = sandbox.NetworkOpen
	if err := setResources(&spec, cpu, memory); err != nil {
		return nil, err
	}
	podSpec, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&spec.Pod().Spec)
	if err != nil {
		return nil, err
	}
	return map[string]any{"metadata": map[string]any{"labels": map[string]any{"agentkernel-bench": "agent-sandbox"}}, "spec": podSpec}, nil
}

func peerSandbox(name string, podTemplate map[string]any) *unstructured.Unstructured {
	return peerObject(peerSandboxes, "Sandbox", name, map[string]string{roundLabel: "as"}, map[string]any{"podTemplate": podTemplate})
}

// peerClaim is a SandboxClaim of pool, labelled with its row (roundLabel,
// which cleanup deletes by) and its round (peerRoundLabel, which the
// burst rows count by: a failed round's claims are not counted again).
func peerClaim(name, pool string, round int) *unstructured.Unstructured {
	return peerObject(peerClaims, "SandboxClaim", name, map[string]string{roundLabel: "as-" + pool, peerRoundLabel: strconv.Itoa(round)},
		map[string]any{"warmPoolRef": map[string]any{"name": pool}})
}

// yamlOf is obj as kubectl create -f - reads it.
func yamlOf(obj *unstructured.Unstructured) ([]byte, error) { return yaml.Marshal(obj.Object) }

// makePeerPool makes a SandboxTemplate and a SandboxWarmPool of size
// replicas from it (both named name) and waits until all are Ready,
// untimed. The template's NetworkPolicy is Unmanaged: our side's rows run
// with the network open and make none either.
func makePeerPool(ctx context.Context, e *Env, name string, size int) error {
	if err := needPeer(ctx, e); err != nil {
		return err
	}
	pt, err := e.peerPodTemplate(e.ScaleCPU, e.ScaleMem)
	if err != nil {
		return err
	}
	tmpl := peerObject(peerTemplates, "SandboxTemplate", name, nil, map[string]any{"podTemplate": pt, "networkPolicyManagement": "Unmanaged"})
	if _, err := e.peer(peerTemplates).Create(ctx, tmpl, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("SandboxTemplate %s: %w", name, err)
	}
	pool := peerObject(peerPools, "SandboxWarmPool", name, nil, map[string]any{"replicas": int64(size), "sandboxTemplateRef": map[string]any{"name": name}})
	if _, err := e.peer(peerPools).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("SandboxWarmPool %s: %w", name, err)
	}
	return waitPeerPool(ctx, e, name, size)
}

// waitPeerPool waits until n Sandboxes owned by the warm pool are Ready.
// It counts them itself rather than read the pool's status.readyReplicas,
// which the controller updates after a claim has taken a member: read
// right after a claim, the status still shows the pool full.
func waitPeerPool(ctx context.Context, e *Env, name string, n int) error {
	p, err := e.peer(peerPools).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	owner := []string{string(p.GetUID())}
	deadline := time.Now().Add(e.CreateTimeout)
	for {
		list, err := e.peer(peerSandboxes).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for i := range list.Items {
			if ownedBy(&list.Items[i], owner) && isReady(&list.Items[i]) && list.Items[i].GetDeletionTimestamp() == nil {
				ready++
			}
		}
		if ready >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("SandboxWarmPool %s has %d of %d sandboxes Ready after %s", name, ready, n, e.CreateTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dropPeerPool deletes a warm pool and its template; the pool's sandboxes
// go with it (owner references).
func dropPeerPool(ctx context.Context, e *Env, name string) error {
	for _, gvr := range []schema.GroupVersionResource{peerPools, peerTemplates} {
		if err := e.peer(gvr).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// deletePeer deletes the peer's objects of gvr labelled selector and waits
// until they, their sandboxes and the sandboxes' Pods are gone (untimed). A
// Sandbox's Pod has its name; a claim's Sandbox is owned by the claim.
func deletePeer(ctx context.Context, e *Env, gvr schema.GroupVersionResource, selector string) error {
	ri := e.peer(gvr)
	list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return err
	}
	var mine []string
	for _, o := range list.Items {
		mine = append(mine, string(o.GetUID()))
		if err := ri.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	sandboxes, err := e.peer(peerSandboxes).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var pods []string
	for _, s := range sandboxes.Items {
		if slices.Contains(mine, string(s.GetUID())) || ownedBy(&s, mine) {
			pods = append(pods, s.GetName())
		}
	}
	deadline := time.Now().Add(e.CreateTimeout)
	for {
		left, err := ri.List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		if len(left.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d %s still there after %s", len(left.Items), gvr.Resource, e.CreateTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range pods {
		if err := waitNone(ctx, e, metav1.ListOptions{FieldSelector: "metadata.name=" + name}); err != nil {
			return err
		}
	}
	return nil
}

func ownedBy(o *unstructured.Unstructured, uids []string) bool {
	for _, r := range o.GetOwnerReferences() {
		if slices.Contains(uids, string(r.UID)) {
			return true
		}
	}
	return false
}

// waitPeerReady waits until n objects of ri matching opts have the condition
// Ready True, with a list and then a watch (as kubectl wait; a watch the
// server ends is listed and watched again), and returns how many did.
func waitPeerReady(ctx context.Context, ri dynamic.ResourceInterface, opts metav1.ListOptions, n int, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := map[string]bool{}
	for {
		list, err := ri.List(ctx, opts)
		if ctx.Err() != nil {
			return len(ready), fmt.Errorf("%d of %d Ready after %s", len(ready), n, timeout)
		}
		if err != nil {
			return len(ready), err
		}
		clear(ready)
		for i := range list.Items {
			if isReady(&list.Items[i]) {
				ready[list.Items[i].GetName()] = true
			}
		}
		if len(ready) >= n {
			return len(ready), nil
		}
		wopts := opts
		wopts.ResourceVersion = list.GetResourceVersion()
		w, err := ri.Watch(ctx, wopts)
		if err != nil {
			return len(ready), err
		}
		done, err := watchReady(ctx, w, ready, n)
		w.Stop()
		switch {
		case done:
			return len(ready), nil
		case ctx.Err() != nil:
			return len(ready), fmt.Errorf("%d of %d Ready after %s", len(ready), n, timeout)
		case err != nil:
			return len(ready), err
		}
	}
}

// watchReady follows w, keeping ready up to date, until n are Ready
// (true), the watch ends (false, nil: list again) or fails.
func watchReady(ctx context.Context, w watch.Interface, ready map[string]bool, n int) (bool, error) {
	for len(ready) < n {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			o, isObj := ev.Object.(*unstructured.Unstructured)
			switch {
			case ev.Type == watch.Error:
				return false, fmt.Errorf("watch: %v", apierrors.FromObject(ev.Object))
			case !isObj:
			case ev.Type == watch.Deleted || !isReady(o):
				delete(ready, o.GetName())
			default:
				ready[o.GetName()] = true
			}
		}
	}
	return true, nil
}

// isReady: the object's condition Ready is True (a Sandbox: its Pod is
// Ready; a SandboxClaim: its Sandbox is).
func isReady(o *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if c, ok := c.(map[string]any); ok && c["type"] == "Ready" {
			return c["status"] == "True"
		}
	}
	return false
}
