#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the tools the tests
# drive (dig, delv, unbound, chromium, promtool, dnspython), checks formatting and lints,
# builds the fuzz targets and benches, then runs every test.
# Usage: tests/run.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A tools=(
  [dig]=dnsutils
  [unbound]=unbound
  [chromium]=chromium
  [promtool]=prometheus
  [delv]=bind9-dnsutils
  [dnssec-dsfromkey]=bind9-dnsutils
  [nsd]=nsd  # the lab's parent zone (packaging/lab)
)
missing=()
for cmd in "${!tools[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${tools[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# dnspython validates signed answers independently of hickory (tests/dnssec.rs);
# its DNSSEC support needs cryptography 50 or later.
if ! python3 -c "import sys, dns._features as f; sys.exit(0 if f.have('dnssec') else 1)" 2>/dev/null; then
  echo "tests/run.sh: installing dnspython with cryptography (pip)"
  python3 -m pip install -q --disable-pip-version-check 'dnspython==2.9.2' 'cryptography>=50'
fi

# House rules first: they fail in seconds, the suite takes minutes.
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# The fuzz crate (its own workspace, run by hand with cargo-fuzz: see
# docs/fuzzing.md) and the benches (see benches/README.md) must keep building.
cargo check --locked --manifest-path fuzz/Cargo.toml --bins
cargo bench --no-run --locked
cargo test --locked "$@"
# The 2-minute soak (benches/README.md): it reuses the release build that
# `cargo bench --no-run` made above (the bench profile is the release one),
# so only its driver, examples/soak, is compiled here.
SOAK_SECONDS=120 BASELINE_SECONDS=10 benches/soak.sh
# The three-region lab, short (packaging/lab/README.md): two drills (primary
# region down, forced failover) through unbound with ECS, a parent zone's
# delegation and delayed links between network namespaces; about a minute.
# It needs root (it creates and deletes the namespaces) and fails, never
# skips, when a tool or a seed target is missing.
lab_sudo=""
[ "$(id -u)" -eq 0 ] || lab_sudo="sudo"
$lab_sudo env KEIKO_BIN="$PWD/target/release/keiko-dns" packaging/lab/drill.sh --short
