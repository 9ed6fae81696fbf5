#!/usr/bin/env bash
# Runs every test Enigm has, after installing or starting what they need.
# This is the README's test command; .ci/run calls it.
#
#   ./scripts/test.sh            gofmt, vet, staticcheck + race tests of the whole module
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
# openCryptoki (its soft token, slot daemon pkcsslotd, pkcsconf): the
# PKCS#11 backend's third token implementation (see "PKCS#11 token setups"
# below).
[ -x /usr/sbin/pkcsslotd ] || need_pkgs+=(opencryptoki)
# OpenSC's pkcs11-tool: the PIV tests provision the key that the backend
# adopts from outside, the way a user does with a vendor tool.
command -v pkcs11-tool >/dev/null 2>&1 || need_pkgs+=(opensc)
# tpm2-pkcs11 over swtpm: the PKCS#11 backend must refuse it (--backend tpm
# is the route for a TPM), tested against the real module.
ls /usr/lib/*/pkcs11/libtpm2_pkcs11.so >/dev/null 2>&1 || need_pkgs+=(libtpm2-pkcs11-1 libtss2-tcti-swtpm0)
command -v swtpm >/dev/null 2>&1 || need_pkgs+=(swtpm)
# PostgreSQL server binaries: command/store's conformance suite and the
# Command tests run against a throwaway cluster (below) unless
# ENIGM_TEST_POSTGRES_URL names a server already.
pg_initdb() {
  { ls -1 /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1; } || true
}
if [ -z "${ENIGM_TEST_POSTGRES_URL:-}" ] && [ -z "$(pg_initdb)" ] && ! command -v initdb >/dev/null 2>&1; then
  need_pkgs+=(postgresql)
fi

# A JDK: mobile's TestGobind compiles the Java that gobind generates.
command -v javac >/dev/null 2>&1 || need_pkgs+=(default-jdk-headless)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # The JDK's postinst links its man pages; slim images lack the directory.
    mkdir -p /usr/share/man/man1
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
# The benchmark-only build (BenchmarkLogOnOff, the store's log switch) is
# compiled and vetted too, so that it cannot rot; it is run by hand
# (docs/perf.md, "Appends with the log on and off").
log "go vet -tags enigmbench ./command/..."
go vet -tags enigmbench ./command/...

# staticcheck at a pinned version, fetched and built by the go command (it
# is a tool, not a dependency of the module: go.mod does not name it).
STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2; checks Go 1.26 code
log "staticcheck ./... ($STATICCHECK_VERSION)"
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...

# --- a throwaway PostgreSQL cluster --------------------------------------------
# initdb into a temporary directory (as the postgres user when running as
# root: PostgreSQL refuses to run as root), listen on a free loopback port,
# create a database, export ENIGM_TEST_POSTGRES_URL; stopped and removed on
# exit. Tests that need PostgreSQL skip without it, or fail under
# ENIGM_REQUIRE_ALL=1.
PG_TMP=""
PG_AS=()
PG_BIN=""
stop_postgres() {
  if [ -n "$PG_TMP" ]; then
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
start_postgres() {
  local initdb port
  initdb=$(pg_initdb)
  [ -n "$initdb" ] || initdb=$(command -v initdb || true)
  if [ -z "$initdb" ]; then
    log "no PostgreSQL server binaries: PostgreSQL tests are skipped (they fail under ENIGM_REQUIRE_ALL=1)"
    return 0
  fi
  PG_BIN=$(dirname "$initdb")
  PG_TMP=$(mktemp -d /tmp/enigm-pg.XXXXXX)
  trap stop_postgres EXIT
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PG_TMP"
    PG_AS=(runuser -u postgres --)
  fi
  for port in $(shuf -i 20000-60000 -n 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  log "starting a throwaway PostgreSQL ($("$PG_BIN/postgres" --version | awk '{print $3}')) on 127.0.0.1:$port"
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_TMP/data" -A trust -U postgres --no-sync >"$PG_TMP/initdb.log" 2>&1 ||
    { cat "$PG_TMP/initdb.log" >&2; exit 1; }
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP -c fsync=off -c max_connections=300" start >/dev/null ||
    { cat "$PG_TMP/server.log" >&2; exit 1; }
  "${PG_AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres enigm_test
  export ENIGM_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/enigm_test?sslmode=disable"
}
if [ -z "${ENIGM_TEST_POSTGRES_URL:-}" ]; then
  start_postgres
fi

# --- PKCS#11 token setups (backend/pkcs11) --------------------------------------
# SoftHSM2 needs nothing here: the tests write their own configurations
# (full, and restricted through slots.mechanisms). openCryptoki's soft
# token needs its slot daemon and an initialized token: start pkcsslotd
# (stopped on exit if started here), initialize the soft token as
# "enigm-test" with pkcsconf (our token of an earlier run is reset first),
# and export ENIGM_TEST_OPENCRYPTOKI_{MODULE,LABEL,PIN} for the tests. Then a
# throwaway swtpm for tpm2-pkcs11 (ENIGM_TEST_TPM2_PKCS11_{MODULE,TCTI}).
# The PINs are test values (the soft token takes 4 to 8 bytes). A soft
# token initialized under another label is left alone: then the tests
# skip, or fail under ENIGM_REQUIRE_ALL=1.
OCK_STARTED=""
SWTPM_TMP=""
stop_swtpm() {
  if [ -n "$SWTPM_TMP" ]; then
    [ -f "$SWTPM_TMP/swtpm.pid" ] && kill "$(cat "$SWTPM_TMP/swtpm.pid")" 2>/dev/null || true
    rm -rf "$SWTPM_TMP"
  fi
}
stop_token_setups() { stop_postgres; stop_pkcsslotd; stop_swtpm; }
# pkcsslotd_running: the daemon of the pid file is alive (a zombie left by
# an earlier stop, which a container's init may not reap, does not count).
pkcsslotd_running() {
  local pid
  [ -f /var/run/pkcsslotd.pid ] && pid=$(cat /var/run/pkcsslotd.pid) && [ -n "$pid" ] &&
    [ -r "/proc/$pid/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}
stop_pkcsslotd() {
  if [ -n "$OCK_STARTED" ] && [ -f /var/run/pkcsslotd.pid ]; then
    kill "$(cat /var/run/pkcsslotd.pid)" 2>/dev/null || true
  fi
}
start_opencryptoki() {
  local mod slot info flags so=enigm-so label=enigm-test userpin=enigm-pw
  mod=$(ls /usr/lib/*/opencryptoki/libopencryptoki.so.0 /usr/lib64/opencryptoki/libopencryptoki.so.0 2>/dev/null | head -n 1 || true)
  if [ -z "$mod" ] || [ ! -x /usr/sbin/pkcsslotd ] || [ "$(id -u)" != 0 ]; then
    log "openCryptoki not usable (not installed, or not root): its PKCS#11 tests are skipped (they fail under ENIGM_REQUIRE_ALL=1)"
    return 0
  fi
  # The soft token's slot, from the daemon's configuration.
  slot=$(awk '/^slot/{s=$2} /stdll *= *libpkcs11_sw.so/{print s; exit}' /etc/opencryptoki/opencryptoki.conf)
  if [ -z "$slot" ]; then
    log "openCryptoki: no soft token (libpkcs11_sw.so) in /etc/opencryptoki/opencryptoki.conf"
    return 0
  fi
  # tmpfiles.d does not run in containers: the daemon's directories.
  install -d -m 0770 -g pkcs11 /var/lock/opencryptoki /var/lock/opencryptoki/swtok /var/log/opencryptoki
  if ! pkcsslotd_running; then
    log "starting pkcsslotd"
    /usr/sbin/pkcsslotd
    OCK_STARTED=1
    trap stop_token_setups EXIT
  fi
  info=$(pkcsconf -c "$slot" -t)
  flags=$(printf '%s\n' "$info" | awk -F'[()]' '/Flags:/{print $2}')
  if printf '%s' "$flags" | grep -q 'TOKEN_INITIALIZED'; then
    if ! printf '%s\n' "$info" | grep -q "Label: $label *$"; then
      log "openCryptoki: the soft token in slot $slot belongs to someone else; not touching it"
      return 0
    fi
    # Our token from an earlier run. openCryptoki 3.8's C_InitToken on an
    # initialized soft token leaves it refusing SO logins
    # (CKR_FUNCTION_FAILED), so the token's files are removed instead and
    # the daemon restarted: the soft token is fresh again.
    log "openCryptoki: resetting the soft token \"$label\" of an earlier run"
    if [ -f /var/run/pkcsslotd.pid ]; then
      kill "$(cat /var/run/pkcsslotd.pid)" 2>/dev/null || true
      for _ in $(seq 50); do pkcsslotd_running || break; sleep 0.1; done
    fi
    rm -rf /var/lib/opencryptoki/swtok/NVTOK.DAT /var/lib/opencryptoki/swtok/MK_SO \
      /var/lib/opencryptoki/swtok/MK_USER /var/lib/opencryptoki/swtok/TOK_OBJ/*
    /usr/sbin/pkcsslotd
    OCK_STARTED=1
    trap stop_token_setups EXIT
  fi
  # A fresh soft token: its SO PIN is the documented default, 87654321.
  if ! { echo "$label" | pkcsconf -c "$slot" -I -S 87654321 >/dev/null &&
    pkcsconf -c "$slot" -P -S 87654321 -n "$so" >/dev/null &&
    pkcsconf -c "$slot" -u -S "$so" -n "$userpin" >/dev/null; }; then
    log "openCryptoki: could not initialize the soft token in slot $slot with pkcsconf"
    return 0
  fi
  log "openCryptoki soft token \"$label\" ready in slot $slot ($mod)"
  export ENIGM_TEST_OPENCRYPTOKI_MODULE="$mod" ENIGM_TEST_OPENCRYPTOKI_LABEL="$label" ENIGM_TEST_OPENCRYPTOKI_PIN="$userpin"
}
start_opencryptoki
# A throwaway swtpm for tpm2-pkcs11 (the tests give the module its own
# store directory and initialize a token through it).
start_swtpm_pkcs11() {
  local mod port
  mod=$(ls /usr/lib/*/pkcs11/libtpm2_pkcs11.so 2>/dev/null | head -n 1 || true)
  if [ -z "$mod" ] || ! command -v swtpm >/dev/null 2>&1; then
    log "tpm2-pkcs11 or swtpm missing: its PKCS#11 test is skipped (it fails under ENIGM_REQUIRE_ALL=1)"
    return 0
  fi
  for port in $(shuf -i 20000-60000 -n 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null || break
  done
  SWTPM_TMP=$(mktemp -d /tmp/enigm-swtpm.XXXXXX)
  trap stop_token_setups EXIT
  swtpm socket --tpm2 --tpmstate "dir=$SWTPM_TMP" --flags not-need-init,startup-clear \
    --server "type=tcp,port=$port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
    --daemon --pid "file=$SWTPM_TMP/swtpm.pid"
  log "swtpm for tpm2-pkcs11 on 127.0.0.1:$port"
  export ENIGM_TEST_TPM2_PKCS11_MODULE="$mod" ENIGM_TEST_TPM2_PKCS11_TCTI="swtpm:host=127.0.0.1,port=$port"
}
start_swtpm_pkcs11
# --- end of PKCS#11 token setups -------------------------------------------------

log "go test -race ./... (ENIGM_REQUIRE_ALL=${ENIGM_REQUIRE_ALL:-0})"
go test -race -count=1 -timeout 20m ./...

# bench/age is its own module (so filippo.io/age stays out of go.mod and
# every binary); ./... does not reach it. Vet it and run each benchmark
# once, so that it keeps compiling against the envelope API and its
# checks (sizes, opening) still hold.
log "bench/age: go vet, benchmarks once"
(cd bench/age && go vet ./... && go test -count=1 -run '^$' -bench . -benchtime 1x ./... | tail -n 3)
log "all tests passed"
