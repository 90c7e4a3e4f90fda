package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// persisting lets the server make persistent sandboxes up to 5Gi, of the
// cluster's default class or "fast", kept 24h once suspended.
func persisting(o *Options) {
	o.Persist = Persist{MaxSize: resource.MustParse("5Gi"), StorageClasses: []string{"fast"}, MaxRetain: 24 * time.Hour}
}

func (f *fixture) workspace(name string) (*corev1.PersistentVolumeClaim, error) {
	return f.cs.CoreV1().PersistentVolumeClaims(testNamespace).Get(context.Background(), sandbox.WorkspaceName(name), metav1.GetOptions{})
}

func (f *fixture) podCreates() int {
	n := 0
	for _, a := range f.cs.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
			n++
		}
	}
	return n
}

// create persistent → write a file → suspend (Pod gone, the scope keeps
// it, list says Suspended) → exec resumes it (a new Pod, and says so) →
// delete takes the workspace.
func TestPersistentSandboxThroughMCP(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, persisting)
	info := ok[SandboxInfo](f, toolCreate, map[string]any{"name": "keep", "persist": true})
	if !info.Persistent || info.WorkspaceSize != "5Gi" || info.StorageClass != "" || !info.Usable {
		t.Fatalf("create: %+v, want a usable persistent sandbox of 5Gi (the most, under the 10Gi default) of the default class", info)
	}
	pvc, err := f.workspace("keep")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := sandbox.SpecOf(pvc)
	if err != nil || spec.Workspace.Retain != 24*time.Hour {
		t.Fatalf("record: %+v, %v; want retain 24h (the server's)", spec, err)
	}
	first := f.pod("keep").UID

	file := filepath.Join(t.TempDir(), "notes.txt")
	ok[WriteFileOutput](f, toolWriteFile, map[string]any{"sandbox": "keep", "path": file, "content": "kept"})

	sus := ok[SuspendOutput](f, toolSuspend, map[string]any{"sandbox": "keep"})
	if sus.Suspended != "keep" || sus.Already || sus.Why != sandbox.SuspendedByUser {
		t.Fatalf("suspend: %+v", sus)
	}
	if _, err := f.cs.CoreV1().Pods(testNamespace).Get(context.Background(), sandbox.PodName("keep"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the Pod is still there after suspend_sandbox: %v", err)
	}
	again := ok[SuspendOutput](f, toolSuspend, map[string]any{"sandbox": "keep"})
	if !again.Already || again.Since != sus.Since {
		t.Fatalf("second suspend: %+v, want already since %s", again, sus.Since)
	}
	list := ok[ListOutput](f, toolList, nil)
	if len(list.Sandboxes) != 1 {
		t.Fatalf("list: %+v", list)
	}
	if got := list.Sandboxes[0]; got.Status != "Suspended" || got.Usable || got.SuspendedWhy != "suspended" || got.SuspendedSince != sus.Since || !got.Persistent {
		t.Fatalf("list shows %+v, want it Suspended since %s", got, sus.Since)
	}

	out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "keep", "command": []string{"cat", file}})
	if out.Stdout != "kept" || !strings.HasPrefix(out.Resumed, "suspended ") || !strings.HasSuffix(out.Resumed, " ago") {
		t.Fatalf("exec after suspend: %+v, want the file and resumed: suspended … ago", out)
	}
	if second := f.pod("keep").UID; second == first {
		t.Fatal("the sandbox was not resumed in a new Pod")
	}
	// Running now: nothing more to say.
	if out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "keep", "command": []string{"true"}}); out.Resumed != "" {
		t.Fatalf("exec on a running sandbox says resumed %q", out.Resumed)
	}
	if r := ok[ResumeOutput](f, toolResume, map[string]any{"sandbox": "keep"}); r.Resumed != "" || r.Sandbox.Status != "Running" {
		t.Fatalf("resume of a running sandbox: %+v", r)
	}
	if got := ok[ListOutput](f, toolList, nil).Sandboxes[0]; got.Status != "Running" || !got.Usable || got.SuspendedSince != "" {
		t.Fatalf("list after the resume: %+v", got)
	}

	ok[SuspendOutput](f, toolSuspend, map[string]any{"sandbox": "keep"})
	ok[DeleteOutput](f, toolDelete, map[string]any{"sandbox": "keep"})
	if _, err := f.workspace("keep"); !apierrors.IsNotFound(err) {
		t.Fatalf("the workspace outlived delete_sandbox: %v", err)
	}
	f.fails(toolExec, map[string]any{"sandbox": "keep", "command": []string{"true"}},
		`sandbox "keep" is gone: this server deleted it; create another with create_sandbox`)
}

// Every tool that uses a sandbox resumes a suspended one first and says so.
func TestEveryToolResumes(t *testing.T) {
	hostProcesses(t)
	f := start(t, fakeCluster(), &hostExecutor{}, func(o *Options) {
		persisting(o)
		o.Root = t.TempDir()
	})
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "nap", "persist": true})
	dir := t.TempDir()
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{toolWriteFile, map[string]any{"path": filepath.Join(dir, "a"), "content": "x"}},
		{toolReadFile, map[string]any{"path": filepath.Join(dir, "a")}},
		{toolListDir, map[string]any{"path": dir}},
		{toolCopyOut, map[string]any{"sandbox_path": filepath.Join(dir, "a"), "local_path": "out"}},
		{toolCopyIn, map[string]any{"local_path": "out", "sandbox_path": filepath.Join(dir, "b")}},
		{toolExec, map[string]any{"shell": "true"}},
		{toolStartProcess, map[string]any{"shell": "true"}},
		{toolListProcesses, map[string]any{}},
	} {
		ok[SuspendOutput](f, toolSuspend, map[string]any{"sandbox": "nap"})
		c.args["sandbox"] = "nap"
		got := ok[struct {
			Resumed string `json:"resumed"`
		}](f, c.tool, c.args)
		if !strings.HasPrefix(got.Resumed, "suspended ") {
			t.Errorf("%s on a suspended sandbox: resumed %q, want it to say it resumed it", c.tool, got.Resumed)
		}
	}
}

// An agent never asks for more storage than the server allows.
func TestPersistCeiling(t *testing.T) {
	for _, c := range []struct {
		name string
		opts func(*Options)
		args map[string]any
		want string
	}{
		{"not allowed", nil, map[string]any{"persist": true},
			"this server may not create persistent sandboxes (its user did not allow any with --persist-max); create one without persist"},
		{"too big", persisting, map[string]any{"persist": true, "workspace_size": "6Gi"},
			"workspace_size 6Gi is more than this server allows (5Gi); ask for less, or ask the server's user"},
		{"class", persisting, map[string]any{"persist": true, "storage_class": "gold"},
			`storage_class "gold" is not one this server allows (the cluster's default, or fast); ask for less, or ask the server's user`},
		{"class when none allowed", func(o *Options) { persisting(o); o.Persist.StorageClasses = nil }, map[string]any{"persist": true, "storage_class": "fast"},
			`storage_class "fast" is not one this server allows (only the cluster's default: leave storage_class out); ask for less, or ask the server's user`},
		{"retain too long", persisting, map[string]any{"persist": true, "retain": "48h"},
			"retain 48h0m0s is longer than this server allows (24h0m0s); ask for less, or ask the server's user"},
		{"retain for ever", persisting, map[string]any{"persist": true, "retain": "0s"},
			"retain 0 (kept until deleted) is longer than this server allows (24h0m0s); ask for less, or ask the server's user"},
		{"retain too short", func(o *Options) { persisting(o); o.Persist.MaxRetain = 0 }, map[string]any{"persist": true, "retain": "1s"},
			"retain must be at least 1m (or 0 to keep a suspended workspace until it is deleted), not 1s"},
		{"retain not a duration", persisting, map[string]any{"persist": true, "retain": "a while"},
			`invalid retain "a while": use a duration such as 24h`},
		{"size not a quantity", persisting, map[string]any{"persist": true, "workspace_size": "big"},
			`workspace_size "big" is not a valid quantity (examples: 500m, 2, 512Mi, 4Gi)`},
		{"size zero", persisting, map[string]any{"persist": true, "workspace_size": "0"},
			`workspace_size "0" must be greater than zero`},
		{"without persist", persisting, map[string]any{"workspace_size": "1Gi"},
			"workspace_size, storage_class and retain are for a persistent sandbox: set persist to true, or leave them out"},
		{"from a pool", persisting, map[string]any{"persist": true, "pool": "warm"},
			`this server takes no persistent sandboxes from pools (pool "warm"): leave out persist, workspace_size, storage_class and retain, or create one without pool`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, fakeCluster(), &hostExecutor{}, c.opts)
			c.args["name"] = "big"
			f.fails(toolCreate, c.args, c.want)
			if _, err := f.workspace("big"); !apierrors.IsNotFound(err) {
				t.Fatalf("a refused create left a workspace: %v", err)
			}
		})
	}
	// Within the ceiling: a class it allows, less than the most.
	f := start(t, fakeCluster(), &hostExecutor{}, persisting)
	info := ok[SandboxInfo](f, toolCreate, map[string]any{"name": "fits", "persist": true, "workspace_size": "2Gi", "storage_class": "fast", "retain": "1h"})
	if info.WorkspaceSize != "2Gi" || info.StorageClass != "fast" {
		t.Fatalf("create within the ceiling: %+v", info)
	}
}

// tamper edits a suspended sandbox's record, as anyone who may edit claims
// in the namespace can.
func tamper(t *testing.T, cs *fake.Clientset, name string, edit func(spec map[string]any)) {
	t.Helper()
	ctx := context.Background()
	pvc, err := cs.CoreV1().PersistentVolumeClaims(testNamespace).Get(ctx, sandbox.WorkspaceName(name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var record map[string]any
	if err := json.Unmarshal([]byte(pvc.Annotations[sandbox.AnnotationRecord]), &record); err != nil {
		t.Fatal(err)
	}
	edit(record["spec"].(map[string]any))
	b, _ := json.Marshal(record)
	pvc.Annotations[sandbox.AnnotationRecord] = string(b)
	if _, err := cs.CoreV1().PersistentVolumeClaims(testNamespace).Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A record edited to more than the ceiling is refused on resume, by the
// tool and by auto-resume alike, and nothing is made.
func TestResumeAdmitsTheRecord(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"network", func(s map[string]any) { s["Network"] = "open" },
			`this server may not resume sandbox "rec": its record (what it was created as) asks for more than this server allows: its network "open" is more open than this server's "none"; ask the server's user`},
		{"ttl", func(s map[string]any) { s["TTL"] = float64(48 * time.Hour) },
			`this server may not resume sandbox "rec": its record (what it was created as) asks for more than this server allows: its ttl 48h0m0s is not within this server's (1s to 1h0m0s); ask the server's user`},
		{"workspace", func(s map[string]any) { s["Workspace"].(map[string]any)["storageClass"] = "gold" },
			`this server may not resume sandbox "rec": its record (what it was created as) asks for more than this server allows: storage_class "gold" is not one this server allows (the cluster's default, or fast); ask the server's user`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t, fakeCluster(), &hostExecutor{}, persisting)
			ok[SandboxInfo](f, toolCreate, map[string]any{"name": "rec", "persist": true})
			ok[SuspendOutput](f, toolSuspend, map[string]any{"sandbox": "rec"})
			tamper(t, f.cs, "rec", c.edit)
			before := f.podCreates()
			f.fails(toolResume, map[string]any{"sandbox": "rec"}, c.want)
			f.fails(toolExec, map[string]any{"sandbox": "rec", "command": []string{"true"}}, c.want)
			if n := f.podCreates(); n != before {
				t.Fatalf("a refused resume made %d Pods", n-before)
			}
		})
	}
}

// Only sandboxes in scope are suspended or resumed; only persistent ones
// can be.
func TestSuspendResumeScope(t *testing.T) {
	cs := fakeCluster()
	other := sandbox.NewSpec("theirs", testNamespace)
	other.Workspace = &sandbox.Workspace{Size: resource.MustParse("1Gi")}
	if _, err := sandbox.Create(context.Background(), cs, &other, sandbox.CreateOptions{Wait: true, Timeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	f := start(t, cs, &hostExecutor{}, persisting)
	for _, tool := range []string{toolSuspend, toolResume} {
		f.fails(tool, map[string]any{"sandbox": "theirs"},
			`sandbox "theirs" is not one this server may use: it works only on the sandboxes it created in this session; list_sandboxes shows them, create_sandbox makes a new one`)
	}
	if _, err := sandbox.Find(context.Background(), cs, testNamespace, "theirs"); err != nil {
		t.Fatalf("a sandbox out of scope was touched: %v", err)
	}
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "plain"})
	for _, tool := range []string{toolSuspend, toolResume} {
		f.fails(tool, map[string]any{"sandbox": "plain"},
			`sandbox "plain" in namespace "agents" has no persistent workspace: its files live and die with its Pod, so it cannot be suspended or resumed; create_sandbox with persist true makes a sandbox that can be`)
	}
}

// A sandbox its user adopted that is suspended (no Pod at all) is in
// scope by its workspace, and the first command resumes it.
func TestAdoptedSuspendedSandbox(t *testing.T) {
	cs := fakeCluster()
	ctx := context.Background()
	theirs := sandbox.NewSpec("adopted", testNamespace)
	theirs.TTL = 30 * time.Minute
	theirs.Workspace = &sandbox.Workspace{Size: resource.MustParse("1Gi"), Retain: time.Hour}
	if _, err := sandbox.Create(ctx, cs, &theirs, sandbox.CreateOptions{Wait: true, Timeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := sandbox.Suspend(ctx, cs, testNamespace, "adopted", sandbox.SuspendOptions{}); err != nil {
		t.Fatal(err)
	}
	f := start(t, cs, &hostExecutor{}, func(o *Options) {
		persisting(o)
		o.Adopt = []string{"adopted"}
	})
	listed := ok[ListOutput](f, toolList, nil).Sandboxes
	if len(listed) != 1 || listed[0].Status != "Suspended" || listed[0].CreatedByServer || listed[0].WorkspaceSize != "1Gi" {
		t.Fatalf("list before first use: %+v, want it Suspended, of 1Gi", listed)
	}
	out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "adopted", "command": []string{"true"}})
	if !strings.HasPrefix(out.Resumed, "suspended ") {
		t.Fatalf("exec on an adopted suspended sandbox: %+v", out)
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.workspace("adopted"); err != nil {
		t.Fatalf("the server deleted the workspace of a sandbox it adopted: %v", err)
	}
}

// A workspace deleted behind the server's back: the agent hears that the
// files are gone.
func TestWorkspaceGone(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, persisting)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "lost", "persist": true})
	ok[SuspendOutput](f, toolSuspend, map[string]any{"sandbox": "lost"})
	if err := f.cs.CoreV1().PersistentVolumeClaims(testNamespace).Delete(context.Background(), sandbox.WorkspaceName("lost"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := `the workspace of sandbox "lost" in namespace "agents" was deleted, or is being deleted; its files are gone with it; create another with create_sandbox`
	f.fails(toolExec, map[string]any{"sandbox": "lost", "command": []string{"true"}}, want)
	f.fails(toolResume, map[string]any{"sandbox": "lost"}, want)
	f.fails(toolSuspend, map[string]any{"sandbox": "lost"}, want)
}

// Calls racing to use a suspended sandbox make one Pod between them.
func TestConcurrentResumesMakeOnePod(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, persisting)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "race", "persist": true})
	ok[SuspendOutput](f, toolSuspend, map[string]any{"sandbox": "race"})
	before := f.podCreates()
	const n = 6
	var wg sync.WaitGroup
	errs := make([]string, n)
	resumed := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tool, args := toolExec, map[string]any{"sandbox": "race", "command": []string{"true"}}
			if i%2 == 1 {
				tool, args = toolResume, map[string]any{"sandbox": "race"}
			}
			res, err := f.session.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: args})
			switch {
			case err != nil:
				errs[i] = err.Error()
			case res.IsError:
				errs[i] = text(res)
			default:
				var out struct {
					Resumed string `json:"resumed"`
				}
				b, _ := json.Marshal(res.StructuredContent)
				_ = json.Unmarshal(b, &out)
				resumed[i] = out.Resumed
			}
		}()
	}
	wg.Wait()
	said := 0
	for i := range n {
		if errs[i] != "" {
			t.Errorf("call %d: %s", i, errs[i])
		}
		if resumed[i] != "" {
			said++
		}
	}
	if made := f.podCreates() - before; made != 1 || said != 1 {
		t.Fatalf("%d concurrent calls made %d Pods and %d said they resumed it, want 1 and 1", n, made, said)
	}
}

// The words of the workspace's fields and errors are this server's.
func TestPersistWords(t *testing.T) {
	// Every field the domain names about a workspace has an argument.
	for _, w := range []sandbox.Workspace{{}, {Size: resource.MustParse("1Gi"), StorageClass: "Not_A_Class"}, {Size: resource.MustParse("1Gi"), Retain: time.Second}} {
		s := sandbox.NewSpec("w", testNamespace)
		s.Workspace = &w
		err := s.Validate()
		var fe field.Error
		if !errors.As(err, &fe) {
			t.Fatalf("workspace %+v: %v, want a field error", w, err)
		}
		for _, name := range fe.Named() {
			if fieldArgs[name] == "" {
				t.Errorf("field %q (%v) has no argument in fieldArgs", name, err)
			}
		}
	}
	// Every error type of pkg/sandbox has a row in errorSteps.
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join("..", "sandbox", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, isFunc := d.(*ast.FuncDecl)
			if !isFunc || fn.Recv == nil || fn.Name.Name != "Error" || len(fn.Recv.List) != 1 {
				continue
			}
			typ := fn.Recv.List[0].Type
			if star, isStar := typ.(*ast.StarExpr); isStar {
				typ = star.X
			}
			name := fmt.Sprint(typ)
			if _, known := errorSteps[name]; !known && ast.IsExported(name) && name != "FieldError" {
				t.Errorf("sandbox.%s has no row in errorSteps", name)
			}
		}
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{&sandbox.SuspendedError{Name: "x", Namespace: "ns", Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Why: "idle"},
			`sandbox "x" in namespace "ns" is suspended (idle, since 2026-01-02T03:04:05Z): its files are kept, but nothing runs until it is resumed; resume it with the resume_sandbox tool (any command on it resumes it too)`},
		{fmt.Errorf("exec: %w", &sandbox.NotPersistentError{Name: "x", Namespace: "ns"}),
			`exec: sandbox "x" in namespace "ns" has no persistent workspace: its files live and die with its Pod, so it cannot be suspended or resumed; create_sandbox with persist true makes a sandbox that can be`},
		{&sandbox.WorkspaceGoneError{Name: "x", Namespace: "ns"},
			`the workspace of sandbox "x" in namespace "ns" was deleted, or is being deleted; its files are gone with it; create another with create_sandbox`},
		{field.Invalid("retain", "`retain` must be at least 1m"), "retain must be at least 1m"},
		{field.Invalid("storageClass", "invalid `storageClass` %q", "A"), `invalid storage_class "A"`},
	} {
		if got := inArgWords(inArgWords(c.err)).Error(); got != c.want {
			t.Errorf("in argument words:\n got %s\nwant %s", got, c.want)
		}
	}
}

// suspend_sandbox and resume_sandbox are there when the server can have
// persistent sandboxes, with honest hints; create_sandbox's schema names
// the workspace's arguments. A server that stops deletes the persistent
// sandboxes it made, workspace and all, as it deletes the others.
func TestPersistTools(t *testing.T) {
	f := start(t, fakeCluster(), &hostExecutor{}, persisting)
	res, err := f.session.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]*sdk.Tool{}
	for _, tool := range res.Tools {
		tools[tool.Name] = tool
	}
	for name, h := range map[string]struct{ destructive, idempotent bool }{toolSuspend: {true, true}, toolResume: {false, true}} {
		tool := tools[name]
		if tool == nil {
			t.Fatalf("no tool %s", name)
		}
		a := tool.Annotations
		if a.ReadOnlyHint || *a.DestructiveHint != h.destructive || a.IdempotentHint != h.idempotent || *a.OpenWorldHint || tool.OutputSchema == nil {
			t.Errorf("%s: annotations %+v, want destructive %v idempotent %v", name, a, h.destructive, h.idempotent)
		}
	}
	schema, _ := json.Marshal(tools[toolCreate].InputSchema)
	for _, want := range []string{`"persist"`, `"workspace_size"`, `"storage_class"`, `"retain"`} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("create_sandbox's input schema lacks %s", want)
		}
	}
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "left", "persist": true})
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "asleep", "persist": true})
	ok[SuspendOutput](f, toolSuspend, map[string]any{"sandbox": "asleep"})
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"left", "asleep"} {
		if _, err := f.workspace(name); !apierrors.IsNotFound(err) {
			t.Errorf("the server stopped and left the workspace of %s: %v", name, err)
		}
	}

	plain := start(t, fakeCluster(), &hostExecutor{}, nil)
	res, err = plain.session.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range res.Tools {
		if tool.Name == toolSuspend || tool.Name == toolResume {
			t.Errorf("a server without persistent sandboxes offers %s", tool.Name)
		}
	}
}

// A sandbox suspended by someone else while a command runs: the agent
// hears that its files are kept and that calling again resumes it; and it
// does.
func TestSuspendedWhileRunning(t *testing.T) {
	ex := &hostExecutor{}
	f := start(t, fakeCluster(), ex, persisting)
	ok[SandboxInfo](f, toolCreate, map[string]any{"name": "mid", "persist": true})
	var once sync.Once
	ex.mu.Lock()
	ex.before = func(pod string, command []string) error {
		var err error
		once.Do(func() {
			if _, serr := sandbox.Suspend(context.Background(), f.cs, testNamespace, "mid", sandbox.SuspendOptions{}); serr != nil {
				t.Error(serr)
			}
			err = errors.New("stream reset")
		})
		return err
	}
	ex.mu.Unlock()
	f.fails(toolExec, map[string]any{"sandbox": "mid", "command": []string{"true"}, "stdin": "x"},
		`sandbox "mid" was suspended while this call used it (its Pod was deleted); its files are kept: call again to resume it`)
	if out := ok[ExecOutput](f, toolExec, map[string]any{"sandbox": "mid", "command": []string{"true"}}); !strings.HasPrefix(out.Resumed, "suspended ") {
		t.Fatalf("the call after: %+v, want it resumed", out)
	}
}

// The server's own persistence settings are checked when it starts, in
// its flags' names.
func TestPersistOptions(t *testing.T) {
	for _, c := range []struct {
		p    Persist
		want string
	}{
		{Persist{MaxSize: resource.MustParse("-1Gi")}, "--persist-max must not be negative (got -1Gi)"},
		{Persist{MaxSize: resource.MustParse("1Gi"), MaxRetain: time.Second}, "--persist-retain must be at least 1m, or 0 to keep suspended workspaces until they are deleted (got 1s)"},
		{Persist{MaxSize: resource.MustParse("1Gi"), StorageClasses: []string{"Not_A_Class"}}, `--persist-storage-class "Not_A_Class" is not a StorageClass name (a DNS subdomain)`},
	} {
		o := testOptions(fakeCluster(), &hostExecutor{})
		o.Persist = c.p
		if _, err := New(o); err == nil || err.Error() != c.want {
			t.Errorf("New with %+v: %v, want %q", c.p, err, c.want)
		}
	}
}
