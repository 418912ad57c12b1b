#!/usr/bin/env bash
# The whole Switchboard test suite: installs the real peers it needs when missing, then runs
# formatting and lint checks, every unit/integration/property test, and the loom models.
#
#   tests/run.sh            # what CI runs (via .ci/run)
#
# Needs root (or sudo) only when something must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# ---- peers and tools ---------------------------------------------------------------------
missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
[ -e /usr/lib/baresip/modules/g711.so ] || missing+=(baresip-core)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
# promtool checks the /metrics exposition and deploy/prometheus (Debian ships it in prometheus).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
# Scale-out: Kamailio's dispatcher in front of two nodes; sqlite3 edits a node's database
# behind its back (SIGHUP reload). systemd-analyze checks the unit where systemd exists.
# Kamailio also plays the SBC (record_route) in front of Switchboard in tests/it/trunks.rs.
command -v kamailio >/dev/null 2>&1 || missing+=(kamailio)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
# The daily-reset test runs the server under libfaketime, its wall clock just before midnight.
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] \
  || [ -e /usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1 ] || missing+=(faketime)
# The compose file is checked by `docker compose config` (v2) or Debian's docker-compose (v1).
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 \
  || missing+=(docker-compose)
# The /wallboard browser test drives Debian's chromium with playwright-core (npm).
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  step "installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! id postgres >/dev/null 2>&1; then
  step "creating the postgres system user for throwaway test clusters"
  useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
# The OpenAPI document served at /api/v1/openapi.json is checked with a real validator (PyPI).
if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  step "installing openapi-spec-validator (PyPI)"
  python3 -m pip install --quiet openapi-spec-validator \
    || python3 -m pip install --quiet --break-system-packages openapi-spec-validator
fi
# PJSUA2 (PJSIP 2.15) plays a PBX trunk with session timers and 100rel, and an agent phone.
if ! python3 -c 'import pjsua2' >/dev/null 2>&1; then
  step "installing pjsua2-python (PyPI)"
  python3 -m pip install --quiet pjsua2-python \
    || python3 -m pip install --quiet --break-system-packages pjsua2-python
fi
# SIP over WebSocket peers (tests/data/ws): websockets, and aiortc for WebRTC without a browser.
if ! python3 -c 'import websockets, aiortc' >/dev/null 2>&1; then
  step "installing websockets and aiortc (PyPI)"
  python3 -m pip install --quiet websockets aiortc \
    || python3 -m pip install --quiet --break-system-packages websockets aiortc
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  step "installing playwright-core (npm) for the browser tests"
  npm ci --prefix tests/browser --no-audit --no-fund
fi

# ---- checks ------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# ---- tests -------------------------------------------------------------------------------
step "loom models of the queue engine (bounded preemptions)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
  cargo test -p switchboard-engine --release --test loom

# ---- load benchmark harness ----------------------------------------------------------------
step "load benchmark, quick mode (proves the harness; its figures are not asserted)"
# One retry: a transient port collision must not fail the suite; a harness that rotted fails twice.
benches/load/run.sh --quick || {
  echo "load harness (quick) failed once; retrying" >&2
  benches/load/run.sh --quick
}

# ---- fuzzing -----------------------------------------------------------------------------
step "fuzz targets, 20 s each (SIP parser round trip, transaction machines, SDP)"
fuzz/run.sh 20

# ---- tests (last, so the test runner's summary closes the output) ------------------------
step "unit, property, store and integration tests (real SIPp, real PostgreSQL)"
cargo nextest run --workspace --no-fail-fast
