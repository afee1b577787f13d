#!/usr/bin/env bash
# Installs the tools the infra config tests and the observability end-to-end tests use:
#   - Prometheus 2.42 and promtool (Debian package `prometheus`),
#   - kcat (Debian package `kcat`), an independent Kafka client,
#   - the OpenTelemetry Collector built from Go modules into .local/bin/otelcol
#     (infra/tools/build_otelcol.sh; needs Go on the machine),
#   - .local/bin/compose_check (infra/tools/compose_check), which loads infra/compose.yaml with
#     compose-go, the loader of Docker Compose,
#   - .local/bin/dockerfile_check (infra/tools/dockerfile_check): BuildKit's Dockerfile parser and
#     build checks, and Docker's .dockerignore matcher,
#   - .local/bin/kubeconform and its JSON schemas in .local/k8s-schemas/ (infra/tools/kubeconform),
#     made from the OpenAPI document of the k8s.io/kubernetes Go module, for infra/k8s/.
# Idempotent: installs only what is missing. Run as root (CI runs it so): `bash infra/tools/install_tools.sh`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)

if ((${#missing[@]} > 0)); then
  if [[ "$(id -u)" != "0" ]]; then
    echo "Cannot install ${missing[*]}: run as root (or install them with apt-get yourself)" >&2
    exit 1
  fi
  # The prometheus package ships a daemon (and recommends node-exporter). Tests start their own
  # Prometheus on 127.0.0.1 with a temporary storage dir, so keep the packaged daemon from
  # starting: policy-rc.d answering 101 tells invoke-rc.d not to start services.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  remove_policy() { if [[ $created_policy == 1 ]]; then rm -f "$policy"; fi; }
  trap remove_policy EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if pgrep -x prometheus >/dev/null 2>&1; then
  echo "Warning: a prometheus process is running (pids: $(pgrep -x prometheus | tr '\n' ' '));" \
    "the tests start their own on other ports" >&2
fi

echo "promtool: $(promtool --version 2>&1 | head -n 1)"
echo "kcat: $(kcat -V 2>&1 | head -n 1)"

bash "$repo_root/infra/tools/build_otelcol.sh"

export PATH="$PATH:/usr/local/go/bin"

# stale TARGET SOURCE...: true when TARGET is missing or older than one of the sources.
stale() {
  local target="$1" source
  shift
  [[ -e "$target" ]] || return 0
  for source in "$@"; do
    if [[ "$source" -nt "$target" ]]; then return 0; fi
  done
  return 1
}

mkdir -p "$repo_root/.local/bin"

# compose_check and dockerfile_check: small Go commands, rebuilt when their sources change.
for checker in compose_check dockerfile_check; do
  dir="$repo_root/infra/tools/$checker"
  if stale "$repo_root/.local/bin/$checker" "$dir"/{main.go,go.mod,go.sum}; then
    echo "Building $checker"
    go build -C "$dir" -buildvcs=false -o "$repo_root/.local/bin/$checker" .
  fi
  echo "$checker: $repo_root/.local/bin/$checker"
done

# kubeconform (the Go tool pinned in infra/tools/kubeconform/go.mod) and offline schemas for it.
# kubeconform fetches its schemas from GitHub by default; here they are made from
# api/openapi-spec/swagger.json of the k8s.io/kubernetes module of kubernetes_version.txt, which
# the Go module proxy serves (about 20 MB, cached in Go's module cache).
kube_dir="$repo_root/infra/tools/kubeconform"
if stale "$repo_root/.local/bin/kubeconform" "$kube_dir"/{go.mod,go.sum}; then
  echo "Building kubeconform"
  go build -C "$kube_dir" -buildvcs=false -o "$repo_root/.local/bin/kubeconform" \
    github.com/yannh/kubeconform/cmd/kubeconform
fi
kube_version="$(tr -d '[:space:]' <"$kube_dir/kubernetes_version.txt")"
schemas="$repo_root/.local/k8s-schemas/$kube_version-strict"
if stale "$schemas/_definitions.json" "$kube_dir"/{kubernetes_version.txt,schemas/main.go}; then
  echo "Making Kubernetes $kube_version JSON schemas"
  module_dir="$(cd "$kube_dir" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$kube_version" |
    sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')"
  if [[ -z "$module_dir" || ! -f "$module_dir/api/openapi-spec/swagger.json" ]]; then
    echo "Cannot make the Kubernetes schemas: k8s.io/kubernetes@$kube_version has no api/openapi-spec/swagger.json" >&2
    exit 1
  fi
  rm -rf "$schemas"
  go run -C "$kube_dir" ./schemas -swagger "$module_dir/api/openapi-spec/swagger.json" -out "$schemas"
fi
echo "kubeconform: $repo_root/.local/bin/kubeconform (schemas: $schemas)"
