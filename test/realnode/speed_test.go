package realnode

import (
	"testing"
	"time"
)

// SpeedPrefix starts each test-log line that carries one measured time of a
// command on the real kubelet: "realnode-speed: METRIC MILLISECONDSms". The
// bench reads them from a `go test -v` log (go run ./bench -realnode LOG)
// into the README's real-node row. The guest runs under qemu's TCG
// emulation, without KVM: these times are far slower than any real node's
// and say only that the path works end to end, not how fast it is.
const SpeedPrefix = "realnode-speed:"

// speedSamples is how many times the cheap rows (exec true) are timed: one
// sample under TCG says little; the slow ones (create, delete) run once.
const speedSamples = 3

// logSpeed writes one such line; metric is a word without spaces.
func logSpeed(t testing.TB, metric string, d time.Duration) {
	t.Helper()
	t.Logf("%s %s %dms", SpeedPrefix, metric, d.Milliseconds())
}
