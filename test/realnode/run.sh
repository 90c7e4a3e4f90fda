#!/usr/bin/env bash
# Entry point of the realnode e2e tier: builds what is missing (cached) and
# runs the real-kubelet tests in a qemu guest joined to the local control plane.
#
#   test/realnode/run.sh [go test flags...]      e.g. -run TestSandbox
#   test/realnode/run.sh --estimate              seconds this machine would need now; runs nothing
#
# The estimate (go run ./test/realnode/cmd/estimate) follows what is cached
# at that moment — control plane, each guest-image step, the kubelet — and
# what this machine measured before (timings.log, the control plane's
# build-info.json, suite.log), with a margin; it names the cold parts. Only
# the seconds go to stdout, so CI can compare them with its budget.
#
# Everything this script prints itself goes to stderr: stdout is go test's,
# so `run.sh -json` is a go test -json stream (hack/test.sh reads it).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${AGENTKERNEL_REALNODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-agentkernel/realnode}

estimate() { (cd "$repo" && go run ./test/realnode/cmd/estimate); }
if [[ ${1:-} == --estimate ]]; then
	estimate
	exit
fi

# hack/test.sh printed the estimate already, when it checked its budget.
if [[ -z ${AGENTKERNEL_REALNODE_ESTIMATED:-} ]]; then
	estimate > /dev/null || echo "realnode: no estimate (the error is above); building anyway" >&2
fi

# Host packages (qemu, debootstrap, ...) are installed by the build script;
# building here first keeps build output out of go test's timeout and shows
# each step's cost.
t0=$SECONDS
bash "$here/build/build.sh" > /dev/null
echo "realnode: guest artifacts ready after $((SECONDS - t0))s" >&2

cd "$repo"
# The set of tests this run measures (suite.log's tests=): the estimate uses
# only runs of the same set.
suite_key=$(go run ./test/realnode/cmd/estimate -suite-key)
t0=$SECONDS
rc=0
AGENTKERNEL_REALNODE=1 go test -count=1 -v -timeout 120m "$@" ./test/realnode/ || rc=$?
# What the whole suite took is the estimate's "tests" part next time; a run
# of some tests only (-run) says nothing about that.
if [[ " $* " != *" -run"* ]]; then
	mkdir -p "$cache"
	printf '%s %s exit=%s tests=%s\n' "$(date -u +%FT%TZ)" "$((SECONDS - t0))" "$rc" "$suite_key" >> "$cache/suite.log"
fi
exit "$rc"
