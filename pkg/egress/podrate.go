package egress

import (
	"sync"
	"time"
)

// podRates is a token bucket per sandbox Pod for the requests it sends
// through the key routes: a prompt-injected agent that loops spends at
// most perMinute requests a minute of its owner's key, and one sandbox
// cannot take the API's rate limit from the others.
type podRates struct {
	perMinute float64

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newPodRates(perMinute int) *podRates {
	return &podRates{perMinute: float64(perMinute), buckets: map[string]*bucket{}}
}

// allow takes a token of pod's bucket, which holds a minute's worth when
// full and refills continuously.
func (r *podRates) allow(pod string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls++; r.calls%1024 == 0 {
		r.forgetFull(now)
	}
	b, ok := r.buckets[pod]
	if !ok {
		b = &bucket{tokens: r.perMinute, last: now}
		r.buckets[pod] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(r.perMinute, b.tokens+elapsed.Minutes()*r.perMinute)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// forgetFull drops the buckets that have refilled: a Pod that is gone,
// or idle for a minute, costs nothing.
func (r *podRates) forgetFull(now time.Time) {
	for pod, b := range r.buckets {
		if b.tokens+now.Sub(b.last).Minutes()*r.perMinute >= r.perMinute {
			delete(r.buckets, pod)
		}
	}
}
