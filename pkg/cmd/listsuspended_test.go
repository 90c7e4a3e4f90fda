package cmd

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/agentkernel/kubectl-agentkernel/pkg/cmd/internal/clitest"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A persistent sandbox's workspace, suspended since "since" for "why".
func suspendedWorkspace(name string, since time.Time, why string, retain time.Duration) *corev1.PersistentVolumeClaim {
	s := sandbox.NewSpec(name, "test")
	s.Image = "example.com/agent:1"
	s.Workspace = &sandbox.Workspace{Size: resource.MustParse("5Gi"), StorageClass: "fast", Retain: retain}
	w := s.WorkspaceClaim()
	w.CreationTimestamp = metav1.NewTime(since.Add(-time.Hour))
	w.Annotations[sandbox.AnnotationSuspendedAt] = since.UTC().Format(time.RFC3339)
	w.Annotations[sandbox.AnnotationSuspendedWhy] = why
	return w
}

// list shows suspended sandboxes beside running ones: STATUS Suspended,
// when gc may take the workspace, and (-o wide) since when, why, and the
// workspace's size and class; -o name and -o json include them.
func TestListShowsSuspendedSandboxes(t *testing.T) {
	now := time.Now()
	running := sandboxPod("alpha", nil)
	kept := suspendedWorkspace("kept", now.Add(-2*time.Hour), sandbox.SuspendedIdle, 0)
	retainedFor := suspendedWorkspace("brief", now.Add(-2*time.Hour), sandbox.SuspendedByUser, 24*time.Hour)
	tf := clitest.Factory(t, running, kept, retainedFor)
	list := func(s genericiooptions.IOStreams) *cobra.Command { return NewCmdList(tf, s) }

	out, _, err := clitest.RunCobra(t, list)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kept    Suspended   example.com/agent:1", "brief   Suspended", "gc in 2", "alpha   Running"} {
		if !strings.Contains(out, want) {
			t.Errorf("list does not show %q:\n%s", want, out)
		}
	}
	wide, _, err := clitest.RunCobra(t, list, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"5Gi fast", "suspended 120m ago (idle)", "WORKSPACE", "SUSPENDED"} {
		if !strings.Contains(wide, want) {
			t.Errorf("list -o wide does not show %q:\n%s", want, wide)
		}
	}
	names, _, err := clitest.RunCobra(t, list, "-o", "name")
	if err != nil || names != "sandbox/alpha\nsandbox/brief\nsandbox/kept\n" && names != "sandbox/alpha\nsandbox/kept\nsandbox/brief\n" {
		t.Errorf("list -o name: %q, %v", names, err)
	}
	kinds, _, err := clitest.RunCobra(t, list, "-o", "jsonpath={.items[*].kind}")
	if err != nil || kinds != "Pod PersistentVolumeClaim PersistentVolumeClaim" {
		t.Errorf("list -o jsonpath of kinds: %q, %v", kinds, err)
	}
}
