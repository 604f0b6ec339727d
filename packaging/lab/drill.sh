#!/usr/bin/env bash
# The three-region lab and its drills (packaging/lab/README.md).
#
# Usage: packaging/lab/drill.sh [--short] [--keep]
#   (no flag)  all six drills, about 2 minutes
#   --short    two drills (primary down, forced failover), for CI: about 1 minute
#   --keep     keep the lab folder (configs, logs, results.json) after the run
# Environment: LAB_TTL the steered records' TTL in the lab (default 5 s);
# KEIKO_BIN the keiko-dns binary (default target/release/keiko-dns,
# built with `cargo build --release` when missing); LAB_TABLE where the drill
# table is written (default target/lab/drill-table.md).
#
# Runs as root: it creates the network namespaces keiko-us-east-1,
# keiko-eu-west-1, keiko-ap-southeast-1, keiko-client, keiko-parent and
# keiko-router, and deletes them, with every process it started, on exit,
# whether the drills pass or not. Nothing is sent outside these namespaces.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

short=""
keep=0
for arg in "$@"; do
  case "$arg" in
    --short) short="--short" ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "drill.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "drill.sh: must run as root (it creates and deletes network namespaces); try: sudo $0 $*" >&2
  exit 1
fi
for tool in ip python3 unbound nsd; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "drill.sh: $tool is missing (Debian: apt-get install -y iproute2 python3 unbound nsd)" >&2
    exit 1
  fi
done
if [ ! -c /dev/net/tun ]; then
  echo "drill.sh: /dev/net/tun is missing: the delaying router needs a TUN device" >&2
  exit 1
fi
for ns in keiko-us-east-1 keiko-eu-west-1 keiko-ap-southeast-1 keiko-client keiko-parent keiko-router; do
  if ip netns list | grep -qw "$ns"; then
    echo "drill.sh: namespace $ns exists already (another lab running?); delete it with: ip netns del $ns" >&2
    exit 1
  fi
done

bin=${KEIKO_BIN:-$root/target/release/keiko-dns}
if [ ! -x "$bin" ]; then
  echo "drill.sh: building $bin"
  (cd "$root" && CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --locked --bin keiko-dns)
fi
table=${LAB_TABLE:-$root/target/lab/drill-table.md}
mkdir -p "$(dirname "$table")"

labdir=$(mktemp -d /tmp/keiko-lab.XXXXXX)
finish() {
  rc=$?
  python3 "$here/lab.py" cleanup --lab-dir "$labdir" || true
  if [ "$keep" -eq 1 ] || [ "$rc" -ne 0 ]; then
    echo "drill.sh: lab files (configs, logs) kept in $labdir"
  else
    rm -rf "$labdir"
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
python3 "$here/lab.py" run --keiko "$bin" --lab-dir "$labdir" --table "$table" $short
echo "drill.sh: table written to $table; took $(( $(date +%s) - start )) s"
