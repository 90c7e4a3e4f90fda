package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what -json writes and -from reads back.
type Report struct {
	Date    time.Time `json:"date"`
	Machine Machine   `json:"machine"`
	Kubectl Binary    `json:"kubectl"`
	Plugin  Binary    `json:"plugin"`
	// Cluster describes the API server and nodes ("" if no row needed one).
	Cluster string `json:"cluster,omitempty"`
	// ClientQPS and ClientBurst are the client rate of the rows that work in
	// this process (negative QPS: no client-side limiter).
	ClientQPS   float32          `json:"clientQPS"`
	ClientBurst int              `json:"clientBurst"`
	Rounds      int              `json:"rounds"`
	Scenarios   []ScenarioResult `json:"scenarios"`
	// RealNode holds test/realnode's times, when given with -realnode.
	RealNode *RealNode `json:"realnode,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	Cores     int     `json:"cores"`
	CPU       string  `json:"cpu"`
	Kernel    string  `json:"kernel"`
	OS        string  `json:"os"`
	MemoryGiB float64 `json:"memoryGiB"`
	// LoadAvg at the start and the end: other work on the machine shows
	// up as noise.
	LoadAvg    string `json:"loadavg"`
	LoadAvgEnd string `json:"loadavgEnd,omitempty"`
}

// Binary is one of the two programs compared.
type Binary struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Build   string `json:"build"` // e.g. "go1.26.8 CGO_ENABLED=0 -trimpath -ldflags=-s -w"
	Size    int64  `json:"size"`
}

// ScenarioResult is one row of the table, with every metric it measured.
type ScenarioResult struct {
	Name    string   `json:"name"`
	Note    string   `json:"note,omitempty"`
	Ours    string   `json:"ours"`
	Kubectl string   `json:"kubectl"`
	Rounds  int      `json:"rounds"`
	Metrics []Metric `json:"metrics"`
	// OursFailed and KubectlFailed are the rounds (warm-up included) that
	// failed, with their errors.
	OursFailed    []string `json:"oursFailed,omitempty"`
	KubectlFailed []string `json:"kubectlFailed,omitempty"`
}

// Metric is one measured quantity of a row, both sides.
type Metric struct {
	Name    string `json:"name"` // "time", "time per command", "peak RSS", "Running"
	Unit    string `json:"unit"` // "ms", "MiB", "pods"
	Ours    Stat   `json:"ours"`
	Kubectl Stat   `json:"kubectl"`
	// Ratio is ours / kubectl of the medians; absent for counts.
	Ratio *float64 `json:"ratio,omitempty"`
	// Of is the total a count is out of.
	Of int `json:"of,omitempty"`
}

// summarise turns a scenario's samples into metrics.
func summarise(r *runResult) ScenarioResult {
	out := ScenarioResult{Name: r.s.Name, Note: r.s.Note, Ours: r.s.Ours.Label, Kubectl: r.s.Kubectl.Label, Rounds: len(r.ours),
		OursFailed: r.oursFailed, KubectlFailed: r.kubectlFailed}
	perOp := func(s Sample) float64 { return float64(s.Wall) / float64(max(s.Ops, 1)) / float64(time.Millisecond) }
	name := "time"
	if len(r.ours) > 0 && r.ours[0].Ops > 1 {
		name = fmt.Sprintf("time per command (of %d)", r.ours[0].Ops)
	}
	out.Metrics = append(out.Metrics, ratioMetric(name, "ms", r, perOp))
	if len(r.ours) > 0 && r.ours[0].Ops > 1 {
		rate := func(s Sample) float64 { return float64(max(s.Ops, 1)) / s.Wall.Seconds() }
		out.Metrics = append(out.Metrics, Metric{Name: "commands per second", Unit: "/s", Ours: stat(values(r.ours, rate)), Kubectl: stat(values(r.kubectl, rate))})
	}
	if all(r, func(s Sample) bool { return s.PeakRSS > 0 }) {
		out.Metrics = append(out.Metrics, ratioMetric("peak RSS", "MiB", r, func(s Sample) float64 { return float64(s.PeakRSS) / (1 << 20) }))
	}
	if all(r, func(s Sample) bool { return s.Of > 0 }) {
		done := func(s Sample) float64 { return float64(s.Done) }
		out.Metrics = append(out.Metrics, Metric{Name: "Running", Unit: "pods", Ours: stat(values(r.ours, done)), Kubectl: stat(values(r.kubectl, done)), Of: r.ours[0].Of})
	}
	return out
}

func ratioMetric(name, unit string, r *runResult, f func(Sample) float64) Metric {
	m := Metric{Name: name, Unit: unit, Ours: stat(values(r.ours, f)), Kubectl: stat(values(r.kubectl, f))}
	if m.Kubectl.Median > 0 {
		ratio := m.Ours.Median / m.Kubectl.Median
		m.Ratio = &ratio
	}
	return m
}

func values(samples []Sample, f func(Sample) float64) []float64 {
	out := make([]float64, len(samples))
	for i, s := range samples {
		out[i] = f(s)
	}
	return out
}

func all(r *runResult, ok func(Sample) bool) bool {
	if len(r.ours) == 0 || len(r.kubectl) == 0 {
		return false
	}
	for _, s := range append(append([]Sample(nil), r.ours...), r.kubectl...) {
		if !ok(s) {
			return false
		}
	}
	return true
}

// format renders one value of a metric for people.
func format(m Metric, v float64) string {
	switch m.Unit {
	case "ms":
		switch {
		case v >= 1000:
			return fmt.Sprintf("%.2f s", v/1000)
		case v >= 10:
			return fmt.Sprintf("%.0f ms", v)
		case v < 0.1: // in-process work of microseconds (a grant lookup)
			return fmt.Sprintf("%.1f µs", v*1000)
		default:
			return fmt.Sprintf("%.1f ms", v)
		}
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	case "pods":
		return fmt.Sprintf("%.0f/%d", v, m.Of)
	case "/s":
		return fmt.Sprintf("%.1f/s", v)
	}
	return fmt.Sprintf("%g %s", v, m.Unit)
}

// cell is a side's value: median and p90 for measurements; for counts the
// worst round, since "all of them, every time" is the claim; for rates the
// median and the 10th percentile (the slow rounds, as p90 is for times).
func cell(m Metric, s Stat) (string, string) {
	if len(s.Samples) == 0 {
		return "—", "—" // a side not measured: a row with no kubectl equivalent
	}
	switch m.Unit {
	case "pods":
		return format(m, s.Min), "worst"
	case "/s":
		return format(m, s.Median), format(m, quantile(sorted(s.Samples), 0.1)) + " p10"
	}
	return format(m, s.Median), format(m, s.P90)
}

func sorted(v []float64) []float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

func ratioText(m Metric) string {
	if m.Ratio == nil {
		return ""
	}
	return fmt.Sprintf("%.2f", *m.Ratio)
}

// header is the context a table needs to be read honestly.
func (r *Report) header() []string {
	load := r.Machine.LoadAvg + " at the start"
	if r.Machine.LoadAvgEnd != "" {
		load += ", " + r.Machine.LoadAvgEnd + " at the end"
	}
	lines := []string{
		fmt.Sprintf("date: %s", r.Date.UTC().Format("2006-01-02 15:04 MST")),
		fmt.Sprintf("machine: %d cores (%s), %s, Linux %s, %.0f GiB, load average %s", r.Machine.Cores, r.Machine.CPU, r.Machine.OS, r.Machine.Kernel, r.Machine.MemoryGiB, load),
		fmt.Sprintf("kubectl: %s, %s, %.1f MB", r.Kubectl.Version, r.Kubectl.Build, float64(r.Kubectl.Size)/1e6),
		fmt.Sprintf("kubectl-agentkernel: %s, %s, %.1f MB", r.Plugin.Version, r.Plugin.Build, float64(r.Plugin.Size)/1e6),
	}
	if r.Cluster != "" {
		lines = append(lines, "cluster: "+r.Cluster)
	}
	qps := fmt.Sprintf("%g/s, burst %d", r.ClientQPS, r.ClientBurst)
	if r.ClientQPS < 0 {
		qps = "no client-side limit"
	}
	lines = append(lines, fmt.Sprintf("rounds: %d per row, interleaved (fewer for the scale rows); in-process client rate: %s", r.Rounds, qps))
	return lines
}

// eachLine calls line for every metric of every row, the row's name on its
// first metric only.
func (r *Report) eachLine(line func(name, metric, o50, o90, k50, k90, ratio string)) {
	for _, s := range r.Scenarios {
		for i, m := range s.Metrics {
			name := s.Name
			if i > 0 {
				name = ""
			}
			o50, o90 := cell(m, m.Ours)
			k50, k90 := cell(m, m.Kubectl)
			line(name, m.Name, o50, o90, k50, k90, ratioText(m))
		}
	}
}

// writeTable prints the report for a terminal.
func (r *Report) writeTable(w io.Writer) error {
	for _, l := range r.header() {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmetric\tagentkernel\tp90\tkubectl\tp90\tratio")
	r.eachLine(func(name, metric, o50, o90, k50, k90, ratio string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, metric, o50, o90, k50, k90, ratio)
	})
	if err := tw.Flush(); err != nil {
		return err
	}
	r.writeFailures(w, "")
	if r.RealNode != nil {
		r.RealNode.writeMarkdown(w)
	}
	return nil
}

// writeMarkdown prints the README's table: medians with p90 in brackets,
// then what each row compares.
func (r *Report) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	for _, l := range r.header() {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	b.WriteString("\n| scenario | metric | agentkernel | kubectl | ratio |\n| --- | --- | --- | --- | --- |\n")
	r.eachLine(func(name, metric, o50, o90, k50, k90, ratio string) {
		fmt.Fprintf(&b, "| %s | %s | %s (%s) | %s (%s) | %s |\n", name, metric, o50, o90, k50, k90, ratio)
	})
	b.WriteString("\nMedian (p90) of the rounds; ratio = agentkernel / kubectl of the medians, below 1 is better; rates: median (p10); Running: the worst round.\n\n")
	for _, s := range r.Scenarios {
		switch {
		case s.Note != "" && s.Kubectl == "":
			fmt.Fprintf(&b, "- **%s**: %s; %s.\n", s.Name, s.Ours, s.Note)
		case s.Note != "":
			fmt.Fprintf(&b, "- **%s**: %s vs %s; %s.\n", s.Name, s.Ours, s.Kubectl, s.Note)
		}
	}
	r.writeFailures(&b, "- ")
	if r.RealNode != nil {
		r.RealNode.writeMarkdown(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFailures lists the rounds that failed: a row's numbers leave them out.
func (r *Report) writeFailures(w io.Writer, bullet string) {
	first := true
	for _, s := range r.Scenarios {
		for _, side := range []struct {
			name   string
			failed []string
		}{{"agentkernel", s.OursFailed}, {"kubectl", s.KubectlFailed}} {
			if len(side.failed) == 0 {
				continue
			}
			if first {
				fmt.Fprintln(w, "\nFailed rounds (left out of the numbers above):")
				first = false
			}
			fmt.Fprintf(w, "%s%s, %s: %d failed; first: %s\n", bullet, s.Name, side.name, len(side.failed), oneLine(reason(side.failed[0]), 200))
		}
	}
}

// reason is what a failed command said: the last line of its error output
// (after whatever it logged before), without the command line and status.
func reason(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	last := lines[len(lines)-1]
	if i := strings.LastIndex(last, "exit status "); i >= 0 {
		if j := strings.Index(last[i:], ": "); j >= 0 {
			return last[i+j+2:]
		}
	}
	return last
}

// oneLine shortens an error for the table.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// writeIntoReadme replaces what lies between the speed:begin and speed:end
// marker lines of path with the markdown table.
func (r *Report) writeIntoReadme(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(b)
	begin := strings.Index(text, "<!-- speed:begin")
	end := strings.Index(text, "<!-- speed:end -->")
	if begin < 0 || end < begin {
		return fmt.Errorf("%s has no <!-- speed:begin ... --> and <!-- speed:end --> lines", path)
	}
	begin += strings.Index(text[begin:], "\n") + 1
	var table strings.Builder
	if err := r.writeMarkdown(&table); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(text[:begin]+table.String()+text[end:]), 0o644)
}

func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}
