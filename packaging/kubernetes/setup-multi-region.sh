#!/usr/bin/env bash
# keiko-dns in three regions: deploy, status, failover drill, health test.
#
#   setup-multi-region.sh deploy                      apply every overlay, wait for the rollouts
#   setup-multi-region.sh status [--region R]         the fleet status, from R or the first region that answers
#   setup-multi-region.sh failover --region R [--restore] [--via V]
#                                                     the drill: force R down fleet-wide (run from V,
#                                                     default the first other region), or back to automatic
#   setup-multi-region.sh test                        `keiko-dns test` in every pod of every region
#   ... --dry-run                                     print every command instead of running it
#
# Contexts keiko-prod-<region> (KEIKO_CONTEXT_PREFIX), namespace keiko
# (KEIKO_NAMESPACE). Before the first deploy, each cluster needs the
# Secrets keiko-dns-admin (key token: the same admin token everywhere),
# keiko-dns-geoip (account-id, license-key) and keiko-fleet-ca (the fleet
# CA for cert-manager): see packaging/kubernetes/README.md. With
# KEIKO_ADMIN_TOKEN set, deploy creates or updates keiko-dns-admin.
#
# Exit: 0 done, 1 a command failed, 2 usage.
set -euo pipefail

REGIONS=(us-east-1 eu-west-1 ap-southeast-1)
PREFIX=${KEIKO_CONTEXT_PREFIX:-keiko-prod-}
NS=${KEIKO_NAMESPACE:-keiko}
HERE=$(cd "$(dirname "$0")" && pwd)
PODS=(keiko-dns-0 keiko-dns-1)

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

DRY=0
REGION=
VIA=
RESTORE=0
CMD=${1:-}
[ -n "$CMD" ] || usage
shift
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --region) [ $# -ge 2 ] || usage; REGION=$2; shift ;;
    --via) [ $# -ge 2 ] || usage; VIA=$2; shift ;;
    --restore) RESTORE=1 ;;
    -h | --help) usage ;;
    *) echo "setup-multi-region.sh: unknown argument $1" >&2; usage ;;
  esac
  shift
done

known() {
  local r
  for r in "${REGIONS[@]}"; do [ "$r" = "$1" ] && return 0; done
  echo "setup-multi-region.sh: unknown region $1 (one of ${REGIONS[*]})" >&2
  exit 2
}
[ -z "$REGION" ] || known "$REGION"
[ -z "$VIA" ] || known "$VIA"

# Prints the command; runs it unless --dry-run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  [ "$DRY" = 1 ] || "$@"
}

kc() { # region, kubectl arguments...
  local region=$1
  shift
  run kubectl --context "$PREFIX$region" --namespace "$NS" "$@"
}

# keiko-dns CLI inside a region's pod, against that pod's admin API on
# loopback; the container's environment carries KEIKO_ADMIN_TOKEN.
keiko() { # region, pod, keiko-dns arguments...
  local region=$1 pod=$2
  shift 2
  kc "$region" exec "$pod" -c keiko-dns -- keiko-dns "$@"
}

deploy() {
  local r
  for r in "${REGIONS[@]}"; do
    if [ -n "${KEIKO_ADMIN_TOKEN:-}" ]; then
      run kubectl --context "$PREFIX$r" apply -f "$HERE/base/namespace.yaml"
      # The token goes through stdin, never onto a command line.
      if [ "$DRY" = 1 ]; then
        echo "+ kubectl --context $PREFIX$r --namespace $NS apply -f - <<< (Secret keiko-dns-admin from \$KEIKO_ADMIN_TOKEN)"
      else
        kubectl --context "$PREFIX$r" --namespace "$NS" create secret generic keiko-dns-admin \
          --from-file=token=/dev/stdin --dry-run=client -o yaml <<<"$KEIKO_ADMIN_TOKEN" |
          kubectl --context "$PREFIX$r" --namespace "$NS" apply -f -
      fi
    fi
    run kubectl --context "$PREFIX$r" apply -k "$HERE/overlays/$r"
  done
  # All three apply first, then wait: the regions roll out in parallel.
  for r in "${REGIONS[@]}"; do
    kc "$r" rollout status statefulset/keiko-dns --timeout=10m
  done
  for r in "${REGIONS[@]}"; do
    kc "$r" wait --for=condition=Ready pod --selector app.kubernetes.io/name=keiko-dns,app.kubernetes.io/component=dns --timeout=5m
  done
}

status() {
  local r
  for r in ${REGION:-"${REGIONS[@]}"}; do
    if keiko "$r" keiko-dns-0 status; then
      return 0
    fi
    echo "setup-multi-region.sh: no status from $r; trying the next region" >&2
  done
  [ "$DRY" = 1 ] || { echo "setup-multi-region.sh: no region answered" >&2; return 1; }
}

failover() {
  [ -n "$REGION" ] || { echo "setup-multi-region.sh: failover needs --region R" >&2; exit 2; }
  local via=$VIA r
  if [ -z "$via" ]; then
    for r in "${REGIONS[@]}"; do
      [ "$r" != "$REGION" ] && { via=$r; break; }
    done
  fi
  # One instance takes the command; the fleet applies it on every
  # reachable instance within 2 s (the output says on how many).
  if [ "$RESTORE" = 1 ]; then
    keiko "$via" keiko-dns-0 failover --region "$REGION" --restore
  else
    keiko "$via" keiko-dns-0 failover --region "$REGION"
  fi
}

test_all() {
  local r p failed=0
  for r in "${REGIONS[@]}"; do
    for p in "${PODS[@]}"; do
      keiko "$r" "$p" test --config "/etc/keiko-dns/config/$p.toml" || failed=1
    done
  done
  return $failed
}

case $CMD in
  deploy) deploy ;;
  status) status ;;
  failover) failover ;;
  test) test_all ;;
  -h | --help) usage ;;
  *) echo "setup-multi-region.sh: unknown command $CMD" >&2; usage ;;
esac
