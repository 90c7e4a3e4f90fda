package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The row's repository is 1 MiB, both sides copy it to places of their
// own, and a side whose result did not come back whole fails the row.
func TestOneShotRow(t *testing.T) {
	tmp := t.TempDir()
	row, err := newOneShotRow(tmp, func(name string) ([]byte, error) { return []byte("name: " + name + "\n"), nil })
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	err = filepath.Walk(row.repo, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			size += info.Size()
		}
		return err
	})
	if err != nil || size != 1<<20 {
		t.Fatalf("repository of %d bytes (%v), want 1 MiB", size, err)
	}
	argv := func(bin string) argvFunc {
		return func(sub string, args ...string) []string { return append([]string{bin, sub, "-n", "ns"}, args...) }
	}
	ours := row.ours(argv("plugin"), 3)
	if len(ours) != 1 || !strings.Contains(strings.Join(ours[0], " "), "--copy-in "+row.repo+":/workspace/oneshot-ours-3") {
		t.Fatalf("ours: %q", ours)
	}
	theirs, err := row.kubectl(argv("kubectl"), 3)
	if err != nil || len(theirs) != 6 || theirs[0][1] != "create" || theirs[5][1] != "delete" {
		t.Fatalf("kubectl: %q %v", theirs, err)
	}
	if pod, err := os.ReadFile(theirs[0][len(theirs[0])-1]); err != nil || string(pod) != "name: oneshot-k-3\n" {
		t.Fatalf("kubectl's pod file: %q %v", pod, err)
	}
	if err := row.check("ours", 3); err == nil {
		t.Fatal("a result that never came back passed the check")
	}
	dir := filepath.Join(row.out, "ours-3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for body, ok := range map[string]bool{"1048576\n": true, "  1048576\n": true, "1000\n": false} {
		if err := os.WriteFile(filepath.Join(dir, "bytes.txt"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := row.check("ours", 3); (err == nil) != ok {
			t.Errorf("check of %q: %v", body, err)
		}
	}
}

func TestSizedOnlyTheDefaultSize(t *testing.T) {
	e := &Env{Plugin: "p", Namespace: "ns", SandboxCPU: "100m", SandboxMem: "128Mi"}
	for _, c := range []struct {
		sub  string
		args []string
		want string
	}{
		{"create", []string{"c0", "--network", "open"}, "p create -n ns c0 --network open --cpu 100m --memory 128Mi"},
		{"create", []string{"c0", "--pool", "x"}, "p create -n ns c0 --pool x"},
		{"create", []string{"c0", "--cpu", "1"}, "p create -n ns c0 --cpu 1"},
		{"run", []string{"r", "--copy-in", "a:b", "--", "sh", "--cpu"}, "p run -n ns r --copy-in a:b --cpu 100m --memory 128Mi -- sh --cpu"},
		{"delete", []string{"c0"}, "p delete -n ns c0"},
	} {
		if got := strings.Join(e.ours(c.sub, c.args...), " "); got != c.want {
			t.Errorf("ours(%s %v) = %q, want %q", c.sub, c.args, got, c.want)
		}
	}
	if got := (&Env{Plugin: "p", Namespace: "ns"}).ours("create", "c0"); len(got) != 5 {
		t.Errorf("without -cpu/-memory: %v", got)
	}
}
