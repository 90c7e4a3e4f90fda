package e2e

import (
	"strconv"
	"strings"
	"testing"
)

func TestExecExitCodesAndStdin(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "demo")

	for _, code := range []int{0, 1, 42, 127} {
		r := plugin(t, "", "exec", "demo", "-n", ns, "--", "sh", "-c", "exit "+strconv.Itoa(code))
		if r.code != code {
			t.Errorf("exit %d came back as %d:\n%s", code, r.code, r)
		}
	}
	r := plugin(t, "", "exec", "demo", "-n", ns, "--", "no-such-command-e2e")
	if r.code != 127 {
		t.Errorf("a missing command: exit %d, want 127:\n%s", r.code, r)
	}

	r = mustPlugin(t, "hello from stdin\n", "exec", "-i", "demo", "-n", ns, "--", "cat")
	if r.stdout != "hello from stdin\n" {
		t.Fatalf("stdin piping: %q", r.stdout)
	}
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	r = mustPlugin(t, big, "exec", "-i", "demo", "-n", ns, "--", "wc", "-c")
	if strings.TrimSpace(r.stdout) != strconv.Itoa(len(big)) {
		t.Fatalf("1 MiB through stdin came out as %q bytes", r.stdout)
	}

	r = mustPlugin(t, "", "exec", "demo", "-n", ns, "-e", "GREETING=hi there", "-w", "/", "--", "sh", "-c", `echo "$GREETING from $(pwd)"`)
	if r.stdout != "hi there from /\n" {
		t.Fatalf("-e/-w: %q", r.stdout)
	}
	r = mustPlugin(t, "", "exec", "demo", "-n", ns, "--", "id", "-u")
	if uid := strings.TrimSpace(r.stdout); uid == "0" || uid == "" {
		t.Fatalf("the sandbox command runs as uid %q", uid)
	}
	// Output and stderr are kept apart.
	r = plugin(t, "", "exec", "demo", "-n", ns, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.stdout != "out\n" || !strings.Contains(r.stderr, "err") {
		t.Fatalf("streams: %s", r)
	}
}
