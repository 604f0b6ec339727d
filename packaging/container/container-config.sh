#!/usr/bin/env bash
# The image's default config, derived from zones/keiko.toml (stdin) so the
# two cannot drift: everything but where it listens, keeps state and finds
# the GeoIP fixture is the repository default, including its health probes
# of the loopback stand-ins (127.0.0.1:18081-18083), which never leave the
# container. A real deployment mounts its own config over this one (the
# Kubernetes manifests do).
#
#   packaging/container/container-config.sh <zones/keiko.toml >keiko.toml
set -euo pipefail
awk '
  BEGIN { n = 0 }
  /^dns_listen[ ]*=/   { print "dns_listen   = [\"0.0.0.0:53\"]                # the container'"'"'s addresses; add \"[::]:53\" where it has IPv6"; n++; next }
  /^admin_listen[ ]*=/ { print "admin_listen = \"127.0.0.1:9300\"              # `podman exec NAME keiko-dns status`; to expose it, set admin_token (KEIKO_ADMIN_TOKEN)"; n++; next }
  /^state_dir[ ]*=/    { print "state_dir    = \"/var/lib/keiko-dns\"          # a volume: the root file system is read-only"; n++; next }
  /^database[ ]*=/     { print "database = \"/usr/share/keiko-dns/keiko-regions.mmdb\"   # the fixture; mount GeoLite2-Country for real clients"; n++; next }
  NR == 1 { print "# keiko-dns container default, generated from zones/keiko.toml by"; print "# packaging/container/container-config.sh."; print "" }
  { print }
  END { if (n != 4) { print "container-config.sh: expected dns_listen, admin_listen, state_dir and database in the input, replaced " n > "/dev/stderr"; exit 1 } }
'
