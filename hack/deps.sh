#!/usr/bin/env bash
# Installs what the build, tests and demo need on a bare Debian 12 machine.
# Idempotent: packages already present are not reinstalled, and apt's lists
# are refreshed only when something is missing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have git      || need+=(git)
have patch    || need+=(patch)
have busybox  || need+=(busybox)    # copy tests run the sandbox scripts under busybox's sh and tar
have unshare  || need+=(util-linux) # kwok runs in its own user and mount namespace
have setpriv  || need+=(util-linux)
have sha256sum || need+=(coreutils)
have tar      || need+=(tar)
have gcc      || need+=(gcc libc6-dev) # go test -race needs cgo
have flock    || need+=(util-linux) # hack/tools.sh, test/realnode/build
have timeout  || need+=(coreutils)  # hack/test.sh ends a tier at the CI budget

if ((${#need[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "missing packages: ${need[*]} (run as root, or install them yourself)" >&2
		exit 1
	fi
	echo "installing: ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Wait for, rather than fail on, another apt run on the machine.
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! have go; then
	echo "Go is not installed: this project needs Go $(sed -n 's/^go //p' "$(dirname "$0")/../go.mod") or newer" >&2
	exit 1
fi
