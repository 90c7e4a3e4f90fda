package realnode

import (
	"errors"
	"regexp"
	"strconv"
	"time"
)

// ErrGuestHung is returned by Boot when the guest's kernel reports a CPU
// stuck for longer than hungAfter. Under TCG a boot froze this way once in
// five (both vCPUs in soft lockup while containerd imported the images, for
// as long as anyone watched); a fresh boot came up. Telling a hang apart
// lets the caller boot again minutes before the Ready timeout would fire.
var ErrGuestHung = errors.New("the realnode guest hung")

// hungAfter is how long one CPU may be reported stuck before the guest is
// called hung. The kernel reports a soft lockup after 20 s and then again
// every 20-odd seconds with the growing total, so a guest slowed by a busy
// host shows 2x s now and then; 2 min without the watchdog thread running
// is a kernel that will not come back.
const hungAfter = 2 * time.Minute

var softLockup = regexp.MustCompile(`soft lockup - CPU#\d+ stuck for (\d+)s`)

// longestLockup is the longest soft lockup the console reports, 0 if none.
func longestLockup(console []byte) time.Duration {
	var longest time.Duration
	for _, m := range softLockup.FindAllSubmatch(console, -1) {
		s, err := strconv.Atoi(string(m[1]))
		if err != nil {
			continue
		}
		if d := time.Duration(s) * time.Second; d > longest {
			longest = d
		}
	}
	return longest
}
