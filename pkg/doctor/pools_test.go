package doctor

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/agentkernel/kubectl-agentkernel/pkg/pool"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// poolObjects are a pool's PodTemplate and members made from it, each
// member in the state given (ready, or waiting with a reason).
func poolObjects(t *testing.T, name string, size int, members ...string) []runtime.Object {
	t.Helper()
	p, err := pool.NewPool(name, sandbox.NewSpec("", "agents"), size)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := p.PodTemplate()
	tmpl.UID = types.UID("uid-" + name)
	objs := []runtime.Object{tmpl}
	for i, state := range members {
		pod := &corev1.Pod{
			ObjectMeta: *tmpl.Template.ObjectMeta.DeepCopy(),
			Spec:       *tmpl.Template.Spec.DeepCopy(),
		}
		pod.Name = sandbox.PoolMemberPrefix(name) + string(rune('a'+i))
		pod.Namespace = "agents"
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "PodTemplate", Name: tmpl.Name, UID: tmpl.UID}}
		if state == "ready" {
			pod.Status.Phase = corev1.PodRunning
			pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		} else {
			pod.Status.Phase = corev1.PodPending
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: sandbox.ContainerName,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: state, Message: "429 Too Many Requests"}}}}
		}
		objs = append(objs, pod)
	}
	return objs
}

func TestPools(t *testing.T) {
	find := func(t *testing.T, objs ...runtime.Object) []Result {
		t.Helper()
		env := &Env{Clientset: cluster(t, "v1.37.2", nil, objs...), Namespace: "agents"}
		return checkPools(context.Background(), env)
	}
	if r := find(t); len(r) != 1 || r[0].Status != OK || !strings.Contains(r[0].Found, "no warm pool") {
		t.Errorf("no pool: %+v", r)
	}

	full := poolObjects(t, "full", 2, "ready", "ready")
	short := poolObjects(t, "short", 3, "ready")
	stuck := poolObjects(t, "stuck", 2, "ready", "ImagePullBackOff")
	broken := poolObjects(t, "broken", 1)
	broken[0].(*corev1.PodTemplate).Annotations[pool.AnnotationPoolSize] = "many"
	var all []runtime.Object
	for _, o := range [][]runtime.Object{full, short, stuck, broken} {
		all = append(all, o...)
	}
	got := map[string]Result{}
	for _, r := range find(t, all...) {
		for _, name := range []string{"full", "short", "stuck", "broken"} {
			if strings.Contains(r.Found, `pool "`+name+`"`) {
				got[name] = r
			}
		}
	}
	for name, want := range map[string]struct {
		status Status
		found  string
	}{
		"full":   {OK, `pool "full": 2 of 2 ready, 0 starting, 0 claimed`},
		"short":  {Warn, "1 of 3 ready"},
		"stuck":  {Fail, "members stuck: ImagePullBackOff: 429 Too Many Requests"},
		"broken": {Fail, `annotation "many" is not a size`},
	} {
		r, ok := got[name]
		if !ok || r.Status != want.status || !strings.Contains(r.Found, want.found) {
			t.Errorf("pool %s: %+v, want %s with %q", name, r, want.status, want.found)
		}
		if r.Status != OK && r.Action == "" {
			t.Errorf("pool %s: %s says nothing to do", name, r.Status)
		}
	}
}
