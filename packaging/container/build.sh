#!/usr/bin/env bash
# Builds the keiko-dns image from the repository alone (no base image is
# pulled): a statically linked release binary, the staged context in
# target/container/, then `podman build` with vfs storage.
#
#   packaging/container/build.sh                 # -> localhost/keiko-dns:latest
#   IMAGE=registry.example/keiko-dns:0.1.0 packaging/container/build.sh
#
# Environment:
#   IMAGE             image name               [localhost/keiko-dns:latest]
#   KEIKO_STATIC_BIN  a static binary built already (skips the cargo build)
#   CARGO_PROFILE     cargo profile of the static build [release]; `bench`
#                     reuses what `cargo bench --no-run --target ...` built
#   PODMAN            podman command           [podman --storage-driver vfs]
#   CA_BUNDLE         CA certificates to ship  [/etc/ssl/certs/ca-certificates.crt]
#
# Prints the image name and its size. The static build is glibc with
# crt-static (the musl target is not needed):
#   RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
#     --target x86_64-unknown-linux-gnu --bin keiko-dns
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/packaging/container
IMAGE=${IMAGE:-localhost/keiko-dns:latest}
PROFILE=${CARGO_PROFILE:-release}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
TRIPLE=x86_64-unknown-linux-gnu
read -r -a PODMAN <<<"${PODMAN:-podman --storage-driver vfs}"

die() { echo "build.sh: $*" >&2; exit 1; }
command -v "${PODMAN[0]}" >/dev/null || die "${PODMAN[0]} is not installed (Debian: apt-get install podman)"
[ -r "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (Debian: apt-get install ca-certificates)"

BIN=${KEIKO_STATIC_BIN:-}
if [ -z "$BIN" ]; then
  # `--target` keeps the flag off build scripts and proc macros, which
  # cannot be static; the binary lands in target/$TRIPLE/<profile dir>/.
  dir=$PROFILE; [ "$PROFILE" = bench ] && dir=release
  (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked --quiet --profile "$PROFILE" --target "$TRIPLE" --bin keiko-dns)
  BIN=$ROOT/target/$TRIPLE/$dir/keiko-dns
fi
[ -x "$BIN" ] || die "no binary at $BIN"
# A static binary has no program interpreter and needs no shared library.
if readelf -l "$BIN" | grep -q 'Requesting program interpreter'; then
  die "$BIN is dynamically linked; build it with RUSTFLAGS='-C target-feature=+crt-static' --target $TRIPLE"
fi
if readelf -d "$BIN" 2>/dev/null | grep -q '(NEEDED)'; then
  die "$BIN needs shared libraries: $(readelf -d "$BIN" | grep '(NEEDED)' | tr -s ' ' | tr '\n' ' ')"
fi

CTX=$ROOT/target/container
rm -rf "$CTX"
R=$CTX/rootfs
mkdir -p "$R/etc/ssl/certs" "$R/usr/bin" "$R/etc/keiko-dns" "$R/usr/share/keiko-dns" \
  "$R/var/lib/keiko-dns" "$R/tmp" "$R/dev" "$R/proc"
cp "$HERE/Containerfile" "$CTX/Containerfile"
# The debug line tables stay in target/; the image gets the symbols only.
strip --strip-debug -o "$R/usr/bin/keiko-dns" "$BIN"
cp -L "$CA_BUNDLE" "$R/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nkeiko:x:65532:65532:keiko-dns:/var/lib/keiko-dns:/sbin/nologin\n' \
  >"$R/etc/passwd"
printf 'root:x:0:\nkeiko:x:65532:\n' >"$R/etc/group"
cp "$ROOT/zones/keiko.example.com.zone" "$R/etc/keiko-dns/"
cp "$ROOT/geoip-fixtures/keiko-regions.mmdb" "$R/usr/share/keiko-dns/"
"$HERE/container-config.sh" <"$ROOT/zones/keiko.toml" >"$R/etc/keiko-dns/keiko.toml"

"${PODMAN[@]}" build --quiet --tag "$IMAGE" -f "$CTX/Containerfile" "$CTX" >/dev/null
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
echo "$IMAGE: $((size / 1024)) KiB ($(stat -c %s "$R/usr/bin/keiko-dns") bytes of binary, $(stat -c %s "$BIN") before strip --strip-debug)"
