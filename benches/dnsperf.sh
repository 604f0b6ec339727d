#!/usr/bin/env bash
# Side-by-side data-plane benchmark: keiko-dns against gdnsd 3 (Debian's),
# both serving the same zone, the same three regions and the same steering
# (failover, weighted, geo with ECS) with health checks against the same
# local endpoints, measured with Debian's dnsperf on loopback.
#
#   benches/dnsperf.sh                            # full run: 3 rounds x 10 s per run
#   ROUNDS=1 SECONDS_PER_RUN=2 benches/dnsperf.sh # smoke run (about 2 minutes)
#
# Writes target/dnsperf-report.md (Markdown tables, one per query class)
# and keeps raw results and logs in target/dnsperf/. See benches/README.md.
#
# Environment (defaults in brackets):
#   ROUNDS [3]             rounds; every round runs every class on both servers
#   SECONDS_PER_RUN [10]   length of each dnsperf run
#   CLASSES ["static failover weighted geo nxdomain mix"]   UDP classes
#   TCP_CLASSES ["static failover"]                         also run over TCP
#   CLIENTS [4] OUTSTANDING [500]   dnsperf -c / -q of the max-throughput runs
#   LATENCY_PCT [50]       fixed-rate latency runs at this % of gdnsd's max
#                          qps for the class in the same round
#   LATENCY_QPS            or a fixed rate for every latency run
#   PROFILE [auto]         instructions per query for each class at a fixed
#                          rate: perf stat if the CPU counters work, else
#                          valgrind callgrind; 0 to skip
#   PROFILE_CLASSES [CLASSES]  the classes profiled
#   PROFILE_QPS [2000] PROFILE_SECONDS [5]
#   SKIP_BUILD [0]         1: use the existing target/release/keiko-dns
#   KEIKO_PORT [5310] KEIKO_ADMIN_PORT [9310] GDNSD_PORT [5410]
#   HEALTH_PORT_BASE [18081]  three local health servers on BASE..BASE+2
#                          (the ports zones/keiko.toml and `keiko-dns demo`
#                          use); if taken, BASE+10000 is tried
#   PIN [0]                1: both servers run on the last CPU and dnsperf
#                          on the others (taskset), so every run gets the
#                          same split of the machine instead of whatever
#                          the scheduler picks; 0: no pinning
#   UDP_THREADS [CPUs the servers may use]   gdnsd udp_threads/tcp_threads;
#                          keiko uses available_parallelism, which counts
#                          the same CPUs
#   KEEP_TMP [0]           1: keep the temporary directory
# Everything listens on 127.0.0.1 only; nothing outside 127.0.0.0/8 is
# contacted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$ROOT/benches/dnsperf"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT="$TARGET_DIR/dnsperf"
REPORT="$TARGET_DIR/dnsperf-report.md"

ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CLASSES=${CLASSES:-"static failover weighted geo nxdomain mix"}
TCP_CLASSES=${TCP_CLASSES-"static failover"}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-500}
LATENCY_PCT=${LATENCY_PCT:-50}
LATENCY_QPS=${LATENCY_QPS:-}
PROFILE=${PROFILE:-auto}
PROFILE_CLASSES=${PROFILE_CLASSES:-$CLASSES}
PROFILE_QPS=${PROFILE_QPS:-2000}
PROFILE_SECONDS=${PROFILE_SECONDS:-5}
SKIP_BUILD=${SKIP_BUILD:-0}
KEIKO_PORT=${KEIKO_PORT:-5310}
KEIKO_ADMIN_PORT=${KEIKO_ADMIN_PORT:-9310}
GDNSD_PORT=${GDNSD_PORT:-5410}
HEALTH_PORT_BASE=${HEALTH_PORT_BASE:-18081}
PIN=${PIN:-0}
SERVER_PIN=() CLIENT_PIN=()
if [[ $PIN == 1 ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
    last=$(($(nproc) - 1))
    SERVER_PIN=(taskset -c "$last")
    CLIENT_PIN=(taskset -c "0-$((last - 1))")
    UDP_THREADS=${UDP_THREADS:-1}
else
    PIN=0
fi
UDP_THREADS=${UDP_THREADS:-$(nproc)}
KEEP_TMP=${KEEP_TMP:-0}
HOST=127.0.0.1

log() { printf '[dnsperf.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3) || die "python3 is needed"

# --- processes we start, stopped by PID on exit ---------------------------
PIDS=()
TMP=""
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    # gdnsd's extmon helper and the like: children of the process, by PPID
    local kids
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    for k in $kids; do kill -TERM "$k" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    set +e
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -----------------------------------------------------------------
need_pkgs=()
command -v gdnsd >/dev/null || need_pkgs+=(gdnsd)
command -v dnsperf >/dev/null || need_pkgs+=(dnsperf)
command -v dig >/dev/null || need_pkgs+=(bind9-dnsutils)
command -v curl >/dev/null || need_pkgs+=(curl)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    SUDO=""; [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
GDNSD=$(command -v gdnsd || echo /usr/sbin/gdnsd)

# --- build -----------------------------------------------------------------
if [[ $SKIP_BUILD != 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
KEIKO="$TARGET_DIR/release/keiko-dns"
[[ -x $KEIKO ]] || die "no $KEIKO"

# --- ports -----------------------------------------------------------------
port_taken() { ss -Hln "( sport = :$1 )" 2>/dev/null | grep -q .; }
for p in "$KEIKO_PORT" "$KEIKO_ADMIN_PORT" "$GDNSD_PORT"; do
    port_taken "$p" && die "port $p is in use (set KEIKO_PORT/KEIKO_ADMIN_PORT/GDNSD_PORT)"
done
if port_taken "$HEALTH_PORT_BASE" || port_taken $((HEALTH_PORT_BASE + 1)) || port_taken $((HEALTH_PORT_BASE + 2)); then
    log "health ports $HEALTH_PORT_BASE.. are taken (a keiko-dns demo?); using $((HEALTH_PORT_BASE + 10000)).."
    HEALTH_PORT_BASE=$((HEALTH_PORT_BASE + 10000))
    for i in 0 1 2; do port_taken $((HEALTH_PORT_BASE + i)) && die "port $((HEALTH_PORT_BASE + i)) is in use"; done
fi

# --- configs and query files -------------------------------------------------
TMP=$(mktemp -d /tmp/keiko-dnsperf.XXXXXX)
rm -rf "$OUT"; mkdir -p "$OUT"
HEALTH_PORTS=$("$PY" "$HERE/configs.py" "$ROOT/zones/keiko.toml" "$TMP/keiko" "$TMP/gdnsd" \
    "$HOST:$KEIKO_PORT" "$HOST:$KEIKO_ADMIN_PORT" "$HOST:$GDNSD_PORT" "$HEALTH_PORT_BASE" "$UDP_THREADS")
mkdir -p "$TMP/queries"
"$PY" "$HERE/queries.py" "$TMP/queries"
cp -r "$TMP/keiko/keiko.toml" "$OUT/keiko.toml"
cp "$TMP/gdnsd/config" "$OUT/gdnsd-config"
cp "$TMP/gdnsd/zones/"* "$OUT/gdnsd-zone"
cp "$TMP/queries/"*.txt "$OUT/"
"$GDNSD" -c "$TMP/gdnsd" checkconf >"$OUT/gdnsd-checkconf.log" 2>&1 ||
    { cat "$OUT/gdnsd-checkconf.log" >&2; die "gdnsd checkconf failed"; }
"$KEIKO" check --config "$TMP/keiko/keiko.toml" >"$OUT/keiko-check.log" 2>&1 ||
    { cat "$OUT/keiko-check.log" >&2; die "keiko-dns check failed"; }

# --- health endpoints ----------------------------------------------------------
mkdir -p "$TMP/www"
echo ok >"$TMP/www/health"
for p in $HEALTH_PORTS; do
    "$PY" -m http.server "$p" --bind "$HOST" --directory "$TMP/www" >"$OUT/health-$p.log" 2>&1 &
    PIDS+=($!)
done

# --- servers -------------------------------------------------------------------
wait_dns() { # port name
    local i
    for i in $(seq 150); do
        [[ -n $(dig +short +time=1 +tries=1 @"$HOST" -p "$1" keiko.example.com SOA 2>/dev/null) ]] && return 0
        sleep 0.2
    done
    die "$2 does not answer on $HOST:$1 (see $OUT/$2.log)"
}
KEIKO_PID="" GDNSD_PID=""
start_keiko() { # [wrapper...]
    (cd "$TMP/keiko" && exec "${SERVER_PIN[@]}" "$@" "$KEIKO" serve --config "$TMP/keiko/keiko.toml") >"$OUT/keiko.log" 2>&1 &
    KEIKO_PID=$!
    PIDS+=("$KEIKO_PID")
}
start_gdnsd() { # [wrapper...]
    "${SERVER_PIN[@]}" "$@" "$GDNSD" -c "$TMP/gdnsd" start >"$OUT/gdnsd.log" 2>&1 &
    GDNSD_PID=$!
    PIDS+=("$GDNSD_PID")
}

start_keiko
start_gdnsd
wait_dns "$KEIKO_PORT" keiko
wait_dns "$GDNSD_PORT" gdnsd
log "keiko-dns pid $KEIKO_PID on $HOST:$KEIKO_PORT, gdnsd pid $GDNSD_PID on $HOST:$GDNSD_PORT, health on ports $HEALTH_PORTS"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# utime+stime of the whole process in clock ticks: "user system"
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }
CLK_TCK=$(getconf CLK_TCK)

RESULTS="$OUT/results.tsv"
printf 'round\tserver\tclass\tproto\tkind\trate\tqps\tsent\tcompleted\tlost\tavg_ms\tsd_ms\tp50_ms\tp99_ms\tuser_us_q\tsys_us_q\trss_kb\tresp_bytes\n' >"$RESULTS"
printf 'keiko\t%s\ngdnsd\t%s\n' "$(rss_kb "$KEIKO_PID")" "$(rss_kb "$GDNSD_PID")" >"$OUT/rss-start.tsv"

# --- are the answers the same? -------------------------------------------------------
# Wait until both see every region healthy (failover answers the priority-1
# region), then compare answers; differences are reported, not fatal.
check_answers() {
    local i a b ok=0 bad=0 n q
    for i in $(seq 100); do
        a=$(dig +short @"$HOST" -p "$KEIKO_PORT" api-contracts.keiko.example.com A)
        b=$(dig +short @"$HOST" -p "$GDNSD_PORT" api-contracts.keiko.example.com A)
        [[ -n $a && $a == "$b" ]] && break
        sleep 0.3
    done
    : >"$OUT/answer-check.txt"
    while read -r n t e; do
        q=("$n" "$t" +norec)
        [[ -n ${e:-} ]] && q+=(+subnet="$e")
        # the records of the answer section, TTLs dropped, sorted; for the
        # weighted name the set seen over 40 queries
        local reps=1; [[ $n == api-contracts-weighted.* ]] && reps=40
        a=$(for _ in $(seq $reps); do dig +noall +answer +authority @"$HOST" -p "$KEIKO_PORT" "${q[@]}"; done | awk '{ $2 = ""; print }' | sort -u)
        b=$(for _ in $(seq $reps); do dig +noall +answer +authority @"$HOST" -p "$GDNSD_PORT" "${q[@]}"; done | awk '{ $2 = ""; print }' | sort -u)
        if [[ $a == "$b" ]]; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
            printf '### %s %s %s\nkeiko:\n%s\ngdnsd:\n%s\n\n' "$n" "$t" "${e:-}" "$a" "$b" >>"$OUT/answer-check.txt"
        fi
    done < <(cat "$TMP/queries/"{static,failover,weighted,geo}.txt; sort -u "$TMP/queries/mix.txt" | grep -v '^nx' | head -40; head -3 "$TMP/queries/nxdomain.txt")
    # SOA TTL: gdnsd clamps it to the SOA minimum (300); ignore TTLs above.
    echo "$ok $bad" >"$OUT/answer-check.count"
    log "answer check: $ok identical, $bad different (see $OUT/answer-check.txt)"
}
check_answers

# --- one dnsperf run -----------------------------------------------------------
# run ROUND SERVER CLASS PROTO KIND [RATE]; KIND is max (-c/-q flat out) or
# lat (fixed rate, per-query latencies from -v for the percentiles)
run() {
    local round=$1 server=$2 class=$3 proto=$4 kind=$5 rate=${6:-0}
    local pid port
    if [[ $server == keiko ]]; then pid=$KEIKO_PID port=$KEIKO_PORT; else pid=$GDNSD_PID port=$GDNSD_PORT; fi
    local args=(-B -d "$TMP/queries/$class.bin" -s "$HOST" -p "$port" -m "$proto"
        -l "$SECONDS_PER_RUN" -t 2 -c "$CLIENTS" -q "$OUTSTANDING")
    local tag="$OUT/run-$round-$server-$class-$proto-$kind"
    local u0 s0 u1 s1
    read -r u0 s0 < <(cpu_ticks "$pid")
    if [[ $kind == lat ]]; then
        "${CLIENT_PIN[@]}" dnsperf "${args[@]}" -Q "$rate" -v 2>"$tag.err" |
            awk '/^> / { print $NF * 1000 > "'"$tag.lat"'"; next } { print }' >"$tag.out"
    else
        "${CLIENT_PIN[@]}" dnsperf "${args[@]}" >"$tag.out" 2>"$tag.err"
    fi
    read -r u1 s1 < <(cpu_ticks "$pid")
    local rss
    rss=$(rss_kb "$pid")
    "$PY" - "$tag" "$round" "$server" "$class" "$proto" "$kind" "$rate" $((u1 - u0)) $((s1 - s0)) "$CLK_TCK" "$rss" >>"$RESULTS" <<'EOF'
import re, sys
tag, rnd, server, cls, proto, kind, rate, du, ds, tck, rss = sys.argv[1:12]
text = open(tag + ".out").read()
def num(pat, default="0"):
    m = re.search(pat, text)
    return m.group(1) if m else default
sent = int(num(r"Queries sent:\s+(\d+)"))
done = int(num(r"Queries completed:\s+(\d+)"))
lost = int(num(r"Queries lost:\s+(\d+)"))
qps = float(num(r"Queries per second:\s+([\d.]+)"))
avg = float(num(r"Average Latency \(s\):\s+([\d.]+)")) * 1000
sd = float(num(r"Latency StdDev \(s\):\s+([\d.]+)")) * 1000
resp = int(num(r"Average packet size:.*response (\d+)"))
p50 = p99 = float("nan")
if kind == "lat":
    try:
        lat = sorted(float(x) for x in open(tag + ".lat"))
        if lat:
            p50 = lat[int(0.50 * (len(lat) - 1))]
            p99 = lat[int(0.99 * (len(lat) - 1))]
    except FileNotFoundError:
        pass
per = lambda ticks: int(ticks) / int(tck) * 1e6 / done if done else float("nan")
print("\t".join(str(x) for x in (rnd, server, cls, proto, kind, rate, f"{qps:.0f}", sent, done, lost,
      f"{avg:.4f}", f"{sd:.4f}", f"{p50:.4f}", f"{p99:.4f}", f"{per(du):.3f}", f"{per(ds):.3f}", rss, resp)))
EOF
    rm -f "$tag.lat"
    tail -n1 "$RESULTS" | awk -F'\t' '{ printf "  %-6s %-8s %-4s %-3s %7s qps  lost %-6s avg %s ms  p99 %s ms  user %s us/q  sys %s us/q\n", $2, $3, $4, $5, $7, $10, $11, $14, $15, $16 }' >&2
}

max_qps_of() { # round server class proto
    awk -F'\t' -v r="$1" -v s="$2" -v c="$3" -v p="$4" '$1 == r && $2 == s && $3 == c && $4 == p && $5 == "max" { print $7 }' "$RESULTS" | tail -n1
}

# --- rounds ------------------------------------------------------------------------
# Interleaved: within a round each measurement runs on both servers back to
# back, and the order alternates between rounds.
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order=(keiko gdnsd); else order=(gdnsd keiko); fi
    log "round $round/$ROUNDS (${order[*]})"
    for class in $CLASSES; do
        for s in "${order[@]}"; do run "$round" "$s" "$class" udp max; done
        rate=$LATENCY_QPS
        if [[ -z $rate ]]; then
            g=$(max_qps_of "$round" gdnsd "$class" udp)
            g=${g:-2000}
            rate=$(((${g%.*} * LATENCY_PCT / 100) / 1000 * 1000))
            ((rate >= 1000)) || rate=1000
        fi
        for s in "${order[@]}"; do run "$round" "$s" "$class" udp lat "$rate"; done
    done
    for class in $TCP_CLASSES; do
        for s in "${order[@]}"; do run "$round" "$s" "$class" tcp max; done
    done
done

# --- instructions per query (failover, fixed rate) ---------------------------------------
# Instructions per query count user-space work exactly, unlike the tick-
# sampled CPU times above: the sharpest measure of what the servers' own
# code costs per query. One process per server, every class in turn.
profile_server() { # server -> lines of profile.tsv
    local s=$1 pid port c n=0 f done_q ins cyc
    if [[ $s == keiko ]]; then port=$KEIKO_PORT; else port=$GDNSD_PORT; fi
    if [[ $PROFILE_TOOL == perf ]]; then
        if [[ $s == keiko ]]; then pid=$KEIKO_PID; else pid=$GDNSD_PID; fi
    else
        local vg=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.$s.%p")
        if [[ $s == keiko ]]; then start_keiko "${vg[@]}"; pid=$KEIKO_PID
        else start_gdnsd "${vg[@]}"; pid=$GDNSD_PID; fi
        wait_dns "$port" "$s"
    fi
    for c in $PROFILE_CLASSES; do
        # warm up (health round, first queries), then count only the run
        dnsperf -B -d "$TMP/queries/$c.bin" -s "$HOST" -p "$port" -l 1 -Q 500 >/dev/null 2>&1 || true
        if [[ $PROFILE_TOOL == perf ]]; then
            perf stat -x, -e instructions:u,cycles:u -p "$pid" -o "$OUT/perf-$s-$c.csv" -- sleep $((PROFILE_SECONDS + 1)) &
            local ppid=$!
            dnsperf -B -d "$TMP/queries/$c.bin" -s "$HOST" -p "$port" -l "$PROFILE_SECONDS" -Q "$PROFILE_QPS" >"$OUT/profile-$s-$c.out" 2>&1
            wait "$ppid" || true
            ins=$(awk -F, '/instructions/ { print $1 }' "$OUT/perf-$s-$c.csv")
            cyc=$(awk -F, '/cycles/ { print $1 }' "$OUT/perf-$s-$c.csv")
            method="perf stat (user instructions, whole process)"
        else
            callgrind_control -i on "$pid" >/dev/null 2>&1
            callgrind_control -z "$pid" >/dev/null 2>&1
            dnsperf -B -d "$TMP/queries/$c.bin" -s "$HOST" -p "$port" -l "$PROFILE_SECONDS" -Q "$PROFILE_QPS" >"$OUT/profile-$s-$c.out" 2>&1
            callgrind_control -d "$pid" >/dev/null 2>&1
            callgrind_control -i off "$pid" >/dev/null 2>&1
            n=$((n + 1))
            # dump number n (callgrind.SERVER.PID.n) holds this class's run
            f=$(ls "$OUT"/callgrind."$s".*."$n" 2>/dev/null | head -n1)
            ins=$(awk '/^totals:/ { print $2 }' "$f" 2>/dev/null)
            cyc=""
            method="valgrind callgrind (user instructions, all threads)"
            callgrind_annotate --inclusive=no "$f" 2>/dev/null | head -n 60 >"$OUT/callgrind-$s-$c-top.txt" || true
            callgrind_annotate --inclusive=yes "$f" 2>/dev/null | head -n 60 >"$OUT/callgrind-$s-$c-inclusive.txt" || true
        fi
        done_q=$(awk '/Queries completed:/ { print $3 }' "$OUT/profile-$s-$c.out")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$c" "$method" "$done_q" "${ins:-}" "${cyc:-}" >>"$PROF"
    done
    if [[ $PROFILE_TOOL == callgrind ]]; then sleep 0.5; stop_pid "$pid"; fi
}

PROF="$OUT/profile.tsv"
: >"$PROF"
PROFILE_TOOL=""
if [[ $PROFILE != 0 ]]; then
    if perf stat -x, -e instructions true 2>&1 >/dev/null | grep -q '^[0-9]'; then
        PROFILE_TOOL=perf
    elif command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
        PROFILE_TOOL=callgrind
        stop_pid "$KEIKO_PID"; stop_pid "$GDNSD_PID"
    else
        log "no perf counters and no valgrind: skipping instructions per query"
    fi
fi
if [[ -n $PROFILE_TOOL ]]; then
    log "instructions per query with $PROFILE_TOOL ($PROFILE_CLASSES; $PROFILE_QPS qps, $PROFILE_SECONDS s each)"
    for s in keiko gdnsd; do profile_server "$s"; done
fi

# --- report --------------------------------------------------------------------------
{
    echo "machine: $(nproc) cores, $(uname -r), load average before report: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "keiko: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)'); gdnsd: $("$GDNSD" -c /nonexistent checkconf 2>&1 | grep -o 'gdnsd version [^ ]*' | head -n1 | cut -d' ' -f3); dnsperf: $(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')"
    echo "rounds: $ROUNDS, seconds per run: $SECONDS_PER_RUN, dnsperf -c $CLIENTS -q $OUTSTANDING, latency runs at ${LATENCY_QPS:-$LATENCY_PCT% of gdnsd max} qps, gdnsd udp_threads $UDP_THREADS, $( ((PIN)) && echo "servers pinned to CPU $last, dnsperf to the others" || echo "no CPU pinning")"
} >"$OUT/meta.txt"
"$PY" "$HERE/report.py" "$OUT" >"$REPORT"
cat "$REPORT"
log "report: $REPORT; raw results and logs: $OUT"
