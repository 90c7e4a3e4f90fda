#!/usr/bin/env bash
# go run ./bench on the real node's cluster: the local control plane without
# kwok, test/realnode's qemu guest (a real kubelet and containerd, TCG) as its
# only node, and the rows that fit a 2-CPU, 3 GiB guest, sandboxes and pods
# sized alike (-cpu/-memory). Times under TCG show that each path works on a
# real node, not its speed.
#
#   bench/on-realnode.sh [bench flags...]     e.g. -n 3 -json rn.json
#   ROWS='^exec -- true$' bench/on-realnode.sh
#
# One qemu guest at a time on a machine: take the lock the realnode tier's
# users share (flock /tmp/agentkernel-realnode.lock bench/on-realnode.sh).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
dir=$(mktemp -d "${TMPDIR:-/tmp}/agentkernel-bench-realnode.XXXXXX")
log=$dir/guest.log

go run ./test/cluster build > /dev/null
go run ./test/cluster up --no-kwok --dir "$dir/cluster" >&2
bash test/realnode/build/build.sh > /dev/null
go build -o "$dir/realnode" ./test/realnode/cmd/realnode
"$dir/realnode" --cluster-dir "$dir/cluster" > "$log" 2>&1 &
guest=$!
stop() {
	kill -INT "$guest" 2> /dev/null && wait "$guest" || true
	go run ./test/cluster down --dir "$dir/cluster" > /dev/null 2>&1 || true
	rm -rf "$dir"
}
trap stop EXIT
until grep -q "is Ready" "$log"; do
	kill -0 "$guest" 2> /dev/null || { cat "$log" >&2; exit 1; }
	sleep 5
done
echo "bench/on-realnode.sh: the guest is Ready" >&2
go run ./bench -kubeconfig "$dir/cluster/admin.kubeconfig" -warmup 1 \
	-cpu 100m -memory 256Mi -scale-cpu 100m -scale-memory 256Mi \
	-run "${ROWS:-^(list \(one API call\)|create → exec-ready|delete → gone|exec -- true|exec -- true ×20, sequential|exec -- true ×20 through MCP, sequential|run one-shot.*|create --pool → exec-ready.*|claim → exec-ready, in-process|cp 5,000 × 1 KiB files in)$}" \
	"$@"
