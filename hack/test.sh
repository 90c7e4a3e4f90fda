#!/usr/bin/env bash
# The project's test command (README, .ci/run). It ends with one line per
# tier — ran, skipped (why) or failed — and a last line that names every tier
# that did not pass, so a skip is never read as a pass.
#
#   hack/test.sh                  every tier (CI): a tier that does not run fails the run
#   hack/test.sh lint unit e2e    only these; the others are listed as not asked for
#
# Tiers (to add one: a NAME_tier function below and its name in TIERS):
#   lint      hack/lint.sh
#   unit      go test -race -short ./...
#   e2e       every package under test/ except release and realnode: the real
#             binary against the local control plane (test/cluster, kwok node)
#   release   test/release: goreleaser snapshot, krew manifest, krew install
#   realnode  test/realnode/run.sh: a real kubelet + containerd in a qemu guest
#
# Schedule, made for 2 cores and an empty cache (README.md, "CI"):
#   from t=0, in the background: the control-plane build (~25 min cold, the
#     long pole); the guest-image steps that do not need it (kernel, rootfs,
#     containerd, kube-network-policies, images: REALNODE_BUILD_UNTIL=kubelet),
#     at the same priority so they are done when it is; the release tools,
#     niced, since nothing waits for them before the end.
#   in the foreground meanwhile: lint, then unit.
#   then, once the control plane is built and unit is done: e2e in the
#     foreground; release and realnode beside it (mostly waiting on API
#     servers and the guest, so they share the cores well); their output is
#     printed when they finish.
# Every tier ends at the budget's deadline (AGENTKERNEL_CI_BUDGET seconds,
# 90 min, less a reserve for this summary), so the summary is always printed.
# The realnode tier starts only if its estimate (test/realnode/run.sh
# --estimate, from what is cached at that moment) fits what is left; if it
# does not, that is a failure: CI that did not boot the real node has not
# proven the hardening, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

TIERS=(lint unit e2e release realnode)
budget=${AGENTKERNEL_CI_BUDGET:-5400}
reserve=120
started=$EPOCHSECONDS
deadline=$((started + budget - reserve))
out=_output/ci

# Progress lines go to the terminal even from a background tier (fd 3).
exec 3>&2
log() { printf '==> [%4ds] %s\n' "$((EPOCHSECONDS - started))" "$*" >&3; }
fmt_time() { printf '%dm%02ds' "$(($1 / 60))" "$(($1 % 60))"; }

selected=()
if (($#)); then
	for t in "$@"; do
		[[ " ${TIERS[*]} " == *" $t "* ]] || { echo "unknown tier $t; tiers: ${TIERS[*]}" >&2; exit 2; }
	done
	selected=("$@")
else
	selected=("${TIERS[@]}")
fi
wanted() { [[ " ${selected[*]} " == *" $1 "* ]]; }

hack/deps.sh
rm -rf "$out"
mkdir -p "$out"
mkdir "$out/pids"
trap interrupted INT TERM
gotestsum=$(hack/tools.sh gotestsum)

# --- running a tier --------------------------------------------------------------
# A tier function prints to stdout/stderr and returns non-zero on failure.
# It may set tier_state (ran|skipped|failed) and tier_detail; by default the
# state follows its exit code. run_tier records the result in $out/NAME.result.
run_tier() {
	local name=$1 t0=$EPOCHSECONDS rc=0
	tier_state='' tier_detail=''
	"${name}_tier" || rc=$?
	if [[ -z $tier_state ]]; then
		if ((rc == 0)); then tier_state=ran; else tier_state=failed; fi
	fi
	if ((rc == 124)) && [[ $tier_state != skipped ]]; then
		tier_state=failed tier_detail="out of CI budget (ended at the deadline); ${tier_detail}"
	fi
	printf '%s\t%s\t%s\n' "$tier_state" "$((EPOCHSECONDS - t0))" "$tier_detail" > "$out/$name.result"
	log "$name: $tier_state ${tier_detail:+($tier_detail)}"
	[[ $tier_state == ran ]]
}

# within_budget CMD...: CMD, ended (exit 124) at the deadline. timeout puts
# CMD in a process group of its own and signals the whole group; its PID is
# kept so that an interrupted hack/test.sh can end what it started.
within_budget() {
	local left=$((deadline - EPOCHSECONDS)) pid rc=0
	((left > 0)) || return 124
	timeout --kill-after=30 "$left" "$@" < /dev/null &
	pid=$!
	: > "$out/pids/$pid"
	wait "$pid" || rc=$?
	rm -f "$out/pids/$pid" # ended: never signal a PID that may be reused
	return "$rc"
}
interrupted() {
	local pid
	trap '' INT TERM
	log "interrupted: ending the tiers' processes"
	for pid in "$out"/pids/*; do
		if [[ -e $pid ]]; then kill -TERM "${pid##*/}" 2> /dev/null || true; fi
	done
	wait
	exit 130
}

# gotest NAME FORMAT GO-TEST-ARGS...: go test through gotestsum, which prints
# every skipped and failed test with its output at the end; the tier line
# gets the counts. With FORMAT raw:... the command after it prints go test
# -json itself (test/realnode/run.sh -json).
gotest() {
	local name=$1 format=$2 rc=0
	shift 2
	local args=(--format "$format" --format-icons text --jsonfile "$out/$name.json")
	if [[ $format == raw:* ]]; then
		args=(--format "${format#raw:}" --format-icons text --jsonfile "$out/$name.json" --raw-command)
	fi
	within_budget "$gotestsum" "${args[@]}" -- "$@" || rc=$?
	test_counts "$name" "$rc"
	return "$rc"
}

# test_counts NAME RC: tier_state and tier_detail from the tier's test events.
# A tier in which no test passed did not test anything: skipped, never ran.
# In the tiers of every_test_runs a single skipped test fails the tier: CI
# gives them everything they need (cluster, guest, tools), so a skip there is
# a missing prerequisite or an unfinished test, never a pass.
every_test_runs=(e2e realnode)
test_counts() {
	local json=$out/$1.json rc=$2 passed skipped failed
	passed=$(grep -c '"Action":"pass","Package":"[^"]*","Test":' "$json" 2>/dev/null || true)
	skipped=$(grep -c '"Action":"skip","Package":"[^"]*","Test":' "$json" 2>/dev/null || true)
	failed=$(grep -c '"Action":"fail","Package":"[^"]*","Test":' "$json" 2>/dev/null || true)
	tier_detail="${passed:-0} passed"
	((skipped > 0)) && tier_detail+=", $skipped skipped: $(test_names "$json" skip)"
	((failed > 0)) && tier_detail+=", $failed failed: $(test_names "$json" fail)"
	if ((rc == 0 && ${passed:-0} == 0)); then
		tier_state=skipped
		((skipped > 0)) || tier_detail="no test ran"
	elif ((rc == 0 && skipped > 0)) && [[ " ${every_test_runs[*]} " == *" $1 "* ]]; then
		tier_state=failed tier_detail+=" (in CI every $1 test must run)"
	fi
}
test_names() {
	grep "\"Action\":\"$2\",\"Package\":\"[^\"]*\",\"Test\":" "$1" |
		sed 's/.*"Test":"\(\([^"\\]\|\\.\)*\)".*/\1/' |
		awk '{ if (n < 3) printf "%s%s", (n ? ", " : ""), $0; n++ } END { if (n > 3) printf " +%d more", n - 3 }'
}

# Background tiers wait here until the control plane is built and unit is
# done; $out/tail holds "ok KUBECTL" or "no WHY".
await_tail() {
	until [[ -s $out/tail ]]; do sleep 2; done
	local verdict rest
	read -r verdict rest < "$out/tail"
	if [[ $verdict != ok ]]; then
		tier_state=failed tier_detail="not run: $rest"
		return 1
	fi
	KUBECTL=$rest
	export KUBECTL
}

# --- the tiers -------------------------------------------------------------------
# Another golangci-lint on the machine (an engineer's hack/lint.sh) holds its
# lock: wait for it rather than fail.
# The clients krew ships beyond Linux (Windows, macOS) are built for their
# GOOS here (their tests need Linux): a build tag or a syscall that breaks
# them fails on every push, not at release.
lint_tier() {
	within_budget hack/lint.sh --allow-serial-runners || return
	local target
	for target in windows/amd64 darwin/arm64; do
		within_budget env GOOS="${target%/*}" GOARCH="${target#*/}" go build ./cmd/... ./pkg/... ||
			{ tier_detail="go build for $target failed"; return 1; }
	done
}

unit_tier() { gotest unit pkgname-and-test-fails -race -short -count=1 ./...; }

e2e_tier() {
	await_tail || return
	# test/e2e's SDK tests import E2B's pinned SDK (installed once per pin).
	hack/e2bsdk.sh > /dev/null || { tier_detail="installing the e2b SDK (hack/e2bsdk.sh) failed"; return 1; }
	# test/agentmock runs the agent CLIs the presets pin (installed once per pin).
	hack/agent-clis.sh > /dev/null || { tier_detail="installing the agent CLIs (hack/agent-clis.sh) failed"; return 1; }
	local pkgs
	pkgs=$(go list ./test/... | grep -v -e '/test/release$' -e '/test/realnode$' -e '/test/realnode/')
	# shellcheck disable=SC2086 # one word per package
	gotest e2e testname -count=1 -p 1 -timeout 60m $pkgs
}

release_tier() {
	# Niced, tools and test alike: its compiles are CPU work beside tests
	# that wait on servers.
	renice -n 10 -p "$BASHPID" > /dev/null
	local tool
	for tool in goreleaser krew validate-krew-manifest; do
		hack/tools.sh "$tool" > /dev/null || return
	done
	await_tail || return
	gotest release testname -count=1 -timeout 60m ./test/release/
}

realnode_tier() {
	# Everything the guest image needs except the kubelet, from t=0: its
	# downloads and Go builds share nothing with the control plane's build.
	within_budget env REALNODE_BUILD_UNTIL=kubelet NICE="nice -n 0" bash test/realnode/build/build.sh > /dev/null || {
		tier_detail="guest image build failed"
		return 1
	}
	await_tail || return
	local need left
	need=$(test/realnode/run.sh --estimate) || need=
	left=$((deadline - EPOCHSECONDS))
	if [[ -z $need ]]; then
		log "realnode: no estimate (see its log); running it anyway with ${left}s left"
	elif ((need > left)); then
		tier_state=skipped tier_detail="estimated ${need}s, only ${left}s of the CI budget left; warm the cache (test/realnode/build/build.sh) or raise AGENTKERNEL_CI_BUDGET"
		return 0
	else
		log "realnode: estimated ${need}s, ${left}s left: starting beside e2e"
	fi
	# run.sh's own progress (stderr) goes straight to the log: gotestsum
	# would count each stderr line of a raw command as an error.
	# shellcheck disable=SC2016 # $0 is the inner shell's
	AGENTKERNEL_REALNODE_ESTIMATED=1 gotest realnode raw:testname \
		bash -c 'exec test/realnode/run.sh -json 2>> "$0"' "$out/realnode.log"
}

# --- the schedule ----------------------------------------------------------------
bg_pids=() bg_names=()
background() { # background NAME: run_tier NAME in the background, output in $out/NAME.log
	# Appending: a tier may add to its log through a second descriptor.
	run_tier "$1" >> "$out/$1.log" 2>&1 &
	bg_pids+=($!) bg_names+=("$1")
	log "$1: started in the background (log: $out/$1.log)"
}
foreground() { # foreground NAME: run_tier NAME, output here and in $out/NAME.log
	log "$1"
	# Started as a job and waited for, so that Ctrl-C runs the trap at once
	# (bash defers traps while a foreground command runs, and the tiers'
	# processes are in timeout's process groups, out of the terminal's reach).
	{ run_tier "$1" 2>&1 | tee "$out/$1.log"; } &
	wait $! || true
}

need_cluster=
for t in e2e release realnode; do wanted "$t" && need_cluster=1; done
if [[ -n $need_cluster ]]; then
	log "control plane build (cached after the first; log: $out/cluster-build.log)"
	within_budget go run ./test/cluster build > "$out/cluster-build.out" 2> "$out/cluster-build.log" &
	cluster_pid=$!
fi
for t in realnode release; do wanted "$t" && background "$t"; done

for t in lint unit; do wanted "$t" && foreground "$t"; done

if [[ -n $need_cluster ]]; then
	if wait "$cluster_pid"; then
		log "control plane built: $(tail -1 "$out/cluster-build.out")"
		echo "ok $(tail -1 "$out/cluster-build.out")/kubectl" > "$out/tail"
	else
		tail -50 "$out/cluster-build.log" >&2
		echo "no the control plane build failed (log: $out/cluster-build.log)" > "$out/tail"
	fi
fi

wanted e2e && foreground e2e

for i in "${!bg_pids[@]}"; do
	name=${bg_names[$i]}
	wait "${bg_pids[$i]}" || true
	echo "==> output of the $name tier ($out/$name.log):"
	cat "$out/$name.log"
done

# --- summary ---------------------------------------------------------------------
used=$((EPOCHSECONDS - started))
echo
echo "==> tiers (CI budget $(fmt_time "$budget"), $(fmt_time "$used") used):"
bad=() missing=()
for t in "${TIERS[@]}"; do
	if ! wanted "$t"; then
		printf '    %-9s %-8s %7s  %s\n' "$t" "-" "" "not asked for"
		missing+=("$t")
		continue
	fi
	state=failed took=0 detail="no result (the tier's script died: see $out/$t.log)"
	[[ -s $out/$t.result ]] && IFS=$'\t' read -r state took detail < "$out/$t.result"
	printf '    %-9s %-8s %7s  %s\n' "$t" "$state" "$(fmt_time "$took")" "$detail"
	[[ $state == ran ]] || bad+=("$t $state${detail:+ ($detail)}")
done
if ((${#bad[@]})); then
	last=$(printf '; %s' "${bad[@]}")
	echo "==> FAILED after $(fmt_time "$used"): ${last:2}"
	exit 1
fi
if ((${#missing[@]})); then
	echo "==> passed after $(fmt_time "$used"): ${selected[*]}; not run (not asked for): ${missing[*]}"
else
	echo "==> all ${#TIERS[@]} tiers ran and passed after $(fmt_time "$used")"
fi
