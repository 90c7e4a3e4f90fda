package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
)

// gc deletes a running disposable sandbox past its end, and leaves one
// whose end is ahead, one with an end that does not parse, and a
// persistent one (its setter pauses it; gc would lose unflushed files).
func TestGCTakesSandboxesPastTheirEnd(t *testing.T) {
	ctx := context.Background()
	cs := fakecluster.New()
	ends := map[string]string{
		"over":       time.Now().Add(-time.Second).UTC().Format(time.RFC3339),
		"ahead":      time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"unreadable": "yesterday",
		"kept":       time.Now().Add(-time.Second).UTC().Format(time.RFC3339),
	}
	for name, end := range ends {
		s := NewSpec(name, "ns")
		if name == "kept" {
			s = persistentSpec(name)
		}
		created, err := Create(ctx, cs, &s, CreateOptions{SecretValues: map[string]string{"API_KEY": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		pod := created.Pod
		pod.Annotations[AnnotationEnd] = end
		if _, err := cs.CoreV1().Pods("ns").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	found, err := FindGarbage(ctx, cs, "ns")
	if err != nil {
		t.Fatal(err)
	}
	var sandboxes []Garbage
	for _, g := range found {
		if g.Kind == "sandbox" {
			sandboxes = append(sandboxes, g)
		}
	}
	if len(sandboxes) != 1 || sandboxes[0].Name != "over" || !strings.Contains(sandboxes[0].Why, "ended: its end ("+ends["over"]+") passed") {
		t.Fatalf("sandbox garbage: %+v, want only over, past its end", sandboxes)
	}
	if err := sandboxes[0].Delete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if _, err := Find(ctx, cs, "ns", "over"); err == nil {
		t.Error("the sandbox past its end is still there")
	}
	for _, name := range []string{"ahead", "unreadable", "kept"} {
		if _, err := Find(ctx, cs, "ns", name); err != nil {
			t.Errorf("%s: %v, want it left alone", name, err)
		}
	}
}
