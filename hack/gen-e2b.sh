#!/usr/bin/env bash
# Regenerates the Go code of E2B's envd services (Connect-RPC, from its
# protos) and of its control plane (oapi-codegen, from its openapi.yml), all
# from E2B's own specs in third_party/e2b/spec (copied from e2b-dev/E2B, see
# its README).
# The generated code is committed; run this after updating the specs.
#
#   hack/gen-e2b.sh
#
# Needs protoc (Debian: protobuf-compiler, installed here when missing);
# the Go plugins and oapi-codegen are pinned in hack/tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null; then
	sudo=; [[ $(id -u) == 0 ]] || sudo=sudo
	$sudo apt-get install -y -q protobuf-compiler >/dev/null
fi
gen_go=$(hack/tools.sh protoc-gen-go)
gen_connect=$(hack/tools.sh protoc-gen-connect-go)

module=github.com/agentkernel/kubectl-agentkernel
out=pkg/e2b/envd/gen
rm -rf "$out"
mkdir -p "$out"
spec=third_party/e2b/spec/envd
maps="Mprocess/process.proto=$module/$out/processpb;processpb,Mfilesystem/filesystem.proto=$module/$out/filesystempb;filesystempb"
protoc -I "$spec" \
	--plugin=protoc-gen-go="$gen_go" --plugin=protoc-gen-connect-go="$gen_connect" \
	--go_out="$out" --go_opt=paths=import,module="$module/$out" --go_opt="$maps" \
	--connect-go_out="$out" --connect-go_opt=paths=import,module="$module/$out" --connect-go_opt="$maps" \
	process/process.proto filesystem/filesystem.proto

# The control plane: models and a net/http server of the operations the e2b
# SDK calls on a sandbox (pkg/e2b/api/oapi-codegen.yaml names them, its
# overlay gives E2B's unnamed operations their names).
"$(hack/tools.sh oapi-codegen)" -config pkg/e2b/api/oapi-codegen.yaml third_party/e2b/spec/openapi.yml
