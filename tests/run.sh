#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the tools the tests
# drive (dig, delv, unbound, nsd, chromium, promtool, podman, kubectl,
# dnspython), checks formatting and lints, builds the fuzz targets and
# benches, then runs every test, the soak, the packaging tests (container
# image, Kubernetes manifests) and the short three-region lab drills.
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
  [dnssec-dsfromkey]=bind9-utils
  [nsd]=nsd  # the lab's parent zone (packaging/lab)
  [podman]=podman
  [kubectl]=kubernetes-client
  [shellcheck]=shellcheck
  [python3]=python3-venv
  [unshare]=util-linux
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
# The one release build is static (glibc, crt-static): the benches, the
# soak and the container image share it. `--target` keeps the flag off
# build scripts and proc macros; the artifacts go to target/$STATIC_TARGET/.
STATIC_TARGET=x86_64-unknown-linux-gnu
STATIC_DIR=target/$STATIC_TARGET/release
static() { RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" "$@" --target "$STATIC_TARGET"; }
static cargo bench --no-run --locked
cargo test --locked "$@"
# The 2-minute soak (benches/README.md) of that release build: only its
# driver, examples/soak, is compiled here.
static cargo build --locked --quiet --profile bench --bin keiko-dns --example soak
KEIKO_BIN=$STATIC_DIR/keiko-dns SOAK_DRIVER=$STATIC_DIR/examples/soak \
  SOAK_SECONDS=120 BASELINE_SECONDS=10 benches/soak.sh
# The image of that binary, the Kubernetes manifests, the ops script
# (needs root: unshare and chroot).
KEIKO_STATIC_BIN=$STATIC_DIR/keiko-dns tests/packaging.sh
# The three-region lab, short (packaging/lab/README.md), on the same
# binary: two drills (primary region down, forced failover) through
# unbound with ECS, a parent zone's delegation and delayed links between
# network namespaces; about a minute. It needs root (it creates and
# deletes the namespaces) and fails, never skips, when a tool or a seed
# target is missing.
lab_sudo=""
[ "$(id -u)" -eq 0 ] || lab_sudo="sudo"
$lab_sudo env KEIKO_BIN="$PWD/$STATIC_DIR/keiko-dns" packaging/lab/drill.sh --short
