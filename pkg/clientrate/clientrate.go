// Package clientrate holds the client-side rate limit of every API client
// the plugin builds, for the command line and for whoever measures it
// (bench, the scale tests) alike.
package clientrate

// QPS and Burst are the client-side rate limit of every API
// client the plugin builds: none. client-go's default (5 requests/s, burst 10)
// makes one process that manages many sandboxes wait on itself: a create is
// 5-7 requests, so 100 concurrent creates from one process (a pool, an MCP
// server, a script) took 79 s at 5/s and 7 s without the limit, and
// `delete --all` of 100 sandboxes 28 s instead of 16 (measured on the local
// test cluster, 2 busy cores: go run ./bench -run 'one process' -qps 5
// -burst 10). The API server's Priority and Fairness (on by default since
// 1.20, GA in 1.29) is the limiter that knows the server's load: it queues,
// or answers 429 with Retry-After, which client-go honours. SIG API
// Machinery recommends relying on it rather than on a client-side token
// bucket, and controller-runtime stopped setting one by default for the same
// reason (kubernetes-sigs/controller-runtime#3119).
const (
	QPS   float32 = -1 // negative: no client-side rate limiter
	Burst int     = 0
)

// Parallel is how many independent requests one command keeps in flight when
// it works through many sandboxes (delete --all, delete -l, several names):
// with no client-side limit, this is what bounds one process's share of the
// API server. It matches the many-process create the scale rows measure
// (25 processes, each one create at a time), so tearing down is at least as
// parallel as building up; Priority and Fairness queues whatever is more than
// the server can take. One after the other, `delete --all` of 600 sandboxes
// took 64 s where creating 500 from 25 processes took 14 s (issue #27).
const Parallel = 32
