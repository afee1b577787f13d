#!/usr/bin/env bash
# Builds the OpenTelemetry Collector described by infra/otel-collector/builder-config.yaml into
# .local/bin/otelcol, only when that binary is missing or was built from another manifest
# (a checksum of the manifest is kept beside it), or when FORCE=1. Uses the official builder
# (go.opentelemetry.io/collector/cmd/builder) from the Go module proxy; Go's module and build
# caches stay in their default places outside the repository, so a rebuild on the same machine
# is quick. The first build downloads hundreds of MB and takes several minutes.
set -euo pipefail

BUILDER_VERSION="v0.165.0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

target=".local/bin/otelcol"
manifest="infra/otel-collector/builder-config.yaml"
stamp="$target.manifest.sha256"
wanted="$(sha256sum "$manifest" | cut -d' ' -f1)"
if [[ -x "$target" && "${FORCE:-0}" != "1" && "$(cat "$stamp" 2>/dev/null)" == "$wanted" ]]; then
  echo "otelcol already built: $target ($("$target" --version 2>/dev/null || echo unknown version))"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "Cannot build otelcol: 'go' is not on PATH" >&2
    exit 1
  fi
fi

mkdir -p .local/bin .local/tools
# The builder binary lives in .local/tools so that nothing is installed into the user's GOPATH.
builder=".local/tools/builder-${BUILDER_VERSION}"
if [[ ! -x "$builder" ]]; then
  echo "Installing the collector builder ${BUILDER_VERSION}"
  GOBIN="$repo_root/.local/tools" go install "go.opentelemetry.io/collector/cmd/builder@${BUILDER_VERSION}"
  mv .local/tools/builder "$builder"
fi

echo "Building otelcol (first build takes minutes)"
"$builder" --config "$manifest"
cp .local/otelcol-build/otelcol "$target.tmp"
mv "$target.tmp" "$target"
echo "$wanted" >"$stamp"
"$target" --version
