#!/usr/bin/env bash
# Installs the tools the infra config tests and the observability end-to-end tests use:
#   - Prometheus 2.42 and promtool (Debian package `prometheus`),
#   - kcat (Debian package `kcat`), an independent Kafka client,
#   - the OpenTelemetry Collector built from Go modules into .local/bin/otelcol
#     (infra/tools/build_otelcol.sh; needs Go on the machine),
#   - .local/bin/compose_check (infra/tools/compose_check), which loads infra/compose.yaml with
#     compose-go, the loader of Docker Compose.
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

# compose_check: rebuilt when missing or older than its sources.
compose_check="$repo_root/.local/bin/compose_check"
sources=("$repo_root"/infra/tools/compose_check/{main.go,go.mod,go.sum})
stale=0
[[ -x "$compose_check" ]] || stale=1
for source in "${sources[@]}"; do
  if [[ "$source" -nt "$compose_check" ]]; then stale=1; fi
done
if [[ $stale == 1 ]]; then
  echo "Building compose_check"
  mkdir -p "$repo_root/.local/bin"
  PATH="$PATH:/usr/local/go/bin" go build -C "$repo_root/infra/tools/compose_check" \
    -buildvcs=false -o "$compose_check" .
fi
echo "compose_check: $compose_check"
