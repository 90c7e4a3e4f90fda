package egress

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

func TestUsageIsPublishedWhenChangedAndPrunedWhenThePodIsGone(t *testing.T) {
	ctx := context.Background()
	before, _ := json.Marshal(keys.Usage{Hosts: map[string]keys.HostUsage{"api.example.com": {Requests: 5, InputTokens: 100}}})
	cs := fakecluster.New(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: keys.UsageConfigMapName, Namespace: ns},
		Data: map[string]string{"agentkernel-a": string(before), "agentkernel-gone": "{}"}})
	patches := 0
	cs.PrependReactor("patch", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) { patches++; return false, nil, nil })
	live := map[string]bool{"agentkernel-a": true, "agentkernel-b": true}
	p := &Proxy{}
	u := &UsagePublisher{Client: cs, Namespace: ns, Proxy: p, Exists: func(pod string) bool { return live[pod] }, Log: slog.New(slog.DiscardHandler)}
	if err := u.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	_, book := p.routeState()
	book.add("agentkernel-a", "api.example.com", func(h *keys.HostUsage) { h.Requests++; h.InputTokens += 10 })
	book.add("agentkernel-b", "api.example.com", func(h *keys.HostUsage) { h.Refused++ })
	if err := u.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	rows := func() map[string]keys.Usage {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, keys.UsageConfigMapName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]keys.Usage{}
		for pod, s := range cm.Data {
			var u keys.Usage
			if err := json.Unmarshal([]byte(s), &u); err != nil {
				t.Fatalf("row %s: %v", pod, err)
			}
			out[pod] = u
		}
		return out
	}
	got := rows()
	if len(got) != 2 || got["agentkernel-a"].Hosts["api.example.com"] != (keys.HostUsage{Requests: 6, InputTokens: 110}) ||
		got["agentkernel-b"].Hosts["api.example.com"].Refused != 1 {
		t.Fatalf("published %+v", got)
	}
	if err := u.Publish(ctx); err != nil || patches != 1 {
		t.Fatalf("nothing changed, yet %d patches (%v)", patches, err)
	}
	delete(live, "agentkernel-b")
	if err := u.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rows(); len(got) != 1 || got["agentkernel-b"].Hosts != nil {
		t.Fatalf("after b went: %+v", got)
	}
}

func TestUsagePublishFailsSayingWhatToDo(t *testing.T) {
	p := &Proxy{}
	u := &UsagePublisher{Client: fakecluster.New(), Namespace: ns, Proxy: p, Exists: func(string) bool { return true }}
	_, book := p.routeState()
	book.add("agentkernel-a", "api.example.com", func(h *keys.HostUsage) { h.Requests++ })
	err := u.Publish(context.Background())
	if err == nil || !strings.Contains(err.Error(), "egress install makes it") {
		t.Fatalf("without the ConfigMap: %v", err)
	}
	if changed := book.takeChanged(); len(changed) != 1 {
		t.Fatalf("a failed publication must be retried: %v", changed)
	}
}
