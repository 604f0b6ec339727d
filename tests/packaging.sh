#!/usr/bin/env bash
# Black-box tests of packaging/ (run by tests/run.sh, as root):
#   1. the scripts are shellcheck-clean; generated manifest files are current;
#   2. the PrometheusRule and the dashboard ConfigMap are the monitoring/ files;
#   3. every overlay renders (kubectl kustomize), every object validates
#      strictly (tests/packaging/validate.py), checkov fails no check;
#   4. setup-multi-region.sh --dry-run prints the right commands;
#   5. the image builds (packaging/container/build.sh) and, unpacked, runs
#      read-only as its own user in a private network namespace: --help,
#      check, serve on port 53 answering dig;
#   6. each pod's config from the rendered ConfigMap passes `keiko-dns check`
#      inside the image, laid out as the pod mounts it, with fixture certs.
# Needs root (unshare, chroot), podman, kubectl, shellcheck, dig, promtool
# and python3 with pip (kubernetes-validate and checkov are installed into
# target/packaging-venv). KEIKO_STATIC_BIN: a static binary built already.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
K=packaging/kubernetes
K8S_VERSION=1.37.0
IMAGE=localhost/keiko-dns:test
PODMAN=(podman --storage-driver vfs)
WORK=$(mktemp -d /tmp/keiko-packaging.XXXXXX)
CID=
cleanup() {
  [ -z "$CID" ] || "${PODMAN[@]}" rm -f "$CID" >/dev/null 2>&1 || true
  "${PODMAN[@]}" rmi -f "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "tests/packaging.sh: FAIL: $*" >&2; exit 1; }
step() { printf 'packaging: %s\n' "$*"; }
t0=$SECONDS

[ "$(id -u)" -eq 0 ] || fail "must run as root (unshare and chroot for the image smoke test)"
for t in podman kubectl shellcheck dig promtool python3 unshare chroot readelf; do
  command -v "$t" >/dev/null || fail "$t is not installed"
done

VENV=$ROOT/target/packaging-venv
if ! "$VENV/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null ||
  [ ! -x "$VENV/bin/checkov" ]; then
  step "installing kubernetes-validate and checkov into target/packaging-venv"
  python3 -m venv "$VENV" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q kubernetes-validate checkov >"$WORK/pip.log" 2>&1 ||
    { tail -5 "$WORK/pip.log" >&2; fail "pip install kubernetes-validate checkov failed"; }
fi

# 1.
shellcheck packaging/container/*.sh $K/*.sh tests/packaging.sh
$K/generate.sh --check || fail "generated files are stale"

# 2. The monitoring files, unchanged, in what the manifests ship.
"$VENV/bin/python" - "$K" <<'PY' || fail "PrometheusRule or dashboard ConfigMap differs from monitoring/"
import subprocess, sys, yaml
k = sys.argv[1]
rules = yaml.safe_load(open("monitoring/prometheus/keiko-dns-rules.yml"))
dash = open("monitoring/grafana/keiko-dns.json").read()
for region in ["us-east-1", "eu-west-1", "ap-southeast-1"]:
    docs = list(yaml.safe_load_all(subprocess.check_output(["kubectl", "kustomize", f"{k}/overlays/{region}"])))
    pr = [d for d in docs if d["kind"] == "PrometheusRule"]
    cm = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "keiko-dns-dashboard"]
    assert len(pr) == 1 and pr[0]["spec"] == rules, f"{region}: PrometheusRule spec is not keiko-dns-rules.yml"
    assert len(cm) == 1 and cm[0]["data"] == {"keiko-dns.json": dash}, f"{region}: dashboard is not keiko-dns.json"
    yaml.safe_dump(pr[0]["spec"], open(f"/tmp/keiko-packaging-rules-{region}.yml", "w"))
PY
for r in us-east-1 eu-west-1 ap-southeast-1; do
  promtool check rules "/tmp/keiko-packaging-rules-$r.yml" >/dev/null || fail "$r: promtool rejects the PrometheusRule's rules"
  rm -f "/tmp/keiko-packaging-rules-$r.yml"
done

# 3.
mkdir -p "$WORK/rendered"
for r in us-east-1 eu-west-1 ap-southeast-1; do
  kubectl kustomize "$K/overlays/$r" >"$WORK/rendered/$r.yaml" || fail "overlay $r does not render"
done
"$VENV/bin/python" tests/packaging/validate.py "$K8S_VERSION" "$WORK"/rendered/*.yaml
# checkov in a network namespace of its own: it must not reach out.
BC_SKIP_MAPPING=TRUE unshare -n "$VENV/bin/checkov" -d "$WORK/rendered" --framework kubernetes \
  --quiet --compact --skip-download >"$WORK/checkov.txt" 2>&1 || { cat "$WORK/checkov.txt" >&2; fail "checkov reports failed checks"; }
grep -q 'Failed checks: 0' "$WORK/checkov.txt" || { cat "$WORK/checkov.txt" >&2; fail "checkov did not report 0 failed checks"; }
step "checkov: $(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$WORK/checkov.txt")"

# 4.
S=$K/setup-multi-region.sh
expect() { # description, pattern, output
  grep -qE -- "$2" <<<"$3" || { printf '%s\n' "$3" >&2; fail "setup-multi-region.sh $1: no line matching $2"; }
}
out=$($S deploy --dry-run)
for r in us-east-1 eu-west-1 ap-southeast-1; do
  expect deploy "^\+ kubectl --context keiko-prod-$r apply -k .*/overlays/$r\$" "$out"
  expect deploy "^\+ kubectl --context keiko-prod-$r --namespace keiko rollout status statefulset/keiko-dns" "$out"
done
out=$($S status --dry-run)
expect status '^\+ kubectl --context keiko-prod-us-east-1 --namespace keiko exec keiko-dns-0 -c keiko-dns -- keiko-dns status$' "$out"
out=$($S failover --region us-east-1 --dry-run)
expect failover '^\+ kubectl --context keiko-prod-eu-west-1 .* keiko-dns failover --region us-east-1$' "$out"
out=$($S failover --region eu-west-1 --restore --via ap-southeast-1 --dry-run)
expect "failover --restore" '^\+ kubectl --context keiko-prod-ap-southeast-1 .* keiko-dns failover --region eu-west-1 --restore$' "$out"
out=$($S test --dry-run)
[ "$(grep -c ' keiko-dns test --config /etc/keiko-dns/config/keiko-dns-[01].toml$' <<<"$out")" = 6 ] ||
  { printf '%s\n' "$out" >&2; fail "setup-multi-region.sh test: not one test per pod of every region"; }
if $S failover --dry-run >/dev/null 2>&1; then fail "failover without --region was accepted"; fi
if $S failover --region mars-1 --dry-run >/dev/null 2>&1; then fail "an unknown region was accepted"; fi

# 5. The image.
start=$SECONDS
IMAGE=$IMAGE packaging/container/build.sh | sed 's/^/packaging: /'
step "image built in $((SECONDS - start)) s"
if "${PODMAN[@]}" run --rm --read-only "$IMAGE" --help >/dev/null 2>"$WORK/run.err"; then
  step "podman run works here"
else
  step "podman run fails here ($(grep -m1 -o 'setrlimit[^"]*\|cgroup[^"]*\|Error[^"]*' "$WORK/run.err" | head -c 100)); smoke-testing the unpacked image under chroot"
fi
CID=$("${PODMAN[@]}" create "$IMAGE")
RFS=$WORK/rootfs
mkdir -p "$RFS"
"${PODMAN[@]}" export "$CID" | tar -x -C "$RFS"
[ "$(stat -c %u:%g "$RFS/var/lib/keiko-dns")" = 65532:65532 ] || fail "state dir is not owned by the image's user"
cmd=$("${PODMAN[@]}" image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.User}}' "$IMAGE")
[ "$cmd" = '["/usr/bin/keiko-dns"] ["serve","--config","/etc/keiko-dns/keiko.toml"] 65532:65532' ] ||
  fail "entrypoint/cmd/user are $cmd"

# What an OCI runtime provides: /proc and the basic device nodes (the
# static binary reads /dev/urandom for random numbers). Run under
# `unshare --mount`: rt.sh ROOT COMMAND...
cat >"$WORK/rt.sh" <<'RT'
set -euo pipefail
R=$1
shift
mount -t proc proc "$R/proc"
mount -t tmpfs -o mode=0755 tmpfs "$R/dev"
for d in null zero random urandom; do
  touch "$R/dev/$d"
  mount --bind "/dev/$d" "$R/dev/$d"
done
exec "$@"
RT

# Inside: a private mount and network namespace; the image's root bind-
# mounted read-only, a tmpfs for the state volume, port 53 open to
# unprivileged processes (as the pods' sysctl does), the entrypoint run as
# 65532 with the image's default command.
cat >"$WORK/inside.sh" <<'INSIDE'
set -euo pipefail
R=$1
ip link set lo up
sysctl -q -w net.ipv4.ip_unprivileged_port_start=53
mount --rbind "$R" "$R"
mount -o remount,bind,ro "$R"
mount -t tmpfs -o uid=65532,gid=65532,mode=0700 tmpfs "$R/var/lib/keiko-dns"
as_user() { chroot --userspec=65532:65532 "$R" /usr/bin/keiko-dns "$@"; }
as_user --help | grep -q 'check' || { echo "--help does not list check"; exit 1; }
as_user check --config /etc/keiko-dns/keiko.toml >/tmp/check.out 2>&1 || { cat /tmp/check.out; exit 1; }
if touch "$R/usr/bin/x" 2>/dev/null; then echo "the root is writable"; exit 1; fi
chroot --userspec=65532:65532 "$R" /usr/bin/keiko-dns serve --config /etc/keiko-dns/keiko.toml >/tmp/serve.log 2>&1 &
pid=$!
ok=0
for _ in $(seq 50); do
  a=$(dig @127.0.0.1 -p 53 +short +tries=1 +time=1 api-contracts-eu-west.keiko.example.com A 2>/dev/null || true)
  [ "$a" = 198.51.100.10 ] && { ok=1; break; }
  sleep 0.2
done
tcp=$(dig @127.0.0.1 -p 53 +tcp +short +time=2 keiko.example.com NS 2>/dev/null | sort | tr '\n' ' ')
user=$(ps -o user= -p "$pid" 2>/dev/null || true)
kill -TERM "$pid"; wait "$pid" || true
[ "$ok" = 1 ] || { echo "no answer from the image on 127.0.0.1:53"; tail -5 /tmp/serve.log; exit 1; }
[ "$tcp" = "ns1.keiko.example.com. ns2.keiko.example.com. ns3.keiko.example.com. " ] || { echo "TCP NS answer: $tcp"; exit 1; }
echo "serve answered on UDP and TCP 53 as uid ${user:-?}, root read-only"
INSIDE
unshare --mount --net --fork bash "$WORK/rt.sh" "$RFS" bash "$WORK/inside.sh" "$RFS" 2>&1 | sed 's/^/packaging: image: /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "the image smoke test failed"

# 6. Each pod's config, as the pod sees it: ConfigMap at
# /etc/keiko-dns/config, fleet Secret at /etc/keiko-dns/fleet (certificates
# from `keiko-dns fleet certs` of the image itself), the GeoIP fixture as
# /var/lib/GeoIP/GeoLite2-Country.mmdb, the token in the environment.
mkdir -p "$RFS/etc/keiko-dns/config" "$RFS/etc/keiko-dns/fleet" "$RFS/var/lib/GeoIP" "$RFS/tmp/certs"
cp geoip-fixtures/keiko-regions.mmdb "$RFS/var/lib/GeoIP/GeoLite2-Country.mmdb"
names=(ns1-0.us-east-1 ns1-1.us-east-1 ns2-0.eu-west-1 ns2-1.eu-west-1 ns3-0.ap-southeast-1 ns3-1.ap-southeast-1)
in_image() { unshare --mount --fork bash "$WORK/rt.sh" "$RFS" chroot "$RFS" /usr/bin/keiko-dns "$@"; }
in_image fleet certs --out /tmp/certs "${names[@]}" >/dev/null
checked=0
for r in us-east-1 eu-west-1 ap-southeast-1; do
  rm -f "$RFS"/etc/keiko-dns/config/*
  "$VENV/bin/python" - "$WORK/rendered/$r.yaml" "$RFS/etc/keiko-dns/config" <<'PY'
import sys, yaml
cms = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("keiko-dns-config")]
assert len(cms) == 1, "one keiko-dns-config ConfigMap"
assert sorted(cms[0]["data"]) == ["keiko-dns-0.toml", "keiko-dns-1.toml", "keiko.example.com.zone"], sorted(cms[0]["data"])
for name, text in cms[0]["data"].items():
    open(f"{sys.argv[2]}/{name}", "w").write(text)
PY
  for p in 0 1; do
    inst=$(grep -m1 '^instance' "$RFS/etc/keiko-dns/config/keiko-dns-$p.toml" | cut -d'"' -f2)
    cp "$RFS/tmp/certs/ca.pem" "$RFS/etc/keiko-dns/fleet/ca.crt"
    cp "$RFS/tmp/certs/$inst.pem" "$RFS/etc/keiko-dns/fleet/tls.crt"
    cp "$RFS/tmp/certs/$inst.key" "$RFS/etc/keiko-dns/fleet/tls.key"
    KEIKO_ADMIN_TOKEN=packaging-test-token in_image check \
      --config "/etc/keiko-dns/config/keiko-dns-$p.toml" >"$WORK/check.out" 2>&1 ||
      { cat "$WORK/check.out" >&2; fail "$r keiko-dns-$p: the rendered config fails keiko-dns check"; }
    checked=$((checked + 1))
  done
done
step "keiko-dns check passed for the $checked pod configs of the rendered ConfigMaps"
step "all packaging tests passed in $((SECONDS - t0)) s"
