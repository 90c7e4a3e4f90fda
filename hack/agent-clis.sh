#!/usr/bin/env bash
# Installs the agent CLIs the presets pin (Claude Code and Codex, exactly as
# pkg/agents/agents.yaml names them), unmodified, and prints the directory
# of their binaries.
#
#   hack/agent-clis.sh    # -> …/kubectl-agentkernel/agents/npm-<lock hash>/node_modules/.bin
#
# Every package, the platform packages that carry the native binaries
# included, is pinned with its integrity hash by test/agents/npm/package-lock.json
# and installed with `npm ci`, into a cache outside the repo, one directory
# per lockfile content: a new pin installs next to the old one, a present
# install is reused. test/agentmock's tests run them against the scripted
# model API. To bump a pin: change the version in pkg/agents/agents.yaml and
# in test/agents/npm/package.json, then in that directory run
#   npm install --package-lock-only --no-audit --no-fund
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "the agent CLIs install with Node.js 20 or newer and npm; install them first" >&2
	exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 20)); then
	echo "the agent CLIs install with Node.js 20 or newer, not $(node --version)" >&2
	exit 1
fi

src=test/agents/npm
# The test computes the same key (test/agentmock: cliDir).
hash=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-12)
cache=${AGENTKERNEL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-agentkernel}/agents
install=$cache/npm-$hash
bin=$install/node_modules/.bin
if [[ -x $bin/claude && -x $bin/codex ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
# Two tests may ask at once: install only once.
if command -v flock >/dev/null; then
	exec 9>"$cache/.npm-$hash.lock"
	flock 9
fi
if [[ ! -x $bin/claude || ! -x $bin/codex ]]; then
	echo "installing $src (npm ci) into $install" >&2
	tmp=$(mktemp -d "$cache/.npm-$hash.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	cp "$src/package.json" "$src/package-lock.json" "$tmp/"
	# Claude Code declares node >=22 for its postinstall (which only copies
	# the platform package's native binary into place; the binary needs no
	# Node), and runs with Node 20 too: hence --engine-strict=false. The
	# postinstall must run: without it bin/claude.exe is a placeholder.
	# Installed whole in a scratch directory and moved into place in one
	# step: an interrupted install never leaves half an install the check
	# above trusts.
	(cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false) >&2
	"$tmp/node_modules/.bin/claude" --version >/dev/null
	mv "$tmp" "$install"
	trap - EXIT
fi
echo "$bin"
