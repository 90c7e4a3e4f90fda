#!/usr/bin/env bash
# Entry point of the realnode e2e tier: builds what is missing (cached) and
# runs the real-kubelet tests in a qemu guest joined to the local control plane.
#
#   test/realnode/run.sh [go test flags...]      e.g. -run TestSandbox
#   test/realnode/run.sh --estimate              seconds this machine would need; runs nothing
#
# The first line printed is the cost estimate, so CI can decide up front
# whether its budget allows the run (cold = nothing cached on this machine).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-agentkernel

# Measured on 2 cores under TCG beside other builds (see README.md): cold =
# control plane + kubelet build (~25 min, shared with the kwok e2e tier) +
# guest image (~21 min; ~12 on a quiet machine) + tests (~7 min).
cold_s=3000 warm_s=540
state=cold
if compgen -G "$cache/realnode/disk-*/.done" > /dev/null && compgen -G "$cache/cluster/*/build-info.json" > /dev/null; then
	state=warm
fi
if [[ ${1:-} == --estimate ]]; then
	# For CI: just the seconds this machine would need, nothing built or run.
	if [[ $state == warm ]]; then echo "$warm_s"; else echo "$cold_s"; fi
	exit 0
fi
echo "realnode: estimated cost: cold ~$((cold_s / 60)) min, warm ~$((warm_s / 60)) min; this machine looks ${state} (estimate_seconds cold=${cold_s} warm=${warm_s} state=${state})"

# Host packages (qemu, debootstrap, ...) are installed by the build script;
# building here first keeps build output out of go test's timeout and shows
# each step's cost.
t0=$SECONDS
bash "$here/build/build.sh" > /dev/null
echo "realnode: guest artifacts ready after $((SECONDS - t0))s"

cd "$repo"
AGENTKERNEL_REALNODE=1 exec go test -count=1 -v -timeout 120m "$@" ./test/realnode/
