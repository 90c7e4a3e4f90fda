package localcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// kwok runs every `kubectl exec` command ON THE HOST. It is therefore
// started like this (see kwokCommand):
//
//	setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs --   (root only: become nobody)
//	  unshare --user --map-root-user --mount --propagation private --      (own user + mount namespace)
//	    sh -c kwokSandboxScript                                            (tmpfs over the sandbox paths)
//	      unshare --user --map-user=65534 --map-group=65534 -- kwok ...    (give up the namespace's root)
//	        (setpriv --pdeathsig=KILL -- kwok ... unless Options.Detach)
//
// so kwok and what it execs run as host uid 65534 without any capability,
// in a private mount namespace where /workspace, /tmp, /var/tmp, /dev/shm,
// /home (with an empty /home/sandbox) and /run are fresh tmpfs mounts: the
// sandbox sees the host's /usr, /bin, /etc read-only (by permissions), and
// what it writes to its own paths never reaches the host. The second user
// namespace matters: as root of the first one a command could unmount the
// tmpfs and write to the host's /tmp. Nothing changes in the host's mount
// table; the mounts vanish with kwok.
const (
	// SandboxUID is the host uid kwok and every exec'd command run as
	// (nobody); `id -u` in a pod prints it as well.
	SandboxUID = 65534

	// nsKwokDir is where <Dir>/kwok (kwok's config, certificates and a copy
	// of its binary) appears inside kwok's mount namespace.
	nsKwokDir = "/run/kwok"

	// KwokWorkDirBase is Cluster.KwokWorkDir: a command exec'd in pod P of
	// namespace N runs in KwokWorkDirBase/N/P, created 0700 on first use
	// (our kwok patch). It is on kwok's private tmpfs over /run, so it exists
	// only inside kwok's mount namespace; from the host, read it through
	// Cluster.SandboxPath.
	KwokWorkDirBase = "/run/kwok-work"

	// kwokNodeAnnotationKey=Value marks the Node objects kwok manages.
	kwokNodeAnnotationKey   = "kwok.x-k8s.io/node"
	kwokNodeAnnotationValue = "fake"

	// NoTarPodName is the pod name whose exec'd commands see a PATH with a
	// few basic tools but no tar, for the "image has no tar" fallback tests.
	NoTarPodName = "agentkernel-e2e-notar" // the Pod of sandbox "e2e-notar"

	// HoldLabel on a pod keeps it Pending: the simulated node never makes it
	// ready, so tests can interrupt a create that is still waiting.
	HoldLabel = "e2e.agentkernel/hold"
)

// SandboxMountPoints are the host directories kwok's namespace mounts
// tmpfs over (/var/tmp and /dev/shm only if they exist). Only /workspace
// is created by the harness when missing (as an empty directory);
// /home/sandbox lives inside the tmpfs mounted over /home.
var SandboxMountPoints = []string{"/workspace", "/tmp", "/var/tmp", "/dev/shm", "/home", "/run"}

// noTarTools are linked into the e2e-notar pod's PATH.
var noTarTools = []string{"sh", "cat", "env", "test", "true", "false", "echo", "ls", "mkdir"}

// sandboxPath is the PATH of exec'd commands (kwok's own is the same).
const sandboxPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// kwokSandboxScript runs as root of kwok's first user namespace, started
// in Dir/kwok as its working directory (unshare carries the working
// directory over into the new mount namespace). Through "." Dir/kwok is
// reachable even when kwok's uid may not enter Dir's parents (a
// t.TempDir(), /run/user/N) and even when it sits under a path about to be
// masked: it is bind-mounted onto /workspace first and moved to /run/kwok
// once /run is a tmpfs. Its arguments are the command that runs kwok.
var kwokSandboxScript = `set -eu
mount --no-canonicalize --bind . /workspace
mount -t tmpfs -o size=256m,mode=0755 tmpfs /run
mkdir -m 0755 ` + nsKwokDir + `
mount --move /workspace ` + nsKwokDir + `
mkdir -m 0755 ` + KwokWorkDirBase + `
mount -t tmpfs -o size=2g,mode=0755 tmpfs /workspace
mount -t tmpfs -o size=2g,mode=1777 tmpfs /tmp
if [ -d /var/tmp ]; then mount -t tmpfs -o size=256m,mode=1777 tmpfs /var/tmp; fi
if [ -d /dev/shm ]; then mount -t tmpfs -o size=64m,mode=1777 tmpfs /dev/shm; fi
mount -t tmpfs -o size=2g,mode=0755 tmpfs /home
mkdir -m 0755 /home/sandbox
cd /
exec unshare --user --map-user=` + strconv.Itoa(SandboxUID) + ` --map-group=` + strconv.Itoa(SandboxUID) + ` -- "$@"
`

// kwokCommand returns the argv that starts kwok sandboxed; asRoot drops
// from root to SandboxUID first. It must start in Dir/kwok. Unless detach,
// kwok gets SIGKILL when its parent (the process that called Up) dies; the
// parent-death signal must be set last, as every change of credentials on
// the way clears it.
func kwokCommand(asRoot, detach bool) []string {
	argv := []string{"setpriv"}
	if asRoot {
		argv = append(argv, fmt.Sprintf("--reuid=%d", SandboxUID), fmt.Sprintf("--regid=%d", SandboxUID), "--clear-groups")
	}
	argv = append(argv, "--no-new-privs", "--",
		"unshare", "--user", "--map-root-user", "--mount", "--propagation", "private", "--",
		"sh", "-c", kwokSandboxScript, "kwok-sandbox",
	)
	if !detach {
		argv = append(argv, "setpriv", "--pdeathsig=KILL", "--")
	}
	return append(argv, nsKwokDir+"/kwok",
		"--config="+nsKwokDir+"/kwok.yaml",
		"--kubeconfig="+nsKwokDir+"/kubeconfig",
	)
}

// kwokEnv is kwok's whole environment. Exec'd commands inherit it, so
// nothing of the harness's environment (KUBECONFIG, tokens) leaks into them.
func kwokEnv() []string {
	return []string{"PATH=" + sandboxPath, "HOME=/home/sandbox", "LANG=C.UTF-8"}
}

// kwokConfigInput is what kwokConfig needs.
type kwokConfigInput struct {
	NodeName string
	Port     int    // kwok's HTTPS server: the node's kubelet port
	Stages   string // kwok's default stages, YAML documents
}

// kwokConfig renders kwok's configuration file: options, stages and the
// cluster-wide exec/logs/attach/port-forward rules, all read from one file
// (no kwok CRDs are installed). Paths are as seen inside kwok's namespace.
func kwokConfig(in kwokConfigInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  # Pod IPs are fake; keep them apart from the service range 10.0.0.0/24.
  cidr: 10.244.0.0/16
  nodeIP: 127.0.0.1
  nodePort: %[1]d
  serverAddress: 127.0.0.1:%[1]d
  tlsCertFile: %[2]s/tls.crt
  tlsPrivateKeyFile: %[2]s/tls.key
  manageAllNodes: false
  manageSingleNode: ""
  manageNodesWithAnnotationSelector: %[3]s=%[4]s
  manageNodesWithLabelSelector: ""
  enableDebuggingHandlers: true
  enableProfilingHandler: false
  enableContentionProfiling: false
  # kwok refuses to start with 0 ("playStageParallelism must be greater than 0").
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 2
  nodeLeaseParallelism: 2
  nodeLeaseDurationSeconds: 40
  podsOnNodeSyncParallelism: 2
  enablePodsOnNodeSyncListPager: false
  enablePodsOnNodeSyncStreamWatch: true
`, in.Port, nsKwokDir, kwokNodeAnnotationKey, kwokNodeAnnotationValue)

	b.WriteString("---\n")
	b.WriteString(strings.TrimRight(holdPods(in.Stages), "\n"))
	b.WriteString("\n")

	// Rules are tried in order: the e2e-notar rule must come before the
	// catch-all.
	fmt.Fprintf(&b, `---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: a-e2e-notar
spec:
  selector:
    matchNames:
    - %[1]s
  execs:
  - local:
      workDir: %[2]s
      envs:
      - name: PATH
        value: %[3]s/notar-bin
      - name: HOME
        value: /home/sandbox
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: z-all-pods
spec:
  execs:
  - local:
      workDir: %[2]s
      envs:
      - name: PATH
        value: %[4]s
      - name: HOME
        value: /home/sandbox
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: all-pods
spec:
  logs:
  - logsFile: %[3]s/container.log
    follow: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterAttach
metadata:
  name: all-pods
spec:
  attaches:
  - logsFile: %[3]s/container.log
---
# Any port of any pod is an echo service: enough to test port-forward
# plumbing (kwok cannot tell the command which port was asked for).
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: all-pods
spec:
  forwards:
  - command:
    - cat
`, NoTarPodName, KwokWorkDirBase, nsKwokDir, sandboxPath)
	return b.String()
}

// containerLog is what `kubectl logs` and `kubectl attach` show for every
// pod: kwok serves logs only from a file in CRI log format.
const containerLog = "2026-01-01T00:00:00.000000000Z stdout F kwok: this container is simulated; kubectl exec runs commands in a sandbox on the host\n"

// writeNoTarBin makes dir with symlinks to the host's basic tools, but no tar.
func writeNoTarBin(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, tool := range noTarTools {
		target, err := lookPathIn(tool, sandboxPath)
		if err != nil {
			return fmt.Errorf("host tool %q for the %s pod: %w", tool, NoTarPodName, err)
		}
		if err := os.Symlink(target, filepath.Join(dir, tool)); err != nil {
			return err
		}
	}
	return nil
}

// lookPathIn is exec.LookPath with an explicit PATH.
func lookPathIn(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		candidate := filepath.Join(dir, name)
		if fi, err := os.Stat(candidate); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// holdPods makes kwok's pod-ready stage pass over pods labelled HoldLabel.
func holdPods(stages string) string {
	const anchor = "  name: pod-ready\n"
	i := strings.Index(stages, anchor)
	if i < 0 {
		return stages
	}
	const sel = "    matchExpressions:\n"
	j := strings.Index(stages[i:], sel)
	if j < 0 {
		return stages
	}
	at := i + j + len(sel)
	hold := fmt.Sprintf("    - key: '.metadata.labels[\"%s\"]'\n      operator: 'DoesNotExist'\n", HoldLabel)
	return stages[:at] + hold + stages[at:]
}
