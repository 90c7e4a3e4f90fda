#!/usr/bin/env bash
# Installs a pinned npm tool on first use and prints the path of its binary.
#
#   hack/npm-tools.sh mcp-inspector   # -> .../npm/inspector-<lock hash>/node_modules/.bin/mcp-inspector
#
# Every package of a tool, not just the tool, is pinned by the lockfile in
# hack/npm/<dir>/ and installed with `npm ci`. Tools live in a cache outside
# the repo, one directory per lockfile content, so a new pin installs next
# to the old one and a present install is reused. To bump a pin: edit the
# version in hack/npm/<dir>/package.json, then in that directory run
#   npm install --package-lock-only --no-audit --no-fund
set -euo pipefail
cd "$(dirname "$0")/.."

# name           directory under hack/npm   binary
TOOLS='
mcp-inspector    inspector                  mcp-inspector
'

usage() {
	echo "usage: $0 NAME   (one of:$(awk 'NF {printf " %s", $1}' <<<"$TOOLS"))" >&2
	exit 2
}

[[ $# -eq 1 ]] || usage
read -r dir bin < <(awk -v n="$1" '$1 == n {print $2, $3}' <<<"$TOOLS") || true
[[ -n ${dir:-} ]] || usage

# The MCP Inspector 1.x declares node >=22.7.5 but runs on Node 20 (what
# these machines have); older Node lacks the import attributes it uses.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "$1 needs Node.js 20 or newer with npm; install them first" >&2
	exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 20)); then
	echo "$1 needs Node.js 20 or newer, not $(node --version)" >&2
	exit 1
fi

src=hack/npm/$dir
hash=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-12)
tools_dir=${AGENTKERNEL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-agentkernel/tools}/npm
install=$tools_dir/$dir-$hash
path=$install/node_modules/.bin/$bin
if [[ -x $path ]]; then
	echo "$path"
	exit 0
fi

mkdir -p "$tools_dir"
# Two tests may ask at once: install only once.
if command -v flock >/dev/null; then
	exec 9>"$tools_dir/.$dir-$hash.lock"
	flock 9
fi
if [[ ! -x $path ]]; then
	echo "installing $src (npm ci) into $install" >&2
	tmp=$(mktemp -d "$tools_dir/.$dir-$hash.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	cp "$src/package.json" "$src/package-lock.json" "$tmp/"
	# Installed whole in a scratch directory and moved into place in one
	# step: an interrupted install never leaves a half tool the check above trusts.
	(cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false) >&2
	mv "$tmp" "$install"
	trap - EXIT
fi
echo "$path"
