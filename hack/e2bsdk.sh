#!/usr/bin/env bash
# Installs E2B's JS SDK, pinned, where the test programs import it from
# (test/e2bsdk/node_modules) and prints that directory.
#
#   hack/e2bsdk.sh    # -> /…/test/e2bsdk
#
# Every package is pinned by test/e2bsdk/package-lock.json and installed with
# `npm ci`. Idempotent: a stamp in node_modules holds the hash of the
# package.json and lockfile it was installed from, so a present install of
# the same pin is reused and a new pin replaces it. The programs are ES
# modules: Node resolves `import 'e2b'` from the importing file's directory
# up, never from NODE_PATH, so the install lives next to them rather than in
# hack/npm-tools.sh's cache. To bump the pin: edit the version in
# test/e2bsdk/package.json, then in that directory run
#   npm install --package-lock-only --no-audit --no-fund
set -euo pipefail
cd "$(dirname "$0")/.."

dir=test/e2bsdk
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "the e2b SDK tests need Node.js 20 or newer with npm; install them first" >&2
	exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 20)); then
	echo "the e2b SDK tests need Node.js 20 or newer, not $(node --version)" >&2
	exit 1
fi

hash=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -c1-64)
stamp=$dir/node_modules/.agentkernel-installed
if [[ $(cat "$stamp" 2>/dev/null) != "$hash" ]]; then
	# Two tests may ask at once: install only once.
	if command -v flock >/dev/null; then
		exec 9>"$dir/.install.lock"
		flock 9
	fi
	if [[ $(cat "$stamp" 2>/dev/null) != "$hash" ]]; then
		echo "installing $dir (npm ci)" >&2
		# npm ci removes node_modules first, stamp and all: an interrupted
		# install leaves no stamp, so the next run installs again.
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
		echo "$hash" >"$stamp"
	fi
fi
echo "$PWD/$dir"
