package procs

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// An ended supervisor stays a zombie until its parent reaps it — PID 1
// of the sandbox, which may do that only after its own sleep. Counted
// alive, it made every process look running up to two seconds after it
// ended (commands.run('true') took 2 s through E2B's SDK).
func TestZombieIsNotAlive(t *testing.T) {
	for name, r := range runners(t) {
		t.Run(name, func(t *testing.T) {
			// The parent execs into sleep, which never reaps its child; the
			// child ends after that (had it ended before, the shell could
			// have reaped it).
			parent := exec.Command("sh", "-c", `sh -c 'sleep 0.2' & echo $!; exec sleep 5`)
			out, err := parent.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := parent.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = parent.Process.Kill(); _ = parent.Wait() })
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			zombie := strings.TrimSpace(line)
			// Wait until the child has ended (a zombie: state Z).
			deadline := time.Now().Add(5 * time.Second)
			for {
				stat, _ := exec.Command("cat", "/proc/"+zombie+"/stat").Output()
				if i := strings.LastIndex(string(stat), ") "); i >= 0 && strings.HasPrefix(string(stat)[i+2:], "Z") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("pid %s never became a zombie: %q", zombie, stat)
				}
				time.Sleep(10 * time.Millisecond)
			}
			script := lib + `ak_stat "$1" || { echo gone; exit 0; }
ak_alive "$1" "$ak_st" && echo alive || echo ended`
			var stdout strings.Builder
			if err := r.Run(ctxT(t), []string{"sh", "-c", script, "test", "/nonexistent", "/nonexistent", zombie}, nil, &stdout, nil); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(stdout.String()); got != "ended" {
				t.Fatalf("a zombie's state: %q, want ended", got)
			}
		})
	}
}
