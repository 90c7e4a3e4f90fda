package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/doctor"
	"github.com/agentkernel/kubectl-agentkernel/pkg/rbac"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
)

// The plugin's least privilege, proven. Every command of the plugin is a
// row here: what to set up (as admin), the command line as a user runs it,
// and the permissions it uses (as rbac.Permission strings, the first one
// it asks for first). The tests below prove, against the real API server:
//
//   - every row passes as a user bound only to the Role `rbac` prints;
//   - in a namespace where that user has nothing, every row is refused with
//     one line that names the permission it lacks, and leaves nothing;
//   - every permission of the Role is needed: without it, a row that
//     claims it no longer passes — so the Role holds no more than the
//     commands use, and a command that starts to need more fails here;
//   - the rows together claim exactly the Role's permissions.
//
// A new command adds a row (usually one line); if it calls a new API, it
// adds a line to rbac.Permissions too. In args, {ns} is the namespace, {dir}
// a local directory with in.txt in it, {run} a number unique to each run.
var rbacRows = []rbacRow{
	{name: "version", args: "version"},
	{name: "create", args: "create rb-create -n {ns}", setup: absent("rb-create"),
		needs: []string{"create pods", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods", "list networkpolicies.networking.k8s.io"}},
	{name: "create --secret-env", args: "create rb-secret -n {ns} --secret-env E2E_RBAC_SECRET", setup: absent("rb-secret"),
		needs: []string{"create pods", "create secrets", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods"}},
	{name: "create, egress: finds the cluster's DNS", args: "create rb-egress -n {ns} --profile moderate", setup: absent("rb-egress"), check: usesClusterDNS("rb-egress"),
		needs: []string{"create pods", "get services -n kube-system", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods"}},
	{name: "create: warns of widening policies", args: "create rb-widened -n {ns}", setup: all(absent("rb-widened"), wideningPolicy), check: warnsOfWideningPolicy,
		needs: []string{"create pods", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods", "list networkpolicies.networking.k8s.io"}},
	{name: "create over a previous sandbox's stale objects", args: "create rb-stale -n {ns} --secret-env E2E_RBAC_SECRET", setup: all(absent("rb-stale"), staleDependents("rb-stale")),
		check: replacedStale("rb-stale"),
		needs: []string{"create pods", "create secrets", "get secrets", "delete secrets", "create networkpolicies.networking.k8s.io", "get networkpolicies.networking.k8s.io", "delete networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods"}},
	{name: "create that fails undoes itself", args: "create rb-undo -n {ns} --secret-env E2E_RBAC_SECRET --timeout 1ms", setup: absent("rb-undo"),
		fails: "was not running within 1ms", check: nothingOf("rb-undo"),
		needs: []string{"create pods", "create secrets", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "delete pods", "delete secrets", "delete networkpolicies.networking.k8s.io"}},
	{name: "exec", args: "exec rb-x -n {ns} -- true", setup: running("rb-x"), needs: []string{"get pods", "create pods/exec"}},
	{name: "cp in", args: "cp {dir}/in.txt rb-x:/workspace/{ns}/ -n {ns}", setup: running("rb-x"), needs: []string{"get pods", "create pods/exec"}},
	{name: "cp out", args: "cp rb-x:/workspace/{ns}/in.txt {dir}/out-{run}.txt -n {ns}", setup: all(running("rb-x"), fileIn("rb-x")),
		needs: []string{"get pods", "create pods/exec"}},
	{name: "list", args: "list -n {ns} -o wide", needs: []string{"list pods"}},
	{name: "list -A", args: "list -A", needs: []string{"list pods -A"}},
	{name: "delete", args: "delete rb-del -n {ns}", setup: running("rb-del"), needs: []string{"get pods", "delete pods", "list pods", "watch pods"}},
	{name: "delete -l", args: "delete -l rbac-row=del -n {ns}", setup: running("rb-del-l", "-l", "rbac-row=del"), needs: []string{"list pods", "delete pods", "watch pods"}},
	{name: "run: one-shot, a generated name, copies in and out", args: "run -n {ns} --copy-in {dir}/in.txt:/workspace/{ns}/run-{run}.txt --copy-out /workspace/{ns}/run-{run}.txt:{dir}/run-out-{run}.txt -- true",
		check: copiedOut("run-out-{run}.txt"), steps: true,
		needs: []string{"create pods", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods", "create pods/exec", "delete pods"}},
	{name: "create --command: a main process", args: "create rb-main -n {ns} --command -- sleep 3600", setup: absent("rb-main"),
		needs: []string{"create pods", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods"}},
	{name: "attach", args: "attach rb-attach -n {ns} -i=false", setup: withMain("rb-attach"), drive: attached,
		needs: []string{"get pods", "create pods/attach"}},
	{name: "shell", args: "shell rb-x -n {ns}", stdin: "echo in-the-shell; exit 0\n", setup: running("rb-x"), check: printed("in-the-shell"),
		needs: []string{"get pods", "create pods/exec"}},
	{name: "logs", args: "logs rb-x -n {ns}", setup: running("rb-x"), check: printed(kwokLog),
		needs: []string{"get pods", "get pods/log"}},
	{name: "port-forward", args: "port-forward rb-x -n {ns} :8080", setup: running("rb-x"), drive: portForwardEcho,
		needs: []string{"get pods", "create pods/portforward"}},
	{name: "agents", args: "agents"},
	{name: "pool create", args: "pool create rb-pc --size 1 -n {ns}", setup: poolAbsent("rb-pc"),
		needs: []string{"create podtemplates", "list pods", "create pods", "create networkpolicies.networking.k8s.io", "patch pods", "watch pods", "get podtemplates"}},
	{name: "pool create that fails undoes itself", args: "pool create rb-pu --size 1 -n {ns} --timeout 1ms", setup: poolAbsent("rb-pu"),
		fails: "was not ready within 1ms", check: poolGone("rb-pu"),
		needs: []string{"create podtemplates", "list pods", "create pods", "create networkpolicies.networking.k8s.io", "patch pods", "delete podtemplates", "delete pods"}},
	{name: "pool list", args: "pool list -n {ns}", setup: poolReady("rb-pl"), check: printed("rb-pl"),
		needs: []string{"list podtemplates", "list pods"}},
	{name: "pool list -A", args: "pool list -A --no-reconcile", setup: poolReady("rb-pl"), check: printed("rb-pl"),
		needs: []string{"list podtemplates -A", "list pods -A"}},
	{name: "pool scale", args: "pool scale rb-ps --size 2 -n {ns}", setup: poolOfSize("rb-ps", 1),
		needs: []string{"get podtemplates", "patch podtemplates", "list pods", "create pods", "create networkpolicies.networking.k8s.io", "patch pods", "watch pods"}},
	{name: "pool delete", args: "pool delete rb-pd -n {ns}", setup: poolReady("rb-pd"), check: poolGone("rb-pd"),
		needs: []string{"get podtemplates", "list pods", "delete pods", "delete podtemplates"}},
	{name: "create --pool: a claim, its environment delivered, the pool refilled", args: "create rb-claim --pool rb-pw -n {ns} --env MODE=rbac",
		setup: all(claimAbsent("rb-claim"), poolReady("rb-pw")), check: printed("claimed warm from pool rb-pw"),
		needs: []string{"get podtemplates", "list pods", "patch pods", "create pods/exec", "create pods", "create networkpolicies.networking.k8s.io", "get networkpolicies.networking.k8s.io"}},
	{name: "gc", args: "gc -n {ns}", setup: orphans("rb-gone"), check: nothingOf("rb-gone"),
		needs: []string{"list pods", "get podtemplates", "list secrets", "get pods", "list networkpolicies.networking.k8s.io", "delete secrets", "delete networkpolicies.networking.k8s.io"}},
	{name: "create --allow-host, the proxy installed by an admin", args: "create rb-host -n {ns} --allow-host example.com",
		setup: all(egressInstalled, absent("rb-host")), check: installedNothing,
		needs: []string{"get services", "get deployments.apps", "get networkpolicies.networking.k8s.io", "create pods", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods"}},
	{name: "pool create --allow-host, the proxy installed by an admin", args: "pool create rb-hp --size 1 -n {ns} --allow-host example.com",
		setup: all(egressInstalled, poolAbsent("rb-hp")), check: installedNothing,
		needs: []string{"get services", "get deployments.apps", "get networkpolicies.networking.k8s.io", "create podtemplates", "list pods", "create pods", "create networkpolicies.networking.k8s.io", "patch pods", "watch pods", "get podtemplates"}},
	{name: "egress status", args: "egress status -n {ns} -o json", setup: egressInstalled, check: printed(`"installed": true`),
		needs: []string{"get deployments.apps", "get services", "get networkpolicies.networking.k8s.io", "list pods"}},
	{name: "mcp: create, exec, list and delete a sandbox", args: "mcp -n {ns}", setup: absent("rb-mcp"), drive: mcpTools("rb-mcp"), protocol: true,
		needs:   []string{"create pods", "create networkpolicies.networking.k8s.io", "list pods", "watch pods", "patch pods", "create pods/exec", "delete pods"},
		refused: mcpNamesWhatItLacks},
	{name: "serve: create, list and kill a sandbox over E2B's API", args: "serve -n {ns}", drive: serveDrive, protocol: true,
		needs:   []string{"list pods", "create pods", "create networkpolicies.networking.k8s.io", "watch pods", "patch pods", "get pods", "delete pods"},
		refused: serveNamesWhatItLacks},
	{name: "create --persist", args: "create rb-persist -n {ns} --persist=1Gi", setup: all(absentPersistent("rb-persist"), freeVolume), check: persistentOf("rb-persist"),
		needs: []string{"create persistentvolumeclaims", "create pods", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods", "get persistentvolumeclaims"}},
	{name: "suspend", args: "suspend rb-sus -n {ns}", setup: persistentRunning("rb-sus"),
		needs: []string{"get persistentvolumeclaims", "get pods", "create pods/exec", "delete pods", "list pods", "watch pods", "patch persistentvolumeclaims"}},
	{name: "resume", args: "resume rb-res -n {ns}", setup: persistentSuspended("rb-res"),
		needs: []string{"get persistentvolumeclaims", "get pods", "list pods", "create pods", "create networkpolicies.networking.k8s.io", "patch pods", "watch pods", "patch persistentvolumeclaims"}},
	{name: "exec resumes a suspended sandbox", args: "exec rb-wake -n {ns} -- true", setup: persistentSuspended("rb-wake"),
		needs: []string{"get pods", "list pods", "get persistentvolumeclaims", "create pods", "create networkpolicies.networking.k8s.io", "patch pods", "watch pods", "patch persistentvolumeclaims", "create pods/exec"}},
	{name: "delete a suspended sandbox", args: "delete rb-sdel -n {ns}", setup: persistentSuspended("rb-sdel"),
		needs: []string{"get pods", "list pods", "get persistentvolumeclaims", "delete persistentvolumeclaims"}},
	{name: "list shows suspended sandboxes", args: "list -n {ns}", setup: persistentSuspended("rb-slist"), check: showsSuspended("rb-slist"),
		needs: []string{"list pods", "list persistentvolumeclaims"}},
	{name: "gc: workspaces past their --retain", args: "gc -n {ns}", setup: retainedPast("rb-gc"), check: gcTook("rb-gc"),
		needs: []string{"list pods", "list persistentvolumeclaims", "delete persistentvolumeclaims", "list secrets", "list networkpolicies.networking.k8s.io"}},
	{name: "snapshot: a CSI volume snapshot", args: "snapshot rb-snap rb-snap-{run} -n {ns}", setup: all(withCSI, persistentRunning("rb-snap", "--storage-class", csiClass)), check: snapshotReady("rb-snap-{run}"),
		needs: []string{"get persistentvolumeclaims", "get pods", "create pods/exec", "create volumesnapshots.snapshot.storage.k8s.io", "watch volumesnapshots.snapshot.storage.k8s.io"}},
	{name: "snapshot that fails is deleted again", args: "snapshot rb-snap rb-bad-{run} --class " + csiMissingClass + " -n {ns}", setup: all(withCSI, persistentRunning("rb-snap", "--storage-class", csiClass)),
		fails: "Failed to get snapshot class", check: snapshotGone("rb-bad-{run}"),
		needs: []string{"get persistentvolumeclaims", "get pods", "create pods/exec", "create volumesnapshots.snapshot.storage.k8s.io", "watch volumesnapshots.snapshot.storage.k8s.io", "delete volumesnapshots.snapshot.storage.k8s.io"}},
	{name: "create --from SNAPSHOT", args: "create rb-restored -n {ns} --from rb-snapshot", setup: all(withCSI, absentPersistent("rb-restored"), snapshotOf("rb-snap", "rb-snapshot")), check: persistentOf("rb-restored"),
		needs: []string{"get persistentvolumeclaims", "get volumesnapshots.snapshot.storage.k8s.io", "create persistentvolumeclaims", "create pods", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods"}},
	{name: "create --from NAME: a CSI clone", args: "create rb-clone -n {ns} --from rb-csi", setup: all(withCSI, absentPersistent("rb-clone"), persistentRunning("rb-csi", "--storage-class", csiClass)), check: saysCloned,
		needs: []string{"get persistentvolumeclaims", "get csidrivers.storage.k8s.io -A", "get pods", "create pods/exec", "create persistentvolumeclaims", "create pods", "create networkpolicies.networking.k8s.io", "list pods", "patch pods", "watch pods"}},
	{name: "doctor", args: "doctor -n {ns} -o json", report: true, check: doctorFindsNoRefusal, setup: withSnapshotAPI,
		needs: []string{"get namespaces", "create pods", "create networkpolicies.networking.k8s.io", "list limitranges", "list resourcequotas",
			"list networkpolicies.networking.k8s.io", "list pods", "get services -n kube-system", "list runtimeclasses.node.k8s.io -A", "list storageclasses.storage.k8s.io -A",
			"list volumesnapshotclasses.snapshot.storage.k8s.io -A", "list podtemplates"},
		refused: doctorNamesWhatItLacks},
}

type rbacRow struct {
	name  string
	args  string // split on spaces
	stdin string
	setup func(t *testing.T, ns string)
	// drive runs a command that does not end by itself (attach,
	// port-forward) or speaks a protocol (mcp), instead of running it to
	// its end: it returns what the command did, exit 0 when it behaved.
	drive func(t *testing.T, kubeconfig string, args []string) result
	// steps: it prints its progress (run), so the error line, still one,
	// comes last.
	steps bool
	// protocol: refusals come back in the protocol (as a tool error), not
	// as an error line; refused checks them.
	protocol bool
	// fails, if set, is what the command's error must say: it is expected
	// to fail, for a reason that is no permission.
	fails string
	// report: the exit code is the command's verdict, not ours (doctor).
	report bool
	check  func(ns string, r rbacRun) error
	needs  []string
	// refused checks the refusal in a namespace where the user has
	// nothing, if not the usual one line naming needs' first namespaced
	// permission.
	refused func(ns string, r result) error
}

// run sets the row up and runs it as kubeconfig; the error says how it
// did not pass.
func (row rbacRow) run(t *testing.T, kubeconfig, ns, dir string, n int) (result, error) {
	t.Helper()
	if row.setup != nil {
		row.setup(t, ns)
	}
	args := strings.Fields(strings.NewReplacer("{ns}", ns, "{dir}", dir, "{run}", strconv.Itoa(n)).Replace(row.args))
	var r result
	if row.drive != nil {
		r = row.drive(t, kubeconfig, args)
	} else {
		r = pluginAs(t, kubeconfig, row.stdin, args...)
	}
	switch {
	case strings.Contains(r.stdout+r.stderr, "forbidden"):
		return r, errors.New("the API server refused it something")
	case row.fails == "" && !row.report && r.code != 0:
		return r, fmt.Errorf("exit %d", r.code)
	case row.fails != "" && (r.code == 0 || !strings.Contains(r.stderr, row.fails)):
		return r, fmt.Errorf("it did not fail with %q", row.fails)
	}
	if row.check != nil {
		return r, row.check(ns, rbacRun{dir: dir, n: n, result: r})
	}
	return r, nil
}

// rbacRun is what a check sees: the result, and where the run was.
type rbacRun struct {
	result
	dir string
	n   int
}

func rbacPermission(t *testing.T, s string) rbac.Permission {
	t.Helper()
	p, ok := rbac.Find(s)
	if !ok {
		t.Fatalf("%q is no permission in rbac.Permissions", s)
	}
	return p
}

// The table and rbac.Permissions agree: nothing claimed that the Role
// lacks, nothing in the Role that no row claims. Runs without a cluster.
func TestRBACRowsClaimExactlyTheRole(t *testing.T) {
	claimed := map[string]bool{}
	for _, row := range rbacRows {
		for _, n := range row.needs {
			rbacPermission(t, n)
			claimed[n] = true
		}
	}
	for _, p := range rbac.Permissions {
		if !claimed[p.String()] {
			t.Errorf("no command of the table uses %q: drop it from rbac.Permissions, or add the row that needs it", p)
		}
	}
}

const rbacSecret = "rbac-test-value"

// rbacSetup makes a namespace, a user bound by the Role the plugin prints
// by default (namespace and DNS reader), another also bound by the
// optional ClusterRole (--all-namespaces), and what the rows need.
func rbacSetup(t *testing.T) (ns, dir string, plain, full user) {
	t.Helper()
	requireUsers(t)
	requireSimulated(t)
	t.Setenv("E2E_RBAC_SECRET", rbacSecret)
	t.Setenv("E2E_RBAC_MODEL_KEY", rbacModelKey)
	withClusterDNS(t)
	ns = newNamespace(t)
	plain, full = newUser(t, "e2e-rbac"), newUser(t, "e2e-rbac-all")
	applyRBAC(t, "-n", ns, "--user", plain.name)
	applyRBAC(t, "-n", ns, "--user", full.name, "--all-namespaces")
	for _, p := range rbac.Permissions {
		waitForAccess(t, full, ns, p, true)
		waitForAccess(t, plain, ns, p, p.Scope != rbac.Cluster)
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from the test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return ns, dir, plain, full
}

// needsCluster: the row uses a permission only the optional ClusterRole gives.
func needsCluster(t *testing.T, row rbacRow) bool {
	for _, n := range row.needs {
		if rbacPermission(t, n).Scope == rbac.Cluster {
			return true
		}
	}
	return false
}

func TestRBACRoleIsEnoughAndOtherNamespacesRefuse(t *testing.T) {
	ns, dir, plain, full := rbacSetup(t)
	for i, row := range rbacRows {
		t.Run(row.name, func(t *testing.T) {
			u := plain
			if needsCluster(t, row) {
				u = full
			}
			if r, err := row.run(t, u.kubeconfig, ns, dir, i); err != nil {
				t.Fatalf("as %s with the plugin's Role: %v:\n%s", u.name, err, r)
			}
		})
	}

	// In a namespace where the user is given nothing.
	u := plain
	other := newNamespace(t)
	for i, row := range rbacRows {
		first := ""
		for _, n := range row.needs {
			if p := rbacPermission(t, n); p.Scope == rbac.Namespace || p.Scope == "" {
				first = n
				break
			}
		}
		if first == "" {
			continue // nothing of a namespace to refuse
		}
		t.Run("refused: "+row.name, func(t *testing.T) {
			args := strings.Fields(strings.NewReplacer("{ns}", other, "{dir}", dir, "{run}", "x"+strconv.Itoa(i)).Replace(row.args))
			var r result
			if row.drive != nil {
				r = row.drive(t, u.kubeconfig, args)
			} else {
				r = pluginAs(t, u.kubeconfig, row.stdin, args...)
			}
			if r.code == 0 {
				t.Fatalf("a namespace where %s has nothing let it through:\n%s", u.name, r)
			}
			errLines := r.stderr
			if row.steps {
				// Its progress lines may come first: the error is the last line, and the only one.
				if i := strings.LastIndex(strings.TrimSuffix(r.stderr, "\n"), "\n"); i >= 0 {
					errLines = r.stderr[i+1:]
				}
				if strings.Count(r.stderr, "error: ") != 1 {
					t.Errorf("not one error line:\n%s", r)
				}
			}
			if !row.protocol && (strings.Count(errLines, "\n") != 1 || !strings.HasPrefix(errLines, "error: ")) {
				t.Errorf("not one error line:\n%s", r)
			}
			if row.refused != nil {
				if err := row.refused(other, r); err != nil {
					t.Errorf("%v:\n%s", err, r)
				}
			} else {
				p := rbacPermission(t, first)
				if want := fmt.Sprintf("cannot %s resource %q", p.Verb, p.Resource); !strings.Contains(r.stderr, want) {
					t.Errorf("the error does not name the permission it lacks (%q):\n%s", want, r)
				}
				if !strings.Contains(r.stderr, "kubectl agentkernel rbac -n "+other) {
					t.Errorf("the error does not say how to get it:\n%s", r)
				}
			}
			assertNothingLeft(t, other)
		})
	}
}

// Each permission of the Role is needed: without it, a row that claims it
// does not pass. (A verb the code stopped using would fail here as "no row
// fails without it"; one it started to use, above.)
func TestRBACEveryPermissionIsNeeded(t *testing.T) {
	ns, dir, _, u := rbacSetup(t)
	subject := &rbac.Options{Namespace: ns, Cluster: true, DNS: true}
	s, err := subjectOf(u)
	if err != nil {
		t.Fatal(err)
	}
	subject.Subject = s
	full := rbac.Objects(*subject)
	run := 0
	for _, p := range rbac.Permissions {
		t.Run(p.String(), func(t *testing.T) {
			less := *subject
			less.Without = []string{p.String()}
			for _, q := range rbac.Permissions { // the cluster-wide twin grants it too
				if q.Scope == rbac.Cluster && q.Verb == p.Verb && q.GroupResource() == p.GroupResource() {
					less.Without = append(less.Without, q.String())
				}
			}
			applyObjects(t, full, rbac.Objects(less))
			waitForAccess(t, u, ns, p, false)
			defer func() {
				applyObjects(t, full, full)
				waitForAccess(t, u, ns, p, true)
			}()
			var tried []string
			for _, row := range rbacRows {
				if !contains(row.needs, p.String()) {
					continue
				}
				run++
				r, err := row.run(t, u.kubeconfig, ns, dir, run)
				if err != nil {
					t.Logf("without %q, %q does not pass (%v), as it should", p, row.name, err)
					return
				}
				tried = append(tried, fmt.Sprintf("%s:\n%s", row.name, r))
			}
			t.Errorf("without %q every row that claims it still passes; is it needed?\n%s", p, strings.Join(tried, "\n"))
		})
	}
}

// The Role binds to users, groups and service accounts alike.
func TestRBACSubjects(t *testing.T) {
	requireUsers(t)
	requireSimulated(t)
	ns := newNamespace(t)
	createSandbox(t, ns, "rb-subject")
	member := newUser(t, "e2e-rbac-member", "e2e-rbac-group")
	applyRBAC(t, "-n", ns, "--group", "e2e-rbac-group")
	sa := serviceAccountUser(t, ns, "runner")
	applyRBAC(t, "-n", ns, "--serviceaccount", ns+":runner")
	for _, u := range []user{member, sa} {
		waitForAccess(t, u, ns, rbacPermission(t, "create pods/exec"), true)
		r := pluginAs(t, u.kubeconfig, "", "exec", "rb-subject", "-n", ns, "--", "echo", "as "+u.name)
		if r.code != 0 || r.stdout != "as "+u.name+"\n" {
			t.Errorf("exec as %s: %s", u.name, r)
		}
		if r := pluginAs(t, u.kubeconfig, "", "list", "-n", ns, "-o", "name"); r.code != 0 || r.stdout != "sandbox/rb-subject\n" {
			t.Errorf("list as %s: %s", u.name, r)
		}
	}
}

func subjectOf(u user) (*rbacv1.Subject, error) { return rbac.Subject(u.name, "", "") }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Setups, as admin.

func all(setups ...func(*testing.T, string)) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		for _, s := range setups {
			s(t, ns)
		}
	}
}

// absent removes a sandbox and its objects, and waits until they are gone,
// so that the row's create starts clean.
func absent(name string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		ctx := context.Background()
		del := metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}
		_ = env.cs.CoreV1().Pods(ns).Delete(ctx, sandbox.PodName(name), del)
		_ = env.cs.CoreV1().Secrets(ns).Delete(ctx, sandbox.SecretName(name), del)
		_ = env.cs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, sandbox.PodName(name), del)
		eventually(t, time.Minute, "sandbox "+name+" gone", func() bool {
			_, e1 := env.cs.CoreV1().Pods(ns).Get(ctx, sandbox.PodName(name), metav1.GetOptions{})
			_, e2 := env.cs.CoreV1().Secrets(ns).Get(ctx, sandbox.SecretName(name), metav1.GetOptions{})
			_, e3 := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, sandbox.PodName(name), metav1.GetOptions{})
			return apierrors.IsNotFound(e1) && apierrors.IsNotFound(e2) && apierrors.IsNotFound(e3)
		})
	}
}

// running makes sure the sandbox exists and runs.
func running(name string, extra ...string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		if p, err := env.cs.CoreV1().Pods(ns).Get(context.Background(), sandbox.PodName(name), metav1.GetOptions{}); err == nil && p.DeletionTimestamp == nil {
			return
		}
		absent(name)(t, ns)
		createSandbox(t, ns, name, extra...)
	}
}

func fileIn(name string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from the test\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustPlugin(t, "", "cp", filepath.Join(dir, "in.txt"), name+":/workspace/"+ns+"/", "-n", ns)
	}
}

func wideningPolicy(t *testing.T, ns string) {
	t.Helper()
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-all-egress"}, Spec: networkingv1.NetworkPolicySpec{
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, Egress: []networkingv1.NetworkPolicyEgressRule{{}},
	}}
	if _, err := env.cs.NetworkingV1().NetworkPolicies(ns).Create(context.Background(), np, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// staleDependents leaves what a sandbox of an earlier plugin version left
// behind: its Secret and NetworkPolicy, ours, with no owner.
func staleDependents(name string) func(*testing.T, string) {
	return func(t *testing.T, ns string) {
		t.Helper()
		ctx := context.Background()
		labels := map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelSandbox: name}
		if _, err := env.cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: sandbox.SecretName(name), Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: sandbox.PodName(name), Labels: labels}, Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: labels}}}
		if _, err := env.cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// The kube-dns Service of a cluster whose DNS answers on 5353, so that a
// sandbox that found it differs from one that did not.
func withClusterDNS(t *testing.T) {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"k8s-app": "kube-dns"},
		Ports: []corev1.ServicePort{
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(5353)},
			{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(5353)},
		},
	}}
	ctx := context.Background()
	if _, err := env.cs.CoreV1().Services("kube-system").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the test cluster has its own kube-dns Service, or: %v", err)
	}
	t.Cleanup(func() {
		_ = env.cs.CoreV1().Services("kube-system").Delete(context.Background(), "kube-dns", metav1.DeleteOptions{})
	})
}

// Checks.

func usesClusterDNS(name string) func(string, rbacRun) error {
	return func(ns string, _ rbacRun) error {
		np, err := env.cs.NetworkingV1().NetworkPolicies(ns).Get(context.Background(), sandbox.PodName(name), metav1.GetOptions{})
		if err != nil {
			return err
		}
		found := fence.DetectDNS(context.Background(), env.cs)
		want := fence.EgressRules(found.Servers)
		for _, r := range np.Spec.Egress {
			if reflect.DeepEqual(r, want[0]) {
				return nil
			}
		}
		return fmt.Errorf("the policy does not allow the cluster's DNS (%s): %+v", found.Found, np.Spec.Egress)
	}
}

func warnsOfWideningPolicy(_ string, r rbacRun) error {
	if !strings.Contains(r.stderr, `Warning: NetworkPolicy "allow-all-egress" also selects sandbox/rb-widened and allows it egress`) {
		return errors.New("no warning about the allow-all-egress policy")
	}
	return nil
}

func replacedStale(name string) func(string, rbacRun) error {
	return func(ns string, _ rbacRun) error {
		ctx := context.Background()
		pod, err := env.cs.CoreV1().Pods(ns).Get(ctx, sandbox.PodName(name), metav1.GetOptions{})
		if err != nil {
			return err
		}
		s, err := env.cs.CoreV1().Secrets(ns).Get(ctx, sandbox.SecretName(name), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ref := metav1.GetControllerOf(s); ref == nil || ref.UID != pod.UID || string(s.Data["E2E_RBAC_SECRET"]) != rbacSecret {
			return fmt.Errorf("the stale Secret was not replaced: %+v", s.ObjectMeta)
		}
		return nil
	}
}

func nothingOf(name string) func(string, rbacRun) error {
	return func(ns string, _ rbacRun) error {
		ctx := context.Background()
		var left string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			_, e1 := env.cs.CoreV1().Pods(ns).Get(ctx, sandbox.PodName(name), metav1.GetOptions{})
			_, e2 := env.cs.CoreV1().Secrets(ns).Get(ctx, sandbox.SecretName(name), metav1.GetOptions{})
			_, e3 := env.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, sandbox.PodName(name), metav1.GetOptions{})
			left = ""
			for what, err := range map[string]error{"pod": e1, "secret": e2, "networkpolicy": e3} {
				if !apierrors.IsNotFound(err) {
					left += " " + what
				}
			}
			return left == "", nil
		})
		if err != nil {
			return fmt.Errorf("the failed create left behind:%s", left)
		}
		return nil
	}
}

// doctorFindsNoRefusal: apart from doctor's own permission lines (which
// would make this circular), nothing failed, and nothing was refused.
func doctorFindsNoRefusal(_ string, r rbacRun) error {
	var report struct{ Items []doctor.Result }
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		return fmt.Errorf("doctor -o json: %v", err)
	}
	for _, f := range report.Items {
		if f.Check != "permissions" && (f.Status == doctor.Fail || strings.Contains(f.Found, "cannot")) {
			return fmt.Errorf("doctor: %s %s: %s", f.Status, f.Check, f.Found)
		}
	}
	return nil
}

func doctorNamesWhatItLacks(ns string, r result) error {
	var report struct{ Items []doctor.Result }
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		return fmt.Errorf("doctor -o json: %v", err)
	}
	want := fmt.Sprintf("may not create, get, list, watch, patch, delete pods in namespace %q", ns)
	for _, f := range report.Items {
		if f.Status == doctor.Fail && strings.Contains(f.Found, want) && strings.Contains(f.Action, "kubectl agentkernel rbac -n "+ns) {
			return nil
		}
	}
	return fmt.Errorf("doctor does not fail with %q", want)
}
