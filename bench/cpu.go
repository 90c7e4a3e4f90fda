package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentkernel/kubectl-agentkernel/test/cluster/localcluster"
)

// Where the CPU goes while a row runs: each process of the local control
// plane (its CPU time from /proc/PID/stat) and this process, whose
// in-process clients are the row's. A cluster the bench did not start
// (-kubeconfig) shows this process only.

// userHZ is the unit of /proc/PID/stat's utime and stime (USER_HZ, 100 on
// every Linux the kernel's ABI allows).
const userHZ = 100

// cpuSnapshot is the CPU time each measured process has used so far.
type cpuSnapshot struct {
	at    time.Time
	procs []localcluster.Component
	used  map[int]time.Duration // by PID
	self  time.Duration
}

// takeCPU reads the CPU time of procs and of this process now.
func takeCPU(procs []localcluster.Component) cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), procs: procs, used: map[int]time.Duration{}, self: selfCPU()}
	for _, p := range procs {
		if d, err := procCPU(p.PID); err == nil {
			s.used[p.PID] = d
		}
	}
	return s
}

// since says what each process used between then and s, largest first
// where it matters: "kube-apiserver 7.1s, etcd 1.2s, …, this process (the
// clients) 3.0s: 12.3 of 17.2 core-seconds (2 cores × 8.6s)".
func (s cpuSnapshot) since(then cpuSnapshot) string {
	wall := s.at.Sub(then.at)
	var parts []string
	total := s.self - then.self
	for _, p := range s.procs {
		now, ok1 := s.used[p.PID]
		before, ok2 := then.used[p.PID]
		if !ok1 || !ok2 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.1fs", p.Name, (now-before).Seconds()))
		total += now - before
	}
	parts = append(parts, fmt.Sprintf("this process (the clients) %.1fs", (s.self-then.self).Seconds()))
	cores := runtime.NumCPU()
	return fmt.Sprintf("%s: %.1f of %.1f core-seconds (%d cores × %.1fs)",
		strings.Join(parts, ", "), total.Seconds(), float64(cores)*wall.Seconds(), cores, wall.Seconds())
}

// procCPU is utime + stime of pid (fields 14 and 15 of /proc/PID/stat,
// counted after the command name, which may hold spaces and parentheses).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat line %q", stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat field %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// selfCPU is this process's user + system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profileAPIServer, with BENCH_APISERVER_PROFILE=FILE, records a CPU
// profile of the API server (its /debug/pprof, on by default) while a row
// runs, and returns the function that ends it (the profile covers
// seconds, so start it with the work: the API server stops on its own).
func profileAPIServer(ctx context.Context, e *Env, seconds int) func() {
	path := os.Getenv("BENCH_APISERVER_PROFILE")
	if path == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, err := e.Clientset.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
			Param("seconds", strconv.Itoa(seconds)).Timeout(time.Duration(seconds+60) * time.Second).DoRaw(ctx)
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: the API server's profile:", err)
			return
		}
		fmt.Fprintf(os.Stderr, "bench: the API server's CPU profile in %s (go tool pprof -top %s)\n", path, path)
	}()
	return func() { <-done }
}
