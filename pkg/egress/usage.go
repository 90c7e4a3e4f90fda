package egress

import (
	"maps"
	"slices"
	"sync"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// usageBook counts what each sandbox Pod spent through the key routes, per
// API host, and remembers which Pods changed since it was last read.
type usageBook struct {
	mu      sync.Mutex
	pods    map[string]keys.Usage
	changed map[string]bool
}

func newUsageBook() *usageBook {
	return &usageBook{pods: map[string]keys.Usage{}, changed: map[string]bool{}}
}

// add changes pod's counts for host.
func (b *usageBook) add(pod, host string, change func(*keys.HostUsage)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.pods[pod]
	if !ok {
		u = keys.Usage{Hosts: map[string]keys.HostUsage{}}
		b.pods[pod] = u
	}
	h := u.Hosts[host]
	change(&h)
	u.Hosts[host] = h
	b.changed[pod] = true
}

// seed starts pod's counts from what was published before (by a proxy
// that restarted), unless this one already counted for it.
func (b *usageBook) seed(pod string, u keys.Usage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.pods[pod]; ok || u.Hosts == nil {
		return
	}
	b.pods[pod] = keys.Usage{Hosts: maps.Clone(u.Hosts)}
}

// takeChanged returns the counts of the Pods that changed since the last
// call, and forgets that they did.
func (b *usageBook) takeChanged() map[string]keys.Usage {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]keys.Usage, len(b.changed))
	for pod := range b.changed {
		out[pod] = keys.Usage{Hosts: maps.Clone(b.pods[pod].Hosts)}
	}
	clear(b.changed)
	return out
}

// markChanged says pods changed again (a publication that failed).
func (b *usageBook) markChanged(pods []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, pod := range pods {
		if _, ok := b.pods[pod]; ok {
			b.changed[pod] = true
		}
	}
}

// get returns pod's counts.
func (b *usageBook) get(pod string) (keys.Usage, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.pods[pod]
	return keys.Usage{Hosts: maps.Clone(u.Hosts)}, ok
}

// forget drops the Pods gone, and returns which it dropped.
func (b *usageBook) forget(gone func(pod string) bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var dropped []string
	for pod := range b.pods {
		if gone(pod) {
			delete(b.pods, pod)
			delete(b.changed, pod)
			dropped = append(dropped, pod)
		}
	}
	slices.Sort(dropped)
	return dropped
}

// Usage returns what the Pod spent through the key routes, as counted by
// this proxy.
func (p *Proxy) Usage(pod string) (keys.Usage, bool) {
	_, book := p.routeState()
	return book.get(pod)
}
