#!/usr/bin/env bash
# DO queries as a class of their own: keiko-dns signed (every answer signed
# in advance) with and without the DO bit, beside NSD serving the same zone
# pre-signed by BIND's dnssec-signzone (the steered names as the static
# answers keiko gives with every region healthy). gdnsd cannot sign, so
# benches/dnsperf.sh compares it with keiko without DO only.
#
#   benches/dnsperf-dnssec.sh                          # 2 rounds x 8 s per run
#   ROUNDS=1 SECONDS_PER_RUN=2 benches/dnsperf-dnssec.sh   # smoke run
#
# Writes target/dnsperf-dnssec-report.md; raw dnsperf output and both
# servers' configs and logs stay in target/dnsperf-dnssec/.
#
# Environment (defaults in brackets): ROUNDS [2], SECONDS_PER_RUN [8],
# CLIENTS [4], OUTSTANDING [500], SKIP_BUILD [0], KEIKO_PORT [5320],
# NSD_PORT [5420], HEALTH_PORT_BASE [18091].
# Everything listens on 127.0.0.1; nothing outside 127.0.0.0/8 is contacted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT="$TARGET_DIR/dnsperf-dnssec"
REPORT="$TARGET_DIR/dnsperf-dnssec-report.md"
ROUNDS=${ROUNDS:-2}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-500}
KEIKO_PORT=${KEIKO_PORT:-5320}
NSD_PORT=${NSD_PORT:-5420}
HEALTH_PORT_BASE=${HEALTH_PORT_BASE:-18091}
ORIGIN=keiko.example.com

log() { printf '[dnsperf-dnssec.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in dnsperf:dnsperf nsd:nsd dnssec-signzone:bind9-utils dnssec-keygen:bind9-utils dig:dnsutils python3:python3; do
    command -v "${tool%%:*}" >/dev/null ||
        [ -x "/usr/sbin/${tool%%:*}" ] ||
        die "${tool%%:*} not found: apt-get install ${tool#*:}"
done
NSD=$(command -v nsd || echo /usr/sbin/nsd)

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
rm -rf "$OUT" && mkdir -p "$OUT"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --locked --quiet)
fi
KEIKO="$TARGET_DIR/release/keiko-dns"
[ -x "$KEIKO" ] || die "$KEIKO missing"

# Stand-in regional /health endpoints, so every region stays healthy.
mkdir -p "$TMP/www" && echo ok >"$TMP/www/health"
for i in 0 1 2; do
    python3 -m http.server --bind 127.0.0.1 --directory "$TMP/www" $((HEALTH_PORT_BASE + i)) \
        >/dev/null 2>&1 &
    PIDS+=($!)
done

# keiko-dns: the default config on its own ports, signed with a fresh key.
mkdir -p "$TMP/keiko"
"$KEIKO" dnssec keygen --out "$TMP/keiko/zone.pem" --origin "$ORIGIN." >"$OUT/keiko-keygen.txt"
sed -e "s|\"127.0.0.1:5300\", \"\[::1\]:5300\"|\"127.0.0.1:$KEIKO_PORT\"|" \
    -e "s|127.0.0.1:9300|127.0.0.1:$((KEIKO_PORT + 4000))|" \
    -e "s|\"../var\"|\"$TMP/keiko/var\"|" \
    -e "s|\"keiko.example.com.zone\"|\"$ROOT/zones/keiko.example.com.zone\"|" \
    -e "s|\"../geoip-fixtures|\"$ROOT/geoip-fixtures|" \
    -e "s|127.0.0.1:18081|127.0.0.1:$HEALTH_PORT_BASE|" \
    -e "s|127.0.0.1:18082|127.0.0.1:$((HEALTH_PORT_BASE + 1))|" \
    -e "s|127.0.0.1:18083|127.0.0.1:$((HEALTH_PORT_BASE + 2))|" \
    "$ROOT/zones/keiko.toml" >"$TMP/keiko/keiko.toml"
printf '\n[dnssec]\nkeys = ["%s"]\n' "$TMP/keiko/zone.pem" >>"$TMP/keiko/keiko.toml"
cp "$TMP/keiko/keiko.toml" "$OUT/keiko.toml"
"$KEIKO" check --config "$TMP/keiko/keiko.toml" >"$OUT/keiko-check.txt" || die "keiko-dns check failed"
"$KEIKO" serve --config "$TMP/keiko/keiko.toml" >"$OUT/keiko.log" 2>&1 &
KEIKO_PID=$!
PIDS+=("$KEIKO_PID")

# NSD: the same zone with the steered names as keiko answers them with
# every region healthy (failover and region names: their region), signed
# in advance by dnssec-signzone with one ECDSAP256SHA256 key (NSEC).
mkdir -p "$TMP/nsd"
{
    cat "$ROOT/zones/keiko.example.com.zone"
    printf '%s\n' \
        "api-contracts 60 IN A 192.0.2.10" "api-contracts 60 IN AAAA 2001:db8:10::10" \
        "api-contracts-us-east 60 IN A 192.0.2.10" "api-contracts-us-east 60 IN AAAA 2001:db8:10::10"
} >"$TMP/nsd/zone"
(cd "$TMP/nsd" &&
    dnssec-keygen -q -a ECDSAP256SHA256 -f KSK "$ORIGIN" >/dev/null &&
    dnssec-signzone -q -S -z -o "$ORIGIN" -f zone.signed zone >/dev/null) ||
    die "dnssec-signzone failed"
cat >"$TMP/nsd/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$NSD_PORT
    port: $NSD_PORT
    username: ""
    chroot: ""
    zonesdir: "$TMP/nsd"
    pidfile: "$TMP/nsd/nsd.pid"
    xfrdfile: "$TMP/nsd/xfrd.state"
    zonelistfile: "$TMP/nsd/zone.list"
    database: ""
    # As many servers as keiko-dns has UDP workers (one per CPU), and no
    # response rate limiting (NSD's default caps a /24 at 200 qps).
    server-count: $(nproc)
    rrl-ratelimit: 0
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: "$ORIGIN"
    zonefile: "zone.signed"
EOF
cp "$TMP/nsd/nsd.conf" "$OUT/nsd.conf"
"$NSD" -d -c "$TMP/nsd/nsd.conf" >"$OUT/nsd.log" 2>&1 &
NSD_PID=$!
PIDS+=("$NSD_PID")

wait_dns() { # port name
    for _ in $(seq 50); do
        dig +time=1 +tries=1 @127.0.0.1 -p "$1" "$ORIGIN" SOA +short >/dev/null 2>&1 && return
        sleep 0.2
    done
    die "$2 does not answer on port $1"
}
wait_dns "$KEIKO_PORT" keiko-dns
wait_dns "$NSD_PORT" nsd
# Both must answer the same name signed, or the comparison means nothing.
for port in "$KEIKO_PORT" "$NSD_PORT"; do
    dig @127.0.0.1 -p "$port" "api-contracts.$ORIGIN" A +dnssec +norec | grep -q 'RRSIG' ||
        die "no RRSIG from the server on port $port"
done

# Query files: a name per line, one class per file.
printf 'api-contracts-us-east.%s A\n' "$ORIGIN" >"$TMP/region.txt"
printf 'api-contracts.%s A\n' "$ORIGIN" >"$TMP/failover.txt"
for i in $(seq 1000); do printf 'no-such-%d.%s A\n' "$i" "$ORIGIN"; done >"$TMP/nxdomain.txt"
printf '%s MX\n' "$ORIGIN" >"$TMP/apex-mx.txt"

qps() { # port file do(0|1) -> qps
    local flag=()
    [ "$3" = 1 ] && flag=(-D) || flag=(-e)
    dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$SECONDS_PER_RUN" -c "$CLIENTS" -q "$OUTSTANDING" \
        "${flag[@]}" >"$OUT/last.txt" 2>&1 || true
    cat "$OUT/last.txt" >>"$OUT/dnsperf.txt"
    awk '/Queries per second/ { printf "%.0f", $4 }' "$OUT/last.txt"
}

: >"$OUT/results.tsv"
for round in $(seq "$ROUNDS"); do
    for class in region failover nxdomain apex-mx; do
        for run in keiko:0 keiko:1 nsd:1; do
            server=${run%:*} dnssec_ok=${run#*:}
            port=$KEIKO_PORT
            [ "$server" = nsd ] && port=$NSD_PORT
            q=$(qps "$port" "$TMP/$class.txt" "$dnssec_ok")
            log "round $round $class $server do=$dnssec_ok: $q qps"
            printf '%s\t%s\t%s\t%s\n' "$round" "$class" "$server-do$dnssec_ok" "$q" >>"$OUT/results.tsv"
        done
    done
done

python3 - "$OUT/results.tsv" "$ROUNDS" "$SECONDS_PER_RUN" >"$REPORT" <<'EOF'
import sys, statistics, collections
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
by = collections.defaultdict(list)
for rnd, cls, who, q in rows:
    by[(cls, who)].append(float(q or 0))
print(f"# DO queries: keiko-dns signed vs NSD pre-signed ({sys.argv[2]} rounds x {sys.argv[3]} s, loopback UDP)\n")
print("| class | keiko no DO (qps) | keiko DO (qps) | NSD DO (qps) | keiko DO / keiko no DO | keiko DO / NSD DO |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for cls in ["region", "failover", "nxdomain", "apex-mx"]:
    k0 = statistics.median(by[(cls, "keiko-do0")])
    k1 = statistics.median(by[(cls, "keiko-do1")])
    n1 = statistics.median(by[(cls, "nsd-do1")])
    r = lambda a, b: f"{a / b:.2f}" if b else "-"
    print(f"| {cls} | {k0:.0f} | {k1:.0f} | {n1:.0f} | {r(k1, k0)} | {r(k1, n1)} |")
EOF
cat "$REPORT"
