package sandbox

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	utilversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
)

// MinServerVersion is the oldest Kubernetes API server sandboxes are made
// on: Pod scheduling gates (FenceGate), which keep a sandbox from running
// before its NetworkPolicy exists, are on by default from 1.27 (beta; GA
// in 1.30). An older server drops the gate it does not know, and the Pod
// would be scheduled at once — before its fence. There is no safe
// fallback, so Create refuses such a server up front.
//
// What needs more than this falls back on its own and says so: who made a
// sandbox is read with SelfSubjectReview (authentication/v1, 1.28) and
// left out where it cannot be; workspace snapshots need the CSI snapshot
// API, which discovery finds or not (pkg/snapshot).
var MinServerVersion = utilversion.MajorMinor(1, 27)

// ServerTooOldError: the API server predates MinServerVersion.
type ServerTooOldError struct {
	Version string // the server's gitVersion
}

func (e *ServerTooOldError) Error() string {
	return fmt.Sprintf("the API server is Kubernetes %s; sandboxes need %s or later, whose Pod scheduling gates keep a sandbox from running before its NetworkPolicy exists (an older server drops the gate); use a newer cluster",
		e.Version, "1."+fmt.Sprint(MinServerVersion.Minor()))
}

// serverChecked holds, per clientset, the answer of a server already
// asked: the MCP server and serve make many sandboxes over one clientset.
var serverChecked sync.Map // kubernetes.Interface → error (nil: supported)

// CheckServerVersion returns a ServerTooOldError when the API server is
// older than MinServerVersion. A server whose version cannot be read or
// parsed (a development build, /version refused) is not refused: the gate
// is still sent, and Create still finds a gate the server dropped
// (AdmissionChanges) and removes the Pod.
func CheckServerVersion(ctx context.Context, cs kubernetes.Interface) error {
	remember := reflect.TypeOf(cs).Comparable()
	if got, ok := serverChecked.Load(cs); remember && ok {
		err, _ := got.(error)
		return err
	}
	info, err := cs.Discovery().ServerVersion()
	if err != nil || ctx.Err() != nil {
		return nil // not remembered: the next create asks again
	}
	var result error
	if v, perr := utilversion.ParseGeneric(info.GitVersion); perr == nil && v.Major() > 0 && v.LessThan(MinServerVersion) {
		result = &ServerTooOldError{Version: info.GitVersion}
	}
	if remember {
		serverChecked.Store(cs, result)
	}
	return result
}
