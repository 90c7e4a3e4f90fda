package egress

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// UsagePublisher writes what the proxy counted to the namespace's usage
// ConfigMap (keys.UsageConfigMapName): data[pod] is that Pod's keys.Usage
// as JSON, changed by a merge patch of the Pods whose counts changed, and
// removed once the Pod is gone.
type UsagePublisher struct {
	Client    kubernetes.Interface
	Namespace string
	Proxy     *Proxy
	// Exists says whether a Pod of that name is still there
	// (PodGrants.Exists).
	Exists   func(pod string) bool
	Interval time.Duration // 5s when 0
	Log      *slog.Logger

	stale []string // rows of Pods gone, found at the start
}

// Run seeds the counts with what was published before (the proxy
// restarted), then publishes every Interval until ctx ends, and once more
// at the end.
func (u *UsagePublisher) Run(ctx context.Context) {
	if err := u.Seed(ctx); err != nil {
		u.Log.Warn("usage", "err", err.Error())
	}
	t := time.NewTicker(orDefault(u.Interval, 5*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := u.Publish(fctx); err != nil {
				u.Log.Warn("usage", "err", err.Error())
			}
			return
		case <-t.C:
			if err := u.Publish(ctx); err != nil {
				u.Log.Warn("usage", "err", err.Error())
			}
		}
	}
}

// Seed reads the ConfigMap: rows of live Pods are counted on from, rows of
// Pods gone are removed at the next Publish.
func (u *UsagePublisher) Seed(ctx context.Context) error {
	cm, err := u.Client.CoreV1().ConfigMaps(u.Namespace).Get(ctx, keys.UsageConfigMapName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading ConfigMap %s: %w", keys.UsageConfigMapName, err)
	}
	_, book := u.Proxy.routeState()
	for pod, s := range cm.Data {
		var usage keys.Usage
		if !u.Exists(pod) || json.Unmarshal([]byte(s), &usage) != nil {
			u.stale = append(u.stale, pod)
			continue
		}
		book.seed(pod, usage)
	}
	return nil
}

// Publish patches the rows that changed and removes those of Pods gone;
// nothing when nothing did.
func (u *UsagePublisher) Publish(ctx context.Context) error {
	_, book := u.Proxy.routeState()
	gone := book.forget(func(pod string) bool { return !u.Exists(pod) })
	changed := book.takeChanged()
	data := map[string]any{}
	for pod, usage := range changed {
		b, err := json.Marshal(usage)
		if err != nil {
			return err
		}
		data[pod] = string(b)
	}
	for _, pod := range append(gone, u.stale...) {
		data[pod] = nil
	}
	if len(data) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		return err
	}
	_, err = u.Client.CoreV1().ConfigMaps(u.Namespace).Patch(ctx, keys.UsageConfigMapName, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		book.markChanged(slices.Collect(maps.Keys(changed)))
		u.stale = append(u.stale, gone...)
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("ConfigMap %s is gone (kubectl agentkernel egress install makes it): %w", keys.UsageConfigMapName, err)
		}
		return fmt.Errorf("publishing usage: %w", err)
	}
	u.stale = nil
	return nil
}
