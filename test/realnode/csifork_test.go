package realnode

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The plugin's CSI paths on real storage (the guest's CSI driver, its
// provisioner, snapshotter and snapshot controller): a snapshot of a
// persistent sandbox, a fork restored from it that sees the snapshot's
// files (not what the original wrote later) and can go on writing them,
// and a clone of the sandbox itself — the files never leave the cluster.
func TestCSISnapshotAndForkOnARealNode(t *testing.T) {
	s := needPlugin(t)
	ctx := context.Background()
	class, _ := s.csiStorage(ctx, t)
	const name, snap = "rn-csi", "rn-csi-snap"
	r := s.createPersistent(ctx, t, name, class)
	record("realnode: create --persist on CSI storage (→ Running)", r.took)
	before := files{"/workspace/notes.txt": randomText(t), "~/.agent-history": randomText(t)}
	uid := s.writeFiles(ctx, t, name, before)

	c, cancel := context.WithTimeout(ctx, slowTimeout)
	defer cancel()
	r = s.pluginRun(c, "", "snapshot", name, snap, "-n", s.namespace, "--timeout", slowTimeout.String())
	if r.code != 0 || !strings.Contains(r.stdout, "volumesnapshot/"+snap+" of sandbox/"+name+"'s workspace ready to use") {
		t.Fatalf("snapshot: %s\n%s", r, s.node.Diagnostics())
	}
	record("realnode: snapshot NAME (CSI → ready to use)", r.took)
	logSpeed(t, "plugin-csi-snapshot-ready", r.took)
	t.Cleanup(func() {
		_ = csiSetup.dynamic.Resource(volumeSnapshots).Namespace(s.namespace).Delete(context.Background(), snap, metav1.DeleteOptions{})
	})

	// What the original writes after the snapshot is not in it.
	later := files{"/workspace/notes.txt": randomText(t)}
	s.writeFiles(ctx, t, name, later)

	r = s.createPersistent(ctx, t, "rn-csi-fork", class, "--from", snap)
	if !strings.Contains(r.stderr, "restoring volumesnapshot/"+snap+" into sandbox/rn-csi-fork's workspace (a CSI restore)") {
		t.Fatalf("create --from SNAPSHOT took another way: %s", r)
	}
	record("realnode: create --from SNAPSHOT (CSI restore → Running)", r.took)
	logSpeed(t, "plugin-csi-restore-running", r.took)
	// The driver copies owners as they were: the files are the source
	// sandbox's UID's; the fork's fsGroup lets it go on writing them.
	s.checkFiles(ctx, t, "rn-csi-fork", uid, before)
	if r := s.sandboxExec(ctx, "rn-csi-fork", "", "sh", "-c", "echo more >> /workspace/notes.txt && echo new > /workspace/new.txt"); r.code != 0 {
		t.Errorf("the fork cannot write its restored files: %s", r)
	}
	s.checkFiles(ctx, t, name, uid, later) // the fork's writes stay its own

	r = s.createPersistent(ctx, t, "rn-csi-twin", class, "--from", name)
	if !strings.Contains(r.stderr, "cloning the workspace of sandbox/"+name) {
		t.Fatalf("create --from NAME took another way: %s", r)
	}
	record("realnode: create --from NAME (CSI clone → Running)", r.took)
	logSpeed(t, "plugin-csi-clone-running", r.took)
	s.checkFiles(ctx, t, "rn-csi-twin", uid, files{"/workspace/notes.txt": later["/workspace/notes.txt"], "~/.agent-history": before["~/.agent-history"]})
}
