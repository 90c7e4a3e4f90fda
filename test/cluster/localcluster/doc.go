// Package localcluster runs a real Kubernetes v1.37.2 control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) on 127.0.0.1,
// optionally with one simulated node (kwok) whose `kubectl exec` runs
// commands in a sandbox on the host. It is the cluster the e2e tests,
// benchmarks and demo of kubectl-agentkernel run against.
//
// In a test:
//
//	b, err := localcluster.Build(ctx, os.Stderr) // cached; ~25 min cold on 2 cores
//	c, err := localcluster.Up(ctx, b, localcluster.Options{Kwok: true, Log: os.Stderr})
//	t.Cleanup(func() { c.Down() })
//	// KUBECONFIG=c.AdminKubeconfig; kubectl at b.Kubectl
//
// From a shell: go run ./test/cluster build|up|env|down (see test/cluster/main.go).
//
// # Binaries
//
// Build compiles etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubectl and kubelet from the test/cluster/components module
// (with version ldflags, so /version reports v1.37.2) and kwok v0.8.0 with
// test/cluster/kwok/kwok.patch, into
// ${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-agentkernel/cluster/<key>, where
// key hashes the components go.mod, go.sum and sources, the patch, the Go
// version and the build recipe. Built returns that directory only if it
// is complete.
//
// # State directory
//
// Everything of one cluster is under Cluster.Dir (mode 0700):
//
//	cluster.json                   what Attach reads: URLs, paths, PIDs (with start times)
//	admin.kubeconfig               e2e-admin, group system:masters (credentials embedded)
//	e2e-limited.kubeconfig         user and group e2e-limited, no RBAC granted
//	controller-manager.kubeconfig, scheduler.kubeconfig
//	pki/                           ca.crt ca.key, apiserver.*, apiserver-kubelet-client.*,
//	                               apiserver-etcd-client.*, etcd-server.*, admin.*, e2e-limited.*,
//	                               controller-manager.*, scheduler.*, kwok-client.*,
//	                               kwok-serving.*, sa.key sa.pub
//	etcd/                          etcd's data
//	logs/                          etcd.log kube-apiserver.log kube-controller-manager.log
//	                               kube-scheduler.log kwok.log (each starts with the command line)
//	kwok/                          owned by uid 65534 when run as root: kwok (binary copy),
//	                               kwok.yaml (options, stages, exec/logs/attach/port-forward
//	                               rules), tls.crt, notar-bin/, container.log; its kubeconfig
//	                               and tls.key are removed as soon as kwok runs
//
// # The kwok node and its sandbox
//
// Up registers Node "kwok-node" (annotation kwok.x-k8s.io/node=fake,
// InternalIP 127.0.0.1, kubelet port = kwok's HTTPS port) and runs kwok to
// manage it. Pods scheduled there become Running at once; `kubectl exec`
// runs the command on the host, in kwok's sandbox (see kwokCommand):
// host uid 65534 with no capabilities and no_new_privs, in a mount
// namespace with fresh tmpfs over /workspace, /tmp, /var/tmp, /dev/shm,
// /home (holding an empty /home/sandbox, the HOME) and /run. The sandbox
// shares the host's network, /usr, /etc (read-only by permissions) and
// process list; all pods share one sandbox filesystem, but each pod's
// commands start in their own KwokWorkDir/<namespace>/<pod>.
// Cluster.SandboxPath reads sandbox files from the host. Pod "e2e-notar"
// (any namespace) gets a PATH with sh, cat, env, test, true, false, echo,
// ls and mkdir but no tar. `kubectl logs` and `attach` show one fixed line;
// port-forward to any port is an echo service.
//
// Limits: kwok's port (HTTPS and plain HTTP on 127.0.0.1) has no
// authentication, so any local process can exec into the kwok node's pods;
// sandboxed commands reach the host's loopback services (etcd needs a
// client certificate, the apiserver a credential).
//
// Exit codes survive the exec protocol (0, 1, 42, 127 for a command that
// is not found, 126 when not executable, 128+n on signal n), stdin reaches
// EOF, so `kubectl cp` works: both need our kwok patch.
package localcluster
