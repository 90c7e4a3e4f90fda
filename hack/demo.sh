#!/usr/bin/env bash
# Sets everything up on a fresh machine and runs a short real session of
# kubectl agentkernel against a local Kubernetes v1.37.2 control plane built
# from source: create, exec, cp in and out, list, delete; a one-shot run; a
# warm pool and a claim from it; doctor.
#
# The node is SIMULATED (kwok): the API server, admission, scheduler and
# garbage collector are real, but commands "in" the sandbox run on this
# host, as an unprivileged user in a private mount namespace, not in a
# container. See test/realnode for a real kubelet in a qemu guest.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/deps.sh

mkdir -p bin
echo "==> building kubectl-agentkernel"
go build -o bin/kubectl-agentkernel ./cmd/kubectl-agentkernel
echo "==> building the test cluster (cached; the first time takes ~25 minutes on 2 cores)"
bins=$(go run ./test/cluster build | tail -1)

dir=$(mktemp -d)
cleanup() {
	go run ./test/cluster down --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir" "$work"
}
work=$(mktemp -d)
trap cleanup EXIT
echo "==> starting the control plane and a simulated node"
go run ./test/cluster up --dir "$dir" >/dev/null
export KUBECONFIG="$dir/admin.kubeconfig"
export PATH="$PWD/bin:$bins:$PATH" # kubectl finds the plugin on PATH

cat <<'NOTE'

  NOTE: the node is simulated (kwok). Everything the API server does is real,
  but commands "in" the sandbox run on THIS host (as nobody, in a private
  mount namespace), not in a container.

NOTE
run() { printf '\n$'; printf ' %q' "$@"; printf '\n'; "$@"; }
mkdir -p "$work/repo"
printf 'print("hello from the sandbox")\n' >"$work/repo/main.py"
printf 'echo "tests pass" > result.txt\n' >"$work/repo/test.sh"

run kubectl agentkernel create demo --create-namespace -n agents
run kubectl agentkernel list -n agents -o wide
run kubectl agentkernel cp "$work/repo" demo:/workspace/ -n agents
run kubectl agentkernel exec demo -n agents -w /workspace/repo -- sh test.sh
run kubectl agentkernel exec demo -n agents -- sh -c 'exit 42' || echo "(exit code $? passed through)"
run kubectl agentkernel cp demo:/workspace/repo/result.txt "$work/result.txt" -n agents
run cat "$work/result.txt"
run kubectl get pod,networkpolicy -n agents -l agentkernel/managed-by=agentkernel
run kubectl agentkernel delete demo -n agents

# The main job, in one command: a sandbox made, the repository copied in, a
# command run on it, the result copied out (also when it fails), the sandbox
# deleted; the exit status is the command's.
run kubectl agentkernel run -n agents --copy-in "$work/repo:/workspace/repo" \
	--copy-out "/workspace/repo/result.txt:$work/run-result.txt" -w /workspace/repo -- sh test.sh
run cat "$work/run-result.txt"

# Warm sandboxes: a pool of two, a claim that takes one at once.
run kubectl agentkernel pool create warm -n agents --size 2
run kubectl agentkernel create task-1 --pool warm -n agents --ttl 30m
run kubectl agentkernel exec task-1 -n agents -- echo "claimed, and running"
run kubectl agentkernel pool list -n agents
run kubectl agentkernel delete task-1 -n agents
run kubectl agentkernel pool delete warm -n agents

# What the cluster enforces, for its admin.
run kubectl agentkernel doctor -n agents || true
echo
echo "==> done; stopping the cluster"
