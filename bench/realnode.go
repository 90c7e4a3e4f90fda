package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// realnodePrefix is test/realnode's SpeedPrefix (a test file, so not
// importable): the lines of its `go test -v` log that carry one time each.
const realnodePrefix = "realnode-speed:"

// RealNode is what test/realnode measured on a real kubelet in a qemu guest
// (TCG emulation: no KVM), read from its test log with -realnode.
type RealNode struct {
	Source  string          `json:"source"`
	Metrics map[string]Stat `json:"metrics"` // milliseconds, by metric name
}

// readRealNode collects the realnode-speed lines of a test log.
func readRealNode(path string) (*RealNode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rn, err := parseRealNode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rn.Source = path
	return rn, nil
}

func parseRealNode(r io.Reader) (*RealNode, error) {
	values := map[string][]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		_, rest, ok := strings.Cut(sc.Text(), realnodePrefix)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || !strings.HasSuffix(f[1], "ms") {
			return nil, fmt.Errorf("malformed line %q: want %q", sc.Text(), realnodePrefix+" METRIC MSms")
		}
		ms, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "ms"), 64)
		if err != nil {
			return nil, fmt.Errorf("malformed line %q: %w", sc.Text(), err)
		}
		values[f[0]] = append(values[f[0]], ms)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("no %q lines: pass the output of go test -v ./test/realnode", realnodePrefix)
	}
	rn := &RealNode{Metrics: map[string]Stat{}}
	for k, v := range values {
		rn.Metrics[k] = stat(v)
	}
	return rn, nil
}

// realnodeRows pairs the plugin's metrics with kubectl's where the realnode
// tests measured both.
var realnodeRows = []struct{ name, ours, kubectl string }{
	{"create → Running", "plugin-create-running", ""},
	{"exec -- true", "plugin-exec-true", "kubectl-exec-true"},
	{"delete → gone", "plugin-delete-gone", ""},
	{"create --persist → Running", "plugin-create-persist-running", ""},
	{"suspend → Pod gone", "plugin-suspend-gone", ""},
	{"resume → Running", "plugin-resume-running", ""},
	{"exec on an idle-suspended sandbox (auto-resume)", "plugin-exec-auto-resume", ""},
	{"create --from FILE (a snapshot) → Running, filled", "plugin-from-file-running", ""},
}

func (rn *RealNode) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "\nOn a real kubelet (test/realnode: containerd and runc in a qemu guest under **TCG emulation**, no KVM — far slower than real hardware; not interleaved):\n\n")
	fmt.Fprintln(w, "| scenario | agentkernel | kubectl | samples |\n| --- | --- | --- | --- |")
	ms := Metric{Unit: "ms"}
	known := map[string]bool{}
	for _, row := range realnodeRows {
		known[row.ours], known[row.kubectl] = true, true
		o, ok := rn.Metrics[row.ours]
		if !ok {
			continue
		}
		k, n := "—", fmt.Sprint(len(o.Samples))
		if s, ok := rn.Metrics[row.kubectl]; ok {
			k = format(ms, s.Median)
			n += fmt.Sprintf(" / %d", len(s.Samples))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", row.name, format(ms, o.Median), k, n)
	}
	var other []string
	for k := range rn.Metrics {
		if !known[k] {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	for _, k := range other {
		fmt.Fprintf(w, "| %s | %s | | %d |\n", k, format(ms, rn.Metrics[k].Median), len(rn.Metrics[k].Samples))
	}
}
