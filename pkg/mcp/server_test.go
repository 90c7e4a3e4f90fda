package mcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func TestToolsList(t *testing.T) {
	for _, withRoot := range []bool{false, true} {
		t.Run(fmt.Sprintf("root=%v", withRoot), func(t *testing.T) {
			f := start(t, fakeCluster(), &hostExecutor{}, func(o *Options) {
				if withRoot {
					o.Root = t.TempDir()
				}
			})
			res, err := f.session.ListTools(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			tools := map[string]*sdk.Tool{}
			for _, tool := range res.Tools {
				tools[tool.Name] = tool
			}
			want := []string{toolCreate, toolExec, toolWriteFile, toolReadFile, toolListDir, toolList, toolDelete,
				toolStartProcess, toolListProcesses, toolProcessOutput, toolProcessInput, toolKillProcess}
			if withRoot {
				want = append(want, toolCopyIn, toolCopyOut)
			}
			if len(tools) != len(want) {
				t.Errorf("tools %v, want %v", slices.Collect(mapsKeys(tools)), want)
			}
			for _, name := range want {
				tool := tools[name]
				if tool == nil {
					t.Fatalf("no tool %s", name)
				}
				if tool.Description == "" || tool.Annotations == nil || tool.Annotations.Title == "" || tool.OutputSchema == nil {
					t.Errorf("%s lacks a description, annotations or an output schema: %+v", name, tool)
				}
			}
			// Honest hints: what reads is read-only; what removes or
			// overwrites is destructive; only exec reaches beyond the cluster.
			for name, h := range map[string]struct{ readOnly, destructive, openWorld bool }{
				toolReadFile: {true, false, false}, toolListDir: {true, false, false}, toolList: {true, false, false},
				toolCreate: {false, false, false}, toolDelete: {false, true, false}, toolWriteFile: {false, true, false},
				toolExec:         {false, true, true},
				toolStartProcess: {false, true, true}, toolListProcesses: {true, false, false}, toolProcessOutput: {true, false, false},
				toolProcessInput: {false, true, false}, toolKillProcess: {false, true, false},
			} {
				a := tools[name].Annotations
				if a.ReadOnlyHint != h.readOnly || (!h.readOnly && *a.DestructiveHint != h.destructive) || *a.OpenWorldHint != h.openWorld {
					t.Errorf("%s: annotations %+v, want read-only %v destructive %v open-world %v", name, a, h.readOnly, h.destructive, h.openWorld)
				}
			}
			if !tools[toolDelete].Annotations.IdempotentHint || tools[toolCreate].Annotations.IdempotentHint || tools[toolExec].Annotations.IdempotentHint {
				t.Error("idempotent hints: delete is, create and exec are not")
			}
			if !tools[toolKillProcess].Annotations.IdempotentHint || tools[toolStartProcess].Annotations.IdempotentHint || tools[toolProcessInput].Annotations.IdempotentHint {
				t.Error("idempotent hints: kill_process is, start_process and send_process_input are not")
			}
			schema, _ := json.Marshal(tools[toolCreate].InputSchema)
			for _, want := range []string{`"restrictive"`, `"moderate"`, `"permissive"`, `"egress"`, `"ttl"`, `"pool"`} {
				if !strings.Contains(string(schema), want) {
					t.Errorf("create_sandbox's input schema lacks %s: %s", want, schema)
				}
			}
			schema, _ = json.Marshal(tools[toolExec].InputSchema)
			if !strings.Contains(string(schema), `"required":["sandbox"]`) {
				t.Errorf("exec's input schema does not require the sandbox: %s", schema)
			}
		})
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestCreateExecFilesDelete(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, nil)
	created := ok[SandboxInfo](f, toolCreate, map[string]any{"name": "demo", "ttl": "30m", "cpu": "500m", "env": map[string]string{"MODE": "test"}})
	if created.Name != "demo" || !created.Usable || !created.CreatedByServer || created.Network != "none" || !created.ReadOnlyRoot || created.CPU != "500m" || created.ExpiresAt == "" {
		t.Fatalf("created %+v", created)
	}
	pod := f.pod("demo")
	if d := pod.Spec.ActiveDeadlineSeconds; d == nil || *d != 1800 {
		t.Errorf("activeDeadlineSeconds %v, want 1800 (ttl 30m)", d)
	}
	if sandbox.Ours(pod, "demo") != nil || !slices.ContainsFunc(pod.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "MODE" && e.Value == "test" }) {
		t.Errorf("pod %+v", pod)
	}

	out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "demo", "command": []string{"echo", "hello", "world"}})
	if out.ExitCode != 0 || out.Stdout != "hello world\n" || out.Stderr != "" || out.StdoutTruncated || out.TimedOut {
		t.Errorf("exec echo: %+v", out)
	}
	// A failing command is a result, not a tool error.
	out = ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "demo", "shell": "echo oops >&2; exit 3"})
	if out.ExitCode != 3 || out.Stderr != "oops\n" {
		t.Errorf("exec exit 3: %+v", out)
	}
	dir := t.TempDir() // stands in for the sandbox's filesystem
	out = ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "demo", "shell": "pwd; cat; echo $GREETING", "stdin": "from stdin\n", "workdir": dir, "env": map[string]string{"GREETING": "hi"}})
	if out.Stdout != dir+"\nfrom stdin\nhi\n" {
		t.Errorf("exec with workdir, stdin, env: %q", out.Stdout)
	}
	// The same without stdin, through the sandbox's warm shell.
	out = ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "demo", "command": []string{"sh", "-c", "pwd; echo \"$GREETING\""}, "workdir": dir, "env": map[string]string{"GREETING": "it's\nme"}})
	if out.Stdout != dir+"\nit's\nme\n" {
		t.Errorf("exec with workdir and env: %q", out.Stdout)
	}
	out = ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "demo", "command": []string{"od", "-An", "-c"}, "stdin": base64.StdEncoding.EncodeToString([]byte{0, 1}), "stdin_base64": true})
	if strings.Fields(out.Stdout)[0] != `\0` {
		t.Errorf("exec with binary stdin: %q", out.Stdout)
	}

	file := filepath.Join(dir, "sub", "notes.txt")
	w := ok[WriteFileOutput](f, toolWriteFile, map[string]any{"sandbox": "demo", "path": file, "content": "line 1\nline 2\n", "mode": "0600"})
	if w.Path != file || w.Bytes != 14 {
		t.Errorf("write: %+v", w)
	}
	ok[WriteFileOutput](f, toolWriteFile, map[string]any{"sandbox": "demo", "path": file, "content": base64.StdEncoding.EncodeToString([]byte("line 3\n")), "encoding": "base64", "append": true})
	if b, _ := os.ReadFile(file); string(b) != "line 1\nline 2\nline 3\n" {
		t.Errorf("file holds %q", b)
	}
	if info, _ := os.Stat(file); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", info.Mode().Perm())
	}
	r := ok[ReadFileOutput](f, toolReadFile, map[string]any{"sandbox": "demo", "path": file})
	if r.Content != "line 1\nline 2\nline 3\n" || r.Truncated || r.Altered || r.Bytes != 21 || r.Encoding != "text" {
		t.Errorf("read: %+v", r)
	}
	r = ok[ReadFileOutput](f, toolReadFile, map[string]any{"sandbox": "demo", "path": file, "offset": 7, "max_bytes": 6})
	if r.Bytes != 6 || !r.Truncated || !strings.HasPrefix(r.Content, "line 2\n[agentkernel: truncated") {
		t.Errorf("read a slice: %+v", r)
	}
	binFile := filepath.Join(dir, "bin")
	if err := os.WriteFile(binFile, []byte("a\x00b\x1b[2Jc\r\nd\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ok[ReadFileOutput](f, toolReadFile, map[string]any{"sandbox": "demo", "path": binFile})
	if r.Content != "a?b?[2Jc\nd?" || !r.Altered {
		t.Errorf("read binary as text: %+v", r)
	}
	r = ok[ReadFileOutput](f, toolReadFile, map[string]any{"sandbox": "demo", "path": binFile, "encoding": "base64"})
	if b, _ := base64.StdEncoding.DecodeString(r.Content); string(b) != "a\x00b\x1b[2Jc\r\nd\xff" {
		t.Errorf("read base64: %+v", r)
	}

	l := ok[ListDirOutput](f, toolListDir, map[string]any{"sandbox": "demo", "path": dir})
	if l.Path != dir || len(l.Entries) != 2 || l.Truncated {
		t.Fatalf("list: %+v", l)
	}
	if e := l.Entries[0]; e.Name != "bin" || e.Type != "file" || e.Size == nil || *e.Size != 12 {
		t.Errorf("entry %+v", e)
	}
	if e := l.Entries[1]; e.Name != "sub" || e.Type != "directory" || e.Size != nil {
		t.Errorf("entry %+v", e)
	}

	sandboxes := ok[ListOutput](f, toolList, map[string]any{})
	if len(sandboxes.Sandboxes) != 1 || sandboxes.Sandboxes[0].Name != "demo" || sandboxes.MaxSandboxes != 5 {
		t.Errorf("list_sandboxes: %+v", sandboxes)
	}
	d := ok[DeleteOutput](f, toolDelete, map[string]any{"sandbox": "demo"})
	if d.Deleted != "demo" || !d.Gone || len(f.pods()) != 0 {
		t.Errorf("delete: %+v, pods left: %d", d, len(f.pods()))
	}
	if got := ok[ListOutput](f, toolList, map[string]any{}); len(got.Sandboxes) != 0 {
		t.Errorf("list after delete: %+v", got)
	}
	f.fails(toolExec, map[string]any{"sandbox": "demo", "command": []string{"true"}}, `sandbox "demo" is gone: this server deleted it`)
	// Its name is free again.
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "demo"})
}

// The exec path reads the API server once, the Pod before the warm shell's
// stream opens (the Pod was cached when the server made it, and a watch
// keeps it fresh), and commands after the first go through the sandbox's
// warm shell: one exec stream and one read for all. A command with stdin
// streams on its own.
func TestExecMakesNoAPIRequests(t *testing.T) {
	cs := fakeCluster()
	f := start(t, cs, &hostExecutor{pidNS: testexec.PidNamespace(t)}, nil)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "fast"})
	before := len(cs.Actions())
	for i := range 5 {
		out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "fast", "command": []string{"sh", "-c", fmt.Sprintf("echo %d; exit %d", i, i)}})
		if out.ExitCode != i || out.Stdout != fmt.Sprintf("%d\n", i) {
			t.Errorf("exec %d: %+v", i, out)
		}
	}
	if after := cs.Actions()[before:]; len(after) != 1 || after[0].GetVerb() != "get" || after[0].GetResource().Resource != "pods" {
		t.Errorf("exec made API requests: %v; want the one read of the Pod before the shell starts", after)
	}
	if f.exec.count() != 1 || f.exec.calls[0].command[0] != "sh" || !strings.Contains(f.exec.calls[0].command[2], "AK-READY") {
		t.Errorf("%d exec streams, want the shell's alone: %v", f.exec.count(), f.exec.calls)
	}
	ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "fast", "command": []string{"cat"}, "stdin": "x"})
	if f.exec.count() != 2 || f.exec.calls[1].command[0] != "cat" {
		t.Errorf("exec with stdin: %v", f.exec.calls)
	}
}

func TestGeneratedNames(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, nil)
	a := ok[SandboxInfo](f, toolCreate, map[string]any{})
	b := ok[SandboxInfo](f, toolCreate, map[string]any{})
	if !strings.HasPrefix(a.Name, "mcp-") || a.Name == b.Name || sandbox.ValidateName(a.Name) != nil {
		t.Errorf("generated names %q, %q", a.Name, b.Name)
	}
}

func TestOutputIsBoundedAndPrintable(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, func(o *Options) { o.Limits.OutputBytes = 100 })
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "loud"})
	out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "loud", "shell": "head -c 100000 /dev/zero | tr '\\0' a; printf 'é%.0s' $(seq 200) >&2"})
	if !out.StdoutTruncated || out.StdoutBytes != 100000 || !strings.HasPrefix(out.Stdout, strings.Repeat("a", 100)+"\n[agentkernel: truncated: the first 100 of 100000 bytes are shown]") {
		t.Errorf("stdout: %+v", out)
	}
	// 'é' is two bytes: the cut never leaves half a character.
	if !out.StderrTruncated || out.StderrBytes != 400 || !strings.HasPrefix(out.Stderr, strings.Repeat("é", 50)+"\n[agentkernel: truncated") {
		t.Errorf("stderr: %q", out.Stderr)
	}
	out = ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "loud", "shell": `printf '\033]0;pwned\007\033[31mred\r\n\001'`})
	if out.Stdout != "?]0;pwned??[31mred\n?" {
		t.Errorf("control characters: %q", out.Stdout)
	}
	r := ok[ReadFileOutput](f, toolReadFile, map[string]any{"sandbox": "loud", "path": "/dev/zero", "encoding": "base64", "max_bytes": 1 << 20})
	if r.Bytes != 100 || !r.Truncated {
		t.Errorf("read of an endless file: %d bytes, truncated %v", r.Bytes, r.Truncated)
	}
	dir := t.TempDir()
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "evil\x1b[2J\nname"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := ok[ListDirOutput](f, toolListDir, map[string]any{"sandbox": "loud", "path": dir})
	if len(l.Entries) != 6 || l.Entries[0].Name != "evil?[2J?name" || !l.Entries[0].NameAltered {
		t.Errorf("hostile name: %+v", l.Entries)
	}
	l = ok[ListDirOutput](f, toolListDir, map[string]any{"sandbox": "loud", "path": dir, "max_entries": 3})
	if len(l.Entries) != 3 || !l.Truncated {
		t.Errorf("bounded listing: %+v", l)
	}
}

func TestExecTimeout(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, func(o *Options) { o.Limits.ExecTimeout = time.Minute })
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "slow"})
	out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "slow", "shell": "echo started; exec sleep 60", "timeout_seconds": 1})
	if !out.TimedOut || out.ExitCode != -1 || out.Stdout != "started\n" {
		t.Errorf("timed out exec: %+v", out)
	}
	f.fails(toolExec, map[string]any{"sandbox": "slow", "command": []string{"true"}, "timeout_seconds": 61}, "timeout_seconds must be between 1 and 60")
}

func TestToolErrors(t *testing.T) {
	f := start(t, fakeCluster(existingSandbox("theirs", nil)), &hostExecutor{}, func(o *Options) {
		o.MaxSandboxes = 2
		o.Spec.Profile, o.Spec.Network, o.Spec.ReadOnlyRoot = sandbox.ProfileModerate, sandbox.NetworkEgress, false
	})
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "mine"})
	file := filepath.Join(t.TempDir(), "f")
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{toolCreate, map[string]any{"name": "Bad_Name"}, `invalid sandbox name "Bad_Name"`},
		{toolCreate, map[string]any{"name": "mine"}, `sandbox "mine" already exists`},
		{toolCreate, map[string]any{"name": "theirs"}, `a sandbox called "theirs" already exists in namespace "agents"`},
		{toolCreate, map[string]any{"profile": "permissive"}, `network "open" is more open than this server allows ("egress"`},
		{toolCreate, map[string]any{"network": "open"}, `is more open than this server allows`},
		{toolCreate, map[string]any{"profile": "paranoid"}, `validating "arguments"`},
		{toolCreate, map[string]any{"memory": "64Gi"}, "memory 64Gi is more than this server allows (1Gi)"},
		{toolCreate, map[string]any{"cpu": "lots"}, `cpu`},
		{toolCreate, map[string]any{"ttl": "2h"}, "ttl 2h0m0s is out of range: from 1s to 1h0m0s"},
		{toolCreate, map[string]any{"ttl": "soon"}, `invalid ttl "soon"`},
		{toolCreate, map[string]any{"env": map[string]string{"1BAD": "x"}}, `invalid environment variable name "1BAD"`},
		{toolCreate, map[string]any{"pool": "warm"}, `this server cannot take sandboxes from pools (pool "warm")`},
		{toolCreate, map[string]any{"pool": "warm", "image": "x"}, `comes as the pool made it`},
		{toolExec, map[string]any{"sandbox": "theirs", "command": []string{"id"}}, `sandbox "theirs" is not one this server may use: it works only on the sandboxes it created in this session`},
		{toolExec, map[string]any{"sandbox": "nobody", "command": []string{"id"}}, `sandbox "nobody" is not one this server may use`},
		{toolExec, map[string]any{"sandbox": "mine"}, "nothing to run"},
		{toolExec, map[string]any{"sandbox": "mine", "command": []string{"id"}, "shell": "id"}, "not both"},
		{toolExec, map[string]any{"sandbox": "mine", "command": []string{"a\x00b"}}, "NUL"},
		{toolExec, map[string]any{"sandbox": "mine", "command": []string{"id"}, "env": map[string]string{"A B": "x"}}, "invalid environment variable name"},
		{toolExec, map[string]any{"sandbox": "mine", "command": []string{"id"}, "stdin": "!!", "stdin_base64": true}, "stdin is not valid base64"},
		{toolExec, map[string]any{"command": []string{"id"}}, `missing properties: ["sandbox"]`},
		{toolReadFile, map[string]any{"sandbox": "mine", "path": file}, "no such file in the sandbox: " + file},
		{toolReadFile, map[string]any{"sandbox": "mine", "path": filepath.Dir(file)}, "is a directory in the sandbox"},
		{toolReadFile, map[string]any{"sandbox": "mine", "path": ""}, "a path is required"},
		{toolReadFile, map[string]any{"sandbox": "mine", "path": file, "encoding": "hex"}, `validating "arguments"`},
		{toolWriteFile, map[string]any{"sandbox": "mine", "path": file, "content": "x", "mode": "rwx"}, `mode "rwx" is not octal permissions`},
		{toolWriteFile, map[string]any{"sandbox": "mine", "path": file, "content": "%%%", "encoding": "base64"}, "content is not valid base64"},
		{toolWriteFile, map[string]any{"sandbox": "mine", "path": "/proc/version/x", "content": "x"}, "writing /proc/version/x failed"},
		{toolListDir, map[string]any{"sandbox": "mine", "path": file + "-missing"}, "no such file in the sandbox"},
		{toolListDir, map[string]any{"sandbox": "mine", "path": "/etc/hostname"}, "is not a directory in the sandbox"},
		{toolDelete, map[string]any{"sandbox": "theirs"}, "is not one this server may use"},
	} {
		t.Run(c.tool+" "+c.want, func(t *testing.T) {
			f.t = t
			f.fails(c.tool, c.args, c.want)
		})
	}
	f.t = t
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "second", "profile": "restrictive"})
	f.fails(toolCreate, map[string]any{"name": "third"}, "at most 2 sandboxes at once (--max-sandboxes) and has 2; delete one with delete_sandbox first")
	// Someone else's sandbox was never touched.
	if p := f.pod("theirs"); p.DeletionTimestamp != nil {
		t.Error("their sandbox is being deleted")
	}
	for _, c := range f.exec.calls {
		if c.pod != sandbox.PodName("mine") {
			t.Errorf("a command ran in %s: %v", c.pod, c.command)
		}
	}
}

func TestAdoptedSandboxes(t *testing.T) {
	cs := fakeCluster(
		existingSandbox("named", nil),
		existingSandbox("team-a", map[string]string{"team": "a"}),
		existingSandbox("team-b", map[string]string{"team": "b"}),
	)
	f := start(t, cs, &hostExecutor{}, func(o *Options) {
		o.Adopt = []string{"named", "missing"}
		o.AdoptSelector = "team=a"
	})
	list := ok[ListOutput](f, toolList, map[string]any{})
	var names []string
	for _, s := range list.Sandboxes {
		names = append(names, s.Name)
		if s.CreatedByServer || !s.Usable {
			t.Errorf("adopted sandbox %+v", s)
		}
	}
	if !slices.Equal(names, []string{"named", "team-a"}) {
		t.Errorf("list_sandboxes: %v", names)
	}
	for _, name := range []string{"named", "team-a"} {
		if out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": name, "command": []string{"true"}}); out.ExitCode != 0 {
			t.Errorf("exec in %s: %+v", name, out)
		}
	}
	f.fails(toolExec, map[string]any{"sandbox": "team-b", "command": []string{"true"}}, "is not one this server may use")
	f.fails(toolExec, map[string]any{"sandbox": "missing", "command": []string{"true"}}, `sandbox "missing" (named with --adopt) does not exist`)
	ok[DeleteOutput](f, toolDelete, map[string]any{"sandbox": "team-a"})
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "own"})
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	// What it made is gone; what it adopted (and did not delete) stays.
	var left []string
	for _, p := range f.pods() {
		left = append(left, sandbox.NameOf(&p))
	}
	slices.Sort(left)
	if !slices.Equal(left, []string{"named", "team-b"}) {
		t.Errorf("left after the session: %v", left)
	}
}

func TestCleanupWhenTheClientDisconnects(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			f := start(t, fakeCluster(existingSandbox("theirs", nil)), &hostExecutor{}, func(o *Options) { o.Keep = keep })
			for _, n := range []string{"a", "b", "c"} {
				ok[SandboxInfo](f, toolCreate, map[string]any{"name": n})
			}
			if err := f.stop(); err != nil {
				t.Fatal(err)
			}
			want := 1
			if keep {
				want = 4
			}
			if got := len(f.pods()); got != want {
				t.Fatalf("%d pods left, want %d", got, want)
			}
			if keep && !strings.Contains(f.log.String(), "keeping sandbox (--keep)") {
				t.Errorf("log does not say what it kept:\n%s", f.log)
			}
			if !keep && strings.Count(f.log.String(), "deleted sandbox") != 3 {
				t.Errorf("log does not name each deletion:\n%s", f.log)
			}
		})
	}
}

// A signal cancels Serve's context: the sandboxes go all the same, and
// Serve returns without an error of its own.
func TestCleanupWhenCancelled(t *testing.T) {
	cs := fakeCluster()
	o := testOptions(cs, &hostExecutor{})
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	serverT, clientT := sdk.NewInMemoryTransports()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, serverT) }()
	session, err := sdk.NewClient(&sdk.Implementation{Name: "c"}, nil).Connect(context.Background(), clientT, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	f := &fixture{t: t, cs: cs, session: session}
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "x"})
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if n := len(f.pods()); n != 0 {
		t.Fatalf("%d pods left after cancel", n)
	}
}

// Creates racing for the last places under --max-sandboxes: exactly as
// many win as there are places, and every one that lost left nothing.
func TestConcurrentCreatesStayUnderTheLimit(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, func(o *Options) { o.MaxSandboxes = 3 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, refused := 0, 0
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.session.CallTool(context.Background(), &sdk.CallToolParams{Name: toolCreate, Arguments: map[string]any{"name": fmt.Sprintf("c%d", i%6)}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("protocol error: %v", err)
			case !res.IsError:
				won++
			case strings.Contains(text(res), "--max-sandboxes") || strings.Contains(text(res), "already exists"):
				refused++
			default:
				t.Errorf("unexpected error: %s", text(res))
			}
		}()
	}
	wg.Wait()
	if won != 3 || refused != 9 || len(f.pods()) != 3 {
		t.Fatalf("%d created, %d refused, %d pods; want 3, 9, 3", won, refused, len(f.pods()))
	}
}

// A sandbox that goes away behind the server's back leaves the scope: a
// Pod that someone makes later under its name is never exec'd into.
func TestSandboxGoneBehindTheServersBack(t *testing.T) {
	cs := fakeCluster()
	f := start(t, cs, &hostExecutor{}, nil)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "deleted"})
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "expired"})
	ctx := context.Background()
	if err := cs.CoreV1().Pods(testNamespace).Delete(ctx, sandbox.PodName("deleted"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	impostor := existingSandbox("deleted", nil)
	if _, err := cs.CoreV1().Pods(testNamespace).Create(ctx, impostor, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expired := f.pod("expired")
	expired.Status.Phase, expired.Status.Reason = corev1.PodFailed, "DeadlineExceeded"
	if _, err := cs.CoreV1().Pods(testNamespace).UpdateStatus(ctx, expired, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server notices", func() bool {
		res := f.call(toolExec, map[string]any{"sandbox": "deleted", "command": []string{"true"}})
		return res.IsError && strings.Contains(text(res), `sandbox "deleted" is gone: it was deleted`)
	})
	eventually(t, "the server notices the TTL", func() bool {
		res := f.call(toolExec, map[string]any{"sandbox": "expired", "command": []string{"true"}})
		return res.IsError && strings.Contains(text(res), `sandbox "expired" cannot run commands: its TTL ran out`)
	})
	if n := f.exec.count(); n != 0 {
		t.Errorf("%d commands ran", n)
	}
	list := ok[ListOutput](f, toolList, map[string]any{})
	if len(list.Sandboxes) != 1 || list.Sandboxes[0].Name != "expired" || list.Sandboxes[0].Usable || list.Sandboxes[0].Note != "its TTL ran out" {
		t.Errorf("list_sandboxes: %+v", list.Sandboxes)
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	// The expired sandbox is deleted; the impostor is not the server's.
	if pods := f.pods(); len(pods) != 1 || pods[0].UID != impostor.UID {
		t.Errorf("left: %v", pods)
	}
}

// A stream reaches a Pod by name, and the server's watch can lag: a Pod
// deleted and made again under the same name before the watch tells must
// receive no new stream. Here the watch is blind, so only the UID check
// before each stream stands between the tools and the impostor.
func TestSameNamedPodBeforeTheWatchTells(t *testing.T) {
	cs := fakeCluster()
	cs.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		if w, ok := a.(k8stesting.WatchAction); ok && !w.GetWatchRestrictions().Labels.Empty() {
			return true, watch.NewFake(), nil // the scope's watch: never tells
		}
		return false, nil, nil
	})
	root := t.TempDir()
	f := start(t, cs, &hostExecutor{}, func(o *Options) { o.Root = root })
	ctx := context.Background()
	for i, call := range []struct {
		tool string
		args map[string]any
	}{
		{toolWriteFile, map[string]any{"path": "f", "content": "secret"}},
		{toolReadFile, map[string]any{"path": "f"}},
		{toolListDir, map[string]any{"path": "."}},
		{toolCopyOut, map[string]any{"sandbox_path": "f", "local_path": "out"}},
		{toolExec, map[string]any{"command": []string{"cat"}, "stdin": "secret"}},
		// No stdin: the first exec starts the sandbox's warm shell, whose
		// stream reaches the Pod by name too.
		{toolExec, map[string]any{"command": []string{"true"}}},
	} {
		name := fmt.Sprintf("swapped-%d", i)
		ok[SandboxInfo](f, toolCreate, map[string]any{"name": name})
		if err := cs.CoreV1().Pods(testNamespace).Delete(ctx, sandbox.PodName(name), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods(testNamespace).Create(ctx, existingSandbox(name, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		call.args["sandbox"] = name
		f.fails(call.tool, call.args, fmt.Sprintf("sandbox %q is gone: it was deleted", name))
	}
	if n := f.exec.count(); n != 0 {
		t.Errorf("%d streams reached an impostor: %v", n, f.exec.calls)
	}
}

// A Pod whose TTL ran out before the watch tells gets no new stream either,
// a warm shell's or a command's: the read before it says so.
func TestStoppedPodBeforeTheWatchTells(t *testing.T) {
	cs := fakeCluster()
	cs.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		if w, ok := a.(k8stesting.WatchAction); ok && !w.GetWatchRestrictions().Labels.Empty() {
			return true, watch.NewFake(), nil
		}
		return false, nil, nil
	})
	f := start(t, cs, &hostExecutor{}, nil)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "expired"})
	expired := f.pod("expired")
	expired.Status.Phase, expired.Status.Reason = corev1.PodFailed, "DeadlineExceeded"
	if _, err := cs.CoreV1().Pods(testNamespace).UpdateStatus(context.Background(), expired, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.fails(toolExec, map[string]any{"sandbox": "expired", "command": []string{"true"}}, `sandbox "expired" cannot run commands: its TTL ran out`)
	f.fails(toolExec, map[string]any{"sandbox": "expired", "command": []string{"cat"}, "stdin": "x"}, `sandbox "expired" cannot run commands: its TTL ran out`)
	f.fails(toolReadFile, map[string]any{"sandbox": "expired", "path": "/etc/hostname"}, `sandbox "expired" cannot run commands: its TTL ran out`)
	if n := f.exec.count(); n != 0 {
		t.Errorf("%d streams reached a stopped Pod: %v", n, f.exec.calls)
	}
}

// fakePools claims by making a running sandbox Pod named like a pool member.
type fakePools struct {
	cs    *fake.Clientset
	panic bool
}

func (p *fakePools) Claim(ctx context.Context, pool, name string, ttl time.Duration) (*corev1.Pod, error) {
	if p.panic {
		panic("claim went wrong")
	}
	spec := sandbox.NewSpec(name, testNamespace)
	spec.TTL = ttl
	pod := spec.Pod()
	pod.Name = sandbox.PoolMemberPrefix(pool) + "x1"
	pod.Labels[sandbox.LabelPool] = pool
	runPod(pod)
	return p.cs.CoreV1().Pods(testNamespace).Create(ctx, pod, metav1.CreateOptions{})
}

func TestPoolSeam(t *testing.T) {
	cs := fakeCluster()
	pools := &fakePools{cs: cs}
	f := start(t, cs, &hostExecutor{}, func(o *Options) { o.Pools = pools })
	got := ok[SandboxInfo](f, toolCreate, map[string]any{"name": "warm", "pool": "fast", "ttl": "10m"})
	if !got.Usable || !got.CreatedByServer {
		t.Fatalf("claimed %+v", got)
	}
	ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "warm", "command": []string{"true"}})
	// A panic in a tool is a tool error; the server keeps serving.
	pools.panic = true
	f.fails(toolCreate, map[string]any{"name": "boom", "pool": "fast"}, "internal error in create_sandbox; the server keeps running: claim went wrong")
	ok[ListOutput](f, toolList, map[string]any{})
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.pods()); n != 0 {
		t.Errorf("%d pods left: the claimed sandbox is the session's too", n)
	}
}

func TestSecretsStayOutOfResultsAndLogs(t *testing.T) {
	const secret = "sk-mcp-unit-secret-4711"
	cs := fakeCluster()
	f := start(t, cs, &hostExecutor{}, func(o *Options) {
		o.Spec.SecretEnvNames = []string{"API_KEY"}
		o.SecretValues = map[string]string{"API_KEY": secret}
	})
	var transcript strings.Builder
	record := func(res *sdk.CallToolResult) {
		b, _ := json.Marshal(res)
		transcript.Write(b)
	}
	record(f.call(toolCreate, map[string]any{"name": "keyed"}))
	record(f.call(toolCreate, map[string]any{"name": "again", "env": map[string]string{"API_KEY": "x"}}))
	record(f.call(toolList, map[string]any{}))
	record(f.call(toolExec, map[string]any{"sandbox": "keyed", "command": []string{"true"}}))
	record(f.call(toolDelete, map[string]any{"sandbox": "keyed"}))
	s, err := cs.CoreV1().Secrets(testNamespace).Get(context.Background(), sandbox.SecretName("keyed"), metav1.GetOptions{})
	if err != nil || string(s.Data["API_KEY"]) != secret {
		t.Fatalf("the sandbox's Secret: %v, %v", s, err)
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(transcript.String(), secret) || strings.Contains(f.log.String(), secret) {
		t.Fatalf("the secret leaked:\n%s\n%s", transcript.String(), f.log)
	}
	if !strings.Contains(transcript.String(), "env API_KEY is set by the server from a secret") {
		t.Errorf("an agent could override a secret variable: %s", transcript.String())
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, c := range map[string]struct {
		change func(*Options)
		want   string
	}{
		"no ttl":       {func(o *Options) { o.Spec.TTL = 0 }, "needs a TTL"},
		"no sandboxes": {func(o *Options) { o.MaxSandboxes = 0 }, "--max-sandboxes must be at least 1"},
		"bad adopt":    {func(o *Options) { o.Adopt = []string{"Not OK"} }, "--adopt: invalid sandbox name"},
		"bad selector": {func(o *Options) { o.AdoptSelector = "a in (" }, "invalid --adopt-selector"},
		"no root":      {func(o *Options) { o.Root = "/nonexistent/dir" }, "--root /nonexistent/dir: no such file or directory"},
		"zero output":  {func(o *Options) { o.Limits.OutputBytes = 0 }, "limits must be positive"},
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions(fakeCluster(), &hostExecutor{})
			c.change(&o)
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: %v, want %q", err, c.want)
			}
		})
	}
}

// A sandbox whose shell will not start still runs every command, each on
// an exec stream of its own.
func TestExecWithoutAShell(t *testing.T) {
	ex := &hostExecutor{before: func(_ string, command []string) error {
		if len(command) > 2 && strings.Contains(command[2], "AK-READY") {
			return errors.New("no shell here")
		}
		return nil
	}}
	f := start(t, fakeCluster(), ex, nil)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "plain"})
	for range 3 {
		if out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "plain", "command": []string{"echo", "hi"}}); out.Stdout != "hi\n" {
			t.Fatalf("exec: %+v", out)
		}
	}
	if n := ex.count(); n != 4 {
		t.Errorf("%d streams, want one failed shell and 3 execs", n)
	}
}

// A shell that dies while its command runs: the agent hears the outcome is
// unknown (the command is never run twice), and the next exec gets a new
// shell.
func TestExecWhenTheShellDies(t *testing.T) {
	ex := &hostExecutor{pidNS: testexec.PidNamespace(t)}
	f := start(t, fakeCluster(), ex, nil)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "fragile"})
	ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "fragile", "command": []string{"true"}})
	f.fails(toolExec, map[string]any{"sandbox": "fragile", "shell": "kill -9 $PPID; sleep 1"}, "its outcome is unknown")
	if out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "fragile", "command": []string{"echo", "again"}}); out.Stdout != "again\n" {
		t.Fatalf("exec after the shell died: %+v", out)
	}
	if n := ex.count(); n != 2 {
		t.Errorf("%d streams, want 2 shells", n)
	}
}
