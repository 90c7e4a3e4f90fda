package realnode

import (
	"testing"
	"time"
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
