// Package doctor checks what a cluster and a namespace actually give the
// plugin's sandboxes: whether the API server answers, what Pod Security
// enforces, which permissions the user has, what admission would do to a
// default sandbox, which LimitRanges, ResourceQuotas, RuntimeClasses,
// StorageClasses, VolumeSnapshotClasses, DNS and other NetworkPolicies
// there are, and (with a probe) whether NetworkPolicy is enforced at all. Each check yields lines of ok, warn or
// fail, each saying what was found and, when it is not ok, what to do.
package doctor

import (
	"context"
	"fmt"
	"time"

	snapshotclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// Status of one finding.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one line of the report.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Found  string `json:"found"`
	// Action says what to do about a warn or fail.
	Action string `json:"action,omitempty"`
}

// Env is what the checks work with.
type Env struct {
	Clientset kubernetes.Interface
	// Snapshots reads VolumeSnapshotClasses (CSI snapshots); nil skips
	// that part of the snapshots check.
	Snapshots snapshotclient.Interface
	Namespace string
	Server    string
	// Probe, if set, starts two short-lived sandboxes to see whether
	// NetworkPolicy is enforced.
	Probe *Probe
	// Progress hears what a slow check is doing; nil is silent.
	Progress func(string)

	user string // as the identity check learnt it, for messages
}

// Probe configures the network probe.
type Probe struct {
	// Image needs sh, httpd, nc and timeout (busybox has them).
	Image   string
	Timeout time.Duration
	// Exec runs commands in a sandbox's Pod.
	Exec func(*corev1.Pod) sandbox.Runner
}

// Check is one named check.
type Check struct {
	Name string
	Run  func(ctx context.Context, env *Env) []Result
}

// Checks run in this order; a new check is one line here.
var Checks = []Check{
	{"api-server", checkAPIServer},
	{"identity", checkIdentity},
	{"namespace", checkNamespace},
	{"uid-range", checkUIDRange},
	{"permissions", checkPermissions},
	{"admission", checkAdmission},
	{"autopilot", checkAutopilot},
	{"limit-ranges", checkLimitRanges},
	{"resource-quotas", checkResourceQuotas},
	{"runtime-classes", checkRuntimeClasses},
	{"storage", checkStorage},
	{"snapshots", checkSnapshots},
	{"dns", checkDNS},
	{"other-policies", checkOtherPolicies},
	{"network-policy", checkNetworkPolicy},
	{"pools", checkPools},
	{"model-keys", checkKeyTable},
}

// Run runs every check. When the API server does not answer, nothing else
// can be asked, and the report ends there.
func Run(ctx context.Context, env *Env) []Result {
	var out []Result
	for _, c := range Checks {
		results := c.Run(ctx, env)
		for i := range results {
			if results[i].Check == "" {
				results[i].Check = c.Name
			}
		}
		out = append(out, results...)
		if c.Name == "api-server" && Failed(results) > 0 {
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	return out
}

// Failed counts the failures.
func Failed(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Status == Fail {
			n++
		}
	}
	return n
}

func ok(format string, args ...any) Result {
	return Result{Status: OK, Found: fmt.Sprintf(format, args...)}
}

func warn(found, action string) Result { return Result{Status: Warn, Found: found, Action: action} }

func fail(found, action string) Result { return Result{Status: Fail, Found: found, Action: action} }

func (e *Env) progress(format string, args ...any) {
	if e.Progress != nil {
		e.Progress(fmt.Sprintf(format, args...))
	}
}

// rbacHint is the command that prints the Role an admin can apply.
func (e *Env) rbacHint() string {
	subject := "--user YOU"
	if e.user != "" {
		subject = "--user " + e.user
	}
	return fmt.Sprintf("ask an admin to apply: kubectl agentkernel rbac -n %s %s | kubectl apply -f -", e.Namespace, subject)
}
