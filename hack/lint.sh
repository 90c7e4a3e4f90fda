#!/usr/bin/env bash
# Lints the plugin module with the pinned golangci-lint, installing it on
# first use (hack/tools.sh). Arguments go to `golangci-lint run`, e.g.
#   hack/lint.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
golangci_lint=$(hack/tools.sh golangci-lint)
exec "$golangci_lint" run "$@"
