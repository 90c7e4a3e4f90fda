package realnode

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestLongestLockup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		console string
		want    time.Duration
	}{
		{"a clean boot", "[    1.0] agentkernel-init: 12.5s ready\n", 0},
		{"one short lockup", "[   80.1] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [containerd:412]\n", 22 * time.Second},
		{"the freeze: both CPUs, growing", "" +
			"[   80.1] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [containerd:412]\n" +
			"[   81.0] watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [kworker/1:1H:97]\n" +
			"[  106.1] watchdog: BUG: soft lockup - CPU#0 stuck for 48s! [containerd:412]\n" +
			"[  210.1] watchdog: BUG: soft lockup - CPU#0 stuck for 152s! [containerd:412]\n" +
			"[  211.0] watchdog: BUG: soft lockup - CPU#1 stuck for 153s! [kworker/1:1H:97]\n", 153 * time.Second},
		{"an overflowing number is skipped", "soft lockup - CPU#0 stuck for 99999999999999999999s!\nsoft lockup - CPU#0 stuck for 30s!\n", 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := longestLockup([]byte(tc.console)); got != tc.want {
				t.Errorf("longestLockup = %s, want %s", got, tc.want)
			}
		})
	}
	if longestLockup([]byte("soft lockup - CPU#1 stuck for 153s!")) < hungAfter {
		t.Errorf("the freeze's 153 s is under hungAfter (%s): it would wait for the Ready timeout", hungAfter)
	}
}

// waitReady, the loop Boot waits in, gives up on a hung guest at once and
// still waits out a guest that only had a short lockup.
func TestWaitReadyTellsAHungGuest(t *testing.T) {
	ready := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "realnode"},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
	for _, tc := range []struct {
		name    string
		console string
		hung    bool
	}{
		{"hung", "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [containerd:412]\n" +
			"watchdog: BUG: soft lockup - CPU#0 stuck for 126s! [containerd:412]\n", true},
		{"slow but alive", "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [containerd:412]\n" +
			"agentkernel-init: 95.2s ready\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			n := &Node{
				Name: "realnode", Dir: dir, ConsoleLog: filepath.Join(dir, "console.log"),
				client: fake.NewClientset(ready), exited: make(chan struct{}), log: io.Discard,
			}
			if err := os.WriteFile(n.ConsoleLog, []byte(tc.console), 0o600); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err := n.waitReady(context.Background(), start, time.Minute)
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("waitReady took %s: it should decide on its first looks", took)
			}
			if tc.hung {
				if !errors.Is(err, ErrGuestHung) || !strings.Contains(err.Error(), "stuck for 2m6s") {
					t.Fatalf("waitReady = %v, want ErrGuestHung naming the 2m6s", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("waitReady = %v, want the node Ready", err)
			}
			if n.Timings.GuestInit != 95200*time.Millisecond {
				t.Errorf("guest init %s, want 95.2s from the console", n.Timings.GuestInit)
			}
		})
	}
}
