#!/usr/bin/env bash
# Runs every test Enigm has, after installing or starting what they need.
# This is the README's test command; .ci/run calls it.
#
#   ./scripts/test.sh            vet + race tests of the whole module
#   ENIGM_REQUIRE_ALL=1 ...      a test whose component is missing fails
#                                instead of skipping (CI sets this)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# --- what the tests need -----------------------------------------------------
# gcc: cgo, for the in-process TPM 2.0 simulator and the race detector.
need_pkgs=()
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc libc6-dev)
# SoftHSM2: the PKCS#11 backend's tests (each test makes its own token
# directory through SOFTHSM2_CONF; no system token is touched).
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need_pkgs+=(softhsm2)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    log "missing packages: ${need_pkgs[*]} (not root or no apt-get: install them yourself)"
  fi
fi

export CGO_ENABLED=1

# --- checks ------------------------------------------------------------------
log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi

log "go vet ./..."
go vet ./...

log "go test -race ./... (ENIGM_REQUIRE_ALL=${ENIGM_REQUIRE_ALL:-0})"
go test -race -count=1 -timeout 20m ./...
log "all tests passed"
