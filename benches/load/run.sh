#!/usr/bin/env bash
# Switchboard load benchmark: calls per second through the queue, CPU and memory per call, an
# RTP relay series, and Kamailio (stateful relay) as a yardstick in the same run.
#
#   benches/load/run.sh            # the full run (~25 min): release build, stepped rates
#   benches/load/run.sh --quick    # the same harness with small figures (< 3 min, not asserted)
#
# Options after the mode are passed to load.py (--out DIR, --keep, --only sb,kam,pg,mem,relay,lat).
# Results: target/load/{load.csv,relay.csv,memory.json,load.svg,results.md} (target/load-quick
# for --quick) unless --out.
# Installs its peers when missing (needs root or sudo then): sip-tester (SIPp), kamailio,
# tshark (dumpcap, for the latency capture), postgresql (throwaway cluster for the second pass).
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=""
if [ "${1:-}" = "--quick" ]; then
  quick="--quick"
  shift
fi

missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v kamailio >/dev/null 2>&1 || missing+=(kamailio)
command -v dumpcap >/dev/null 2>&1 || missing+=(tshark)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ((${#missing[@]})); then
  echo "load: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  # dumpcap asks whether non-root users may capture; the default answer is fine.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! id postgres >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi

# The quick run proves the harness inside the test command, where the debug build already
# exists; its figures are not the product's. The full run measures the release build.
if [ -n "$quick" ]; then
  profile_flag=()
  bin=target/debug/switchboard
else
  profile_flag=(--release)
  bin=target/release/switchboard
fi
bin="${SWITCHBOARD_BIN:-$bin}"
if [ -z "${SWITCHBOARD_BIN:-}" ]; then
  cargo build "${profile_flag[@]}" --bin switchboard
fi
# The RTP probe is a standalone crate (not a workspace member) with no dependencies.
CARGO_TARGET_DIR=target/load-tools cargo build --release --quiet \
  --manifest-path benches/load/rtpprobe/Cargo.toml

exec python3 benches/load/load.py $quick --binary "$bin" \
  --probe target/load-tools/release/rtpprobe --out "target/load${quick:+-quick}" "$@"
