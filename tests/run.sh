#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the tools the tests
# drive (dig, unbound, chromium, promtool), checks formatting and lints,
# builds the fuzz targets and benches, then runs every test, the soak and
# the packaging tests (container image, Kubernetes manifests).
# Usage: tests/run.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A tools=(
  [dig]=dnsutils
  [unbound]=unbound
  [chromium]=chromium
  [promtool]=prometheus
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
