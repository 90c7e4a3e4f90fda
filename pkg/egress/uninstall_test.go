package egress

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestUninstall(t *testing.T) {
	ctx := context.Background()
	cs, rec := recordingCluster("")
	if _, err := Install(ctx, cs, testConfig(), InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	user := sandboxPod(t, "a", "10.244.0.5", "example.com")
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, user, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := Uninstall(ctx, cs, ns, false, 0)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "(a)") {
		t.Fatalf("uninstall with a sandbox using it: %v", err)
	}
	n := len(rec.list())
	removed, err := Uninstall(ctx, cs, ns, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"delete deployments", "delete services", "delete configmaps", "delete secrets", "delete rolebindings", "delete roles", "delete serviceaccounts", "delete networkpolicies"}
	if got := rec.list()[n:]; !slices.Equal(got, want) {
		t.Fatalf("deletes %v, want %v", got, want)
	}
	if len(removed) != 8 {
		t.Fatalf("removed %v", removed)
	}
	st, err := GetStatus(ctx, cs, ns)
	if err != nil || st.Installed {
		t.Fatalf("status after uninstall: %+v, %v", st, err)
	}
}
