package sandbox

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
)

// fakeCluster is the one fake API server (internal/fakecluster): UIDs and
// names from generateName on create, dry runs that store nothing, UID
// preconditions on delete.
func fakeCluster(objects ...runtime.Object) *fake.Clientset {
	return fakecluster.New(objects...)
}
