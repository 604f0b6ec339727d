#!/usr/bin/env bash
# Overload: while dnsperf floods the UDP port as fast as it can, show with
# measured figures that
#   (a) a region failure is still detected on time,
#   (b) /metrics and /status answer within 1 s,
#   (c) a SIGHUP reload completes,
#   (d) TCP abuse (600 idle connections, a one-byte-per-second client, a
#       client pipelining 1000 queries without reading) holds nothing up.
# Everything runs on 127.0.0.1 in a temporary folder; every process started
# here is stopped by PID on exit.
#
#   benches/overload.sh            (KEIKO_BIN=path to use another binary,
#                                   FLOOD_SECONDS=30 to change the flood)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELPERS="$ROOT/benches/overload/helpers.py"
BIN=${KEIKO_BIN:-}
FLOOD_SECONDS=${FLOOD_SECONDS:-30}

if ! command -v dnsperf >/dev/null; then
  echo "installing dnsperf" >&2
  apt-get install -y dnsperf >/dev/null
fi
if [ -z "$BIN" ]; then
  # Incremental: a no-op when the release binary is up to date.
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=$ROOT/target/release/keiko-dns
fi

WORK=$(mktemp -d /tmp/keiko-overload.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket
s=socket.socket(); s.bind(("127.0.0.1",0)); u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
p=s.getsockname()[1]; u.bind(("127.0.0.1",p)); print(p)'
}
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

DNS_PORT=$(free_port)
ADMIN_PORT=$(free_port)
H1=$(free_port); H2=$(free_port); H3=$(free_port)
ADMIN="http://127.0.0.1:$ADMIN_PORT"

# Three loopback health endpoints; us-east-1's fails once $WORK/fail exists.
python3 "$HELPERS" stub "$H1" "$WORK/fail" & PIDS+=($!)
python3 "$HELPERS" stub "$H2" "$WORK/never" & PIDS+=($!)
python3 "$HELPERS" stub "$H3" "$WORK/never" & PIDS+=($!)

cp "$ROOT/zones/keiko.example.com.zone" "$WORK/"
cat >"$WORK/keiko.toml" <<EOF
[server]
dns_listen   = ["127.0.0.1:$DNS_PORT"]
admin_listen = "127.0.0.1:$ADMIN_PORT"
region       = "us-east-1"
state_dir    = "state"

[zone]
origin = "keiko.example.com."
file   = "keiko.example.com.zone"

[health]
interval           = "1s"
timeout            = "1s"
fast_interval      = "1s"
failure_threshold  = 3
recovery_threshold = 3

[[regions]]
name       = "us-east-1"
priority   = 1
weight     = 40
endpoint   = "https://api-contracts-us-east.keiko.example.com"
addresses  = ["192.0.2.10", "2001:db8:10::10"]
health_url = "http://127.0.0.1:$H1/health"

[[regions]]
name       = "eu-west-1"
priority   = 2
weight     = 40
endpoint   = "https://api-contracts-eu-west.keiko.example.com"
addresses  = ["198.51.100.10", "2001:db8:20::10"]
health_url = "http://127.0.0.1:$H2/health"

[[regions]]
name       = "ap-southeast-1"
priority   = 3
weight     = 20
endpoint   = "https://api-contracts-ap-southeast.keiko.example.com"
addresses  = ["203.0.113.10", "2001:db8:30::10"]
health_url = "http://127.0.0.1:$H3/health"

[[records]]
name   = "api-contracts"
policy = "failover"

[[records]]
name   = "api-contracts-weighted"
policy = "weighted"
EOF

KEIKO_LOG=info "$BIN" serve --config "$WORK/keiko.toml" 2>"$WORK/server.log" & KEIKO=$!
PIDS+=("$KEIKO")
for _ in $(seq 100); do
  curl -fs -o /dev/null "$ADMIN/ready" && break
  sleep 0.1
done
curl -fs -o /dev/null "$ADMIN/ready" || { cat "$WORK/server.log"; echo "not ready" >&2; exit 1; }

cat >"$WORK/queries" <<EOF
api-contracts.keiko.example.com A
api-contracts-weighted.keiko.example.com A
status.keiko.example.com A
status.keiko.example.com AAAA
nothing-here.keiko.example.com A
api.keiko.example.com A
EOF
dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$WORK/queries" -c 8 -q 1000 \
  -l "$FLOOD_SECONDS" -t 1 >"$WORK/dnsperf.out" 2>&1 & DNSPERF=$!
PIDS+=("$DNSPERF")
FLOOD_START=$(now)
sleep 2

# (b) admin latency, sampled all through the flood in the background.
(
  while kill -0 "$DNSPERF" 2>/dev/null; do
    curl -s -o /dev/null -m 5 -w '%{time_total}\n' "$ADMIN/metrics" >>"$WORK/metrics.times" || echo 5 >>"$WORK/metrics.times"
    curl -s -o /dev/null -m 5 -w '%{time_total}\n' "$ADMIN/status" >>"$WORK/status.times" || echo 5 >>"$WORK/status.times"
    sleep 0.2
  done
) & PIDS+=($!)

# (a) failure detection: the stub fails at t0.
T0=$(now)
touch "$WORK/fail"
DETECT=$(python3 "$HELPERS" watch "$DNS_PORT" api-contracts.keiko.example.com 198.51.100.10 "$T0" 15)
DETECT_S=${DETECT%% *}
# When /status shows it too.
STATUS_DOWN=never
for _ in $(seq 150); do
  if curl -s -m 2 "$ADMIN/status" | python3 -c 'import json,sys
r=[r for r in json.load(sys.stdin)["regions"] if r["name"]=="us-east-1"][0]
sys.exit(0 if not r["healthy"] else 1)'; then
    STATUS_DOWN=$(elapsed "$T0" "$(now)")
    break
  fi
  sleep 0.1
done
rm -f "$WORK/fail"

# (c) SIGHUP reload.
BEFORE=$(wc -c <"$WORK/server.log")
T1=$(now)
kill -HUP "$KEIKO"
RELOAD_S=never
for _ in $(seq 500); do
  if tail -c +"$((BEFORE + 1))" "$WORK/server.log" | grep -q "reloaded"; then
    RELOAD_S=$(elapsed "$T1" "$(now)")
    break
  fi
  sleep 0.01
done

# (d) TCP abuse, still under the UDP flood while it lasts.
python3 "$HELPERS" tcp "$DNS_PORT" >"$WORK/tcp.out" 2>&1 || true

wait "$DNSPERF" || true
kill -0 "$KEIKO" 2>/dev/null && ALIVE=yes || ALIVE=no
# The steered answer recovers once the stub is healthy again.
RECOVERED=$(dig +short +time=1 +tries=3 -p "$DNS_PORT" @127.0.0.1 api-contracts.keiko.example.com A || true)

stats() { # file -> "max median n"
  python3 -c 'import sys,statistics
v=[float(x) for x in open(sys.argv[1]) if x.strip()]
print(f"{max(v):.3f} {statistics.median(v):.3f} {len(v)}") if v else print("n/a n/a 0")' "$1"
}
read -r M_MAX M_MED M_N < <(stats "$WORK/metrics.times")
read -r S_MAX S_MED S_N < <(stats "$WORK/status.times")
QPS=$(grep -E "Queries per second" "$WORK/dnsperf.out" | awk '{print $4}')
SENT=$(grep -E "Queries sent" "$WORK/dnsperf.out" | awk '{print $3}')
DONE=$(grep -E "Queries completed" "$WORK/dnsperf.out" | awk '{print $3, $4}')
LOST=$(grep -E "Queries lost" "$WORK/dnsperf.out" | awk '{print $3, $4}')
BOUND=5.0  # failure_threshold x interval + timeout + 1 s
tcpv() { grep -o "$1=[^ ]*" "$WORK/tcp.out" | head -1 | cut -d= -f2; }
ok() { python3 -c "import sys; print('ok' if float(sys.argv[1]) <= float(sys.argv[2]) else 'FAIL')" "$1" "$2" 2>/dev/null || echo FAIL; }

echo
echo "=== keiko-dns under a UDP flood (dnsperf -c 8 -q 1000 -l $FLOOD_SECONDS, loopback, $(nproc) cores) ==="
echo "flood: $SENT sent, completed $DONE, lost $LOST, $QPS qps"
echo
printf '%-58s %-14s %-10s %s\n' "figure" "measured" "limit" "verdict"
printf '%-58s %-14s %-10s %s\n' "(a) failover answer changed after the stub failed (s)" "${DETECT_S}" "$BOUND" "$(ok "$DETECT_S" $BOUND)"
printf '%-58s %-14s %-10s %s\n' "(a) /status shows us-east-1 unhealthy after (s)" "$STATUS_DOWN" "$BOUND" "$(ok "$STATUS_DOWN" $BOUND)"
printf '%-58s %-14s %-10s %s\n' "(b) GET /metrics max / median (s), $M_N samples" "$M_MAX / $M_MED" "1.0" "$(ok "$M_MAX" 1.0)"
printf '%-58s %-14s %-10s %s\n' "(b) GET /status max / median (s), $S_N samples" "$S_MAX / $S_MED" "1.0" "$(ok "$S_MAX" 1.0)"
printf '%-58s %-14s %-10s %s\n' "(c) SIGHUP to \"reloaded\" in the log (s)" "$RELOAD_S" "1.0" "$(ok "$RELOAD_S" 1.0)"
printf '%-58s %-14s %-10s %s\n' "(d) 600 idle TCP connections: closed at once by the cap" "$(tcpv idle_closed_at_once)" ">=88" "$( [ "$(tcpv idle_closed_at_once)" -ge 88 ] && echo ok || echo FAIL)"
printf '%-58s %-14s %-10s %s\n' "(d) fresh TCP query while 512 idle held: answered?" "$(tcpv fresh_query_while_full_answered)" "True" "$( [ "$(tcpv fresh_query_while_full_answered)" = True ] && echo ok || echo FAIL)"
printf '%-58s %-14s %-10s %s\n' "(d) fresh TCP query answered after (s)" "$(tcpv fresh_query_answered_after_s)" "-" "-"
printf '%-58s %-14s %-10s %s\n' "(d) idle connections all closed after (s, idle 10 s)" "$(tcpv idle_all_closed_after_s)" "~10" "-"
printf '%-58s %-14s %-10s %s\n' "(d) 1 byte/s client disconnected after (s)" "$(tcpv slow_client_closed_after_s)" "~5-7" "$(ok "$(tcpv slow_client_closed_after_s)" 8)"
printf '%-58s %-14s %-10s %s\n' "(d) other TCP queries during the slow client" "$(tcpv others_during_slow_answered)" "5/5" "$( [ "$(tcpv others_during_slow_answered)" = 5/5 ] && echo ok || echo FAIL)"
printf '%-58s %-14s %-10s %s\n' "(d) other TCP queries during 1000 unread pipelined" "$(tcpv others_during_pipeline_answered)" "5/5" "$( [ "$(tcpv others_during_pipeline_answered)" = 5/5 ] && echo ok || echo FAIL)"
printf '%-58s %-14s %-10s %s\n' "(d) non-reading pipeliner closed by the server after (s)" "$(tcpv pipeline_client_closed_after_s)" "~5" "-"
printf '%-58s %-14s %-10s %s\n' "server alive after everything" "$ALIVE" "yes" "$( [ $ALIVE = yes ] && echo ok || echo FAIL)"
printf '%-58s %-14s %-10s %s\n' "failover answer after the stub recovered" "${RECOVERED:-none}" "192.0.2.10" "$( [ "$RECOVERED" = 192.0.2.10 ] && echo ok || echo FAIL)"
echo
echo "--- tcp details"
cat "$WORK/tcp.out"
echo "--- failure watch: $DETECT"
