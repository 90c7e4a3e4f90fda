#!/usr/bin/env bash
# Installs a pinned Go tool on first use and prints the path of its binary.
#
#   hack/tools.sh goreleaser        # -> .../tools/goreleaser-v2.15.1/goreleaser
#
# Tools live in a cache outside the repo, one directory per name and version,
# so bumping a pin installs next to the old one and a present binary is reused.
# They are built with `go install pkg@version` from the module proxy, never
# through the root go.mod: their dependencies would be pulled into the plugin's
# build list by minimal version selection.
set -euo pipefail

# name        package                                                 version
TOOLS='
goreleaser             github.com/goreleaser/goreleaser/v2                     v2.15.1
krew                   sigs.k8s.io/krew/cmd/krew                               v0.4.3
validate-krew-manifest sigs.k8s.io/krew/cmd/validate-krew-manifest             v0.4.3
golangci-lint          github.com/golangci/golangci-lint/v2/cmd/golangci-lint  v2.15.0
gotestsum              gotest.tools/gotestsum                                  v1.13.0
protoc-gen-go          google.golang.org/protobuf/cmd/protoc-gen-go            v1.36.11
protoc-gen-connect-go  connectrpc.com/connect/cmd/protoc-gen-connect-go        v1.21.1
oapi-codegen           github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen v2.8.2
'

usage() {
	echo "usage: $0 NAME   (one of:$(awk 'NF {printf " %s", $1}' <<<"$TOOLS"))" >&2
	exit 2
}

[[ $# -eq 1 ]] || usage
name=$1
read -r pkg version < <(awk -v n="$name" '$1 == n {print $2, $3}' <<<"$TOOLS") || true
[[ -n ${pkg:-} ]] || usage

tools_dir=${AGENTKERNEL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-agentkernel/tools}
dir=$tools_dir/$name-$version
bin=$dir/$name
if [[ -x $bin ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$tools_dir"
# Two tests (or a test and hack/lint.sh) may ask at once: install only once.
# (macOS has no flock; there a race costs a second build, not a broken tool.)
if command -v flock >/dev/null; then
	exec 9>"$tools_dir/.$name-$version.lock"
	flock 9
fi
if [[ ! -x $bin ]]; then
	echo "installing $pkg@$version into $dir" >&2
	tmp=$(mktemp -d "$tools_dir/.$name-$version.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	# GOFLAGS from the caller (e.g. -mod=vendor) must not leak into a tool build;
	# CGO off gives static tools that run on any CI image.
	GOBIN=$tmp GOFLAGS= CGO_ENABLED=0 go install "$pkg@$version" >&2
	# Move the finished binary into place in one step, so an interrupted
	# install never leaves a half-written tool that the check above trusts.
	mkdir -p "$dir"
	mv "$tmp/$name" "$bin"
fi
echo "$bin"
