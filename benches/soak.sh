#!/usr/bin/env bash
# The soak: keiko-dns under a fixed load for a long time while it is
# reloaded every 10 s between two configs with different weights (or, with
# SOAK_MODE=takeover, restarted by `serve --takeover` every minute), one
# region's health flaps every 30 s and forced states are toggled through
# the admin API, with rate limiting and DNS cookies on and a pool of TCP
# clients opening and closing connections. Every answer is checked against
# what the state at that moment allows; resident memory, open descriptors
# and threads must stay flat; nothing may be lost beyond what the same load
# loses without changes; no ERROR may be logged. See benches/README.md.
#
#   benches/soak.sh                          # 30 minutes at 5,000 qps
#   SOAK_SECONDS=120 benches/soak.sh         # what tests/run.sh runs
#   SOAK_MODE=takeover benches/soak.sh       # needs `serve --takeover`
#
# The driver is examples/soak (Rust, the project's own dependencies); every
# setting is an environment variable passed through to it (SOAK_SECONDS,
# SOAK_QPS, SOAK_MODE, BASELINE_SECONDS, TCP_CLIENTS, TCP_CONNS_PER_SECOND,
# SAMPLE_SECONDS, RELOAD_EVERY, TAKEOVER_EVERY, FLAP_EVERY,
# FLAP_DOWN_SECONDS, FORCE_EVERY, HEALTH_WINDOW, CHANGE_MARGIN,
# RSS_SLOPE_LIMIT, RSS_NOISE_KIB, FD_SLOPE_LIMIT, THREAD_SLOPE_LIMIT, WARMUP_RELOADS,
# WARMUP_EVENTS: their defaults are in
# examples/soak/main.rs). KEIKO_BIN and SOAK_DRIVER name prebuilt binaries;
# otherwise both are built with the bench profile (the release settings,
# and the artifacts `cargo bench --no-run` already built). KEEP=1 keeps
# the work folder (config, server log, report) also after a pass; after a
# failure it is always kept.
#
# Exit: 0 passed, 1 a check failed, 2 the soak could not run.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${KEIKO_BIN:-}" ] || [ -z "${SOAK_DRIVER:-}" ]; then
  (cd "$ROOT" && cargo build --locked --quiet --profile bench --bin keiko-dns --example soak)
fi
export KEIKO_BIN=${KEIKO_BIN:-$ROOT/target/release/keiko-dns}
DRIVER=${SOAK_DRIVER:-$ROOT/target/release/examples/soak}

SOAK_DIR=$(mktemp -d /tmp/keiko-soak.XXXXXX)
export SOAK_DIR
DRIVER_PID=
cleanup() {
  local rc=$?
  if [ -n "$DRIVER_PID" ] && kill -0 "$DRIVER_PID" 2>/dev/null; then
    kill "$DRIVER_PID" 2>/dev/null || true
    wait "$DRIVER_PID" 2>/dev/null || true
  fi
  # Servers the driver started and could not stop (it was killed): by the
  # PIDs it wrote, and only if they still are keiko-dns on this folder.
  if [ -f "$SOAK_DIR/server.pids" ]; then
    while read -r pid; do
      if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q "serve --config $SOAK_DIR/"; then
        kill "$pid" 2>/dev/null || true
      fi
    done <"$SOAK_DIR/server.pids"
  fi
  if { [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; } || rmdir "$SOAK_DIR" 2>/dev/null; then
    rm -rf "$SOAK_DIR"
  else
    echo "soak: config, server log and report kept in $SOAK_DIR" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$DRIVER" &
DRIVER_PID=$!
set +e
wait "$DRIVER_PID"
rc=$?
set -e
DRIVER_PID=
exit "$rc"
