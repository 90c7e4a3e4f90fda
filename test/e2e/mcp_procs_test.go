package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// A background process through the MCP Inspector, one session per call:
// started in one session, it runs on after it; later sessions (an agent
// that restarted) list it, read its output from offsets, write to its
// stdin, and end it. The server keeps nothing of it: the sandbox does.
func TestMCPInspectorProcesses(t *testing.T) {
	requireCluster(t)
	ns := newNamespace(t)
	srv := newInspectorServer(t, ns)
	out := srv.call(nil, "tools/list")
	var list struct{ Tools []sdk.Tool }
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatal(err)
	}
	tools := map[string]sdk.Tool{}
	for _, tool := range list.Tools {
		tools[tool.Name] = tool
	}
	for name, readOnly := range map[string]bool{"start_process": false, "list_processes": true, "process_output": true, "send_process_input": false, "kill_process": false} {
		tool, ok := tools[name]
		if !ok {
			t.Fatalf("tools/list lacks %s: %s", name, out)
		}
		if a := tool.Annotations; a == nil || a.ReadOnlyHint != readOnly || (!readOnly && (a.DestructiveHint == nil || !*a.DestructiveHint)) {
			t.Errorf("%s: annotations %+v, want read-only %v (destructive otherwise)", name, a, readOnly)
		}
	}

	created := srv.tool([]string{"--keep"}, "create_sandbox", "name=dev", "ttl=20m")
	if created["name"] != "dev" || created["usable"] != true {
		t.Fatalf("create_sandbox: %v", created)
	}
	adopt := []string{"--adopt", "dev"}
	// A server of sorts: it says where it serves, then answers each line
	// it reads. Should the test fail before it ends the process, the
	// process ends itself (kwok's sandboxes are processes of this host,
	// which a deleted Pod does not end).
	const script = `(sleep 300; kill $$) >/dev/null 2>&1 & echo "serving on $PORT"; while read -r line; do echo "got $line"; done`
	started := srv.tool(adopt, "start_process", "sandbox=dev", "tag=web", "open_stdin=true", "shell="+script, `env={"PORT":"8000"}`)
	pid, _ := started["pid"].(float64)
	if pid <= 0 || started["state"] != "running" {
		t.Fatalf("start_process: %v", started)
	}

	listed := srv.tool(adopt, "list_processes", "sandbox=dev")
	procs, _ := listed["processes"].([]any)
	// kwok's sandboxes share this host's /run, so other tests' processes
	// may be listed too; a real sandbox lists its own only.
	var ours map[string]any
	for _, p := range procs {
		if p, _ := p.(map[string]any); p["pid"] == pid {
			ours = p
		}
	}
	if ours == nil {
		t.Fatalf("list_processes lacks pid %v: %v", pid, listed)
	}
	if ours["tag"] != "web" || ours["state"] != "running" || fmt.Sprint(ours["env_names"]) != "[PORT]" {
		t.Errorf("listed %v", ours)
	}

	const first = "serving on 8000\n"
	read := srv.tool(adopt, "process_output", "sandbox=dev", "tag=web", "wait_seconds=60", fmt.Sprintf("max_bytes=%d", len(first)))
	if read["stdout"] != first || read["state"] != "running" || read["next_stdout_offset"] != float64(len(first)) {
		t.Fatalf("process_output: %v", read)
	}
	sent := srv.tool(adopt, "send_process_input", "sandbox=dev", fmt.Sprintf("pid=%d", int(pid)), "data=hello\n")
	if sent["bytes"] != 6.0 {
		t.Fatalf("send_process_input: %v", sent)
	}
	const reply = "got hello\n"
	read = srv.tool(adopt, "process_output", "sandbox=dev", fmt.Sprintf("pid=%d", int(pid)), fmt.Sprintf("stdout_offset=%d", len(first)), "wait_seconds=60", fmt.Sprintf("max_bytes=%d", len(reply)))
	if read["stdout"] != reply || read["state"] != "running" {
		t.Fatalf("process_output after the input: %v", read)
	}

	killed := srv.tool(adopt, "kill_process", "sandbox=dev", "tag=web")
	exit, _ := killed["exit"].(map[string]any)
	if killed["pid"] != pid || killed["sent"] != true || killed["state"] != "exited" || exit["code"] != 143.0 || exit["signal"] != "TERM" {
		t.Fatalf("kill_process: %v", killed)
	}
	read = srv.tool(adopt, "process_output", "sandbox=dev", fmt.Sprintf("pid=%d", int(pid)))
	if read["stdout"] != first+reply || read["state"] != "exited" {
		t.Fatalf("process_output of the ended process: %v", read)
	}
	// A process that is not there is a tool error that says so.
	out = srv.call(adopt, "tools/call", "--tool-name", "process_output", "--tool-arg", "sandbox=dev", "--tool-arg", "pid=999999999")
	var res struct {
		IsError bool
		Content []struct{ Text string }
	}
	if err := json.Unmarshal(out, &res); err != nil || !res.IsError || len(res.Content) == 0 ||
		!strings.Contains(res.Content[0].Text, `sandbox "dev" has no background process with pid 999999999`) {
		t.Fatalf("process_output of no process: %s", out)
	}

	if d := srv.tool(adopt, "delete_sandbox", "sandbox=dev"); d["deleted"] != "dev" {
		t.Fatalf("delete_sandbox: %v", d)
	}
	eventually(t, time.Minute, "nothing left in "+ns, func() bool { return len(objectsLeft(t, ns)) == 0 })
	log, err := os.ReadFile(srv.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), fmt.Sprintf(`msg="started a background process" sandbox=dev pid=%d`, int(pid))) {
		t.Errorf("the server log misses the start:\n%s", log)
	}
}
