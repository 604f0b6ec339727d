#!/usr/bin/env python3
"""The lab's router: a userspace forwarder that adds round-trip times.

The lab kernel has no netem, so this process stands in for it. It runs in
the `keiko-router` namespace, opens a TUN device and routes every packet
that arrives on one of the router's veth ends into it (policy routing:
packets that come *from* the TUN device use the main table, every other
forwarded packet goes *to* it). Each packet read from the TUN device is
held for the one-way delay of its link (half the link's round-trip time)
and written back, and the kernel then forwards it out of the right veth.

Sites are known by the third octet of their 10.53.N.0/24 network (see
SITES). A link can be cut: the control file (--cuts) holds one site name
per line (all of that site's links are cut: it reaches only itself) or
two names on a line (that one link is cut, both ways). The file is
re-read whenever it changes; packets on a cut link are dropped.

Only IPv4 packets between the lab's own networks are forwarded; anything
else is dropped, so nothing leaves the lab.
"""

import argparse
import fcntl
import heapq
import json
import os
import select
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

# site name -> third octet of its 10.53.N.0/24 network
SITES = {
    "us-east-1": 1,
    "eu-west-1": 2,
    "ap-southeast-1": 3,
    "client": 10,
    "parent": 20,
}

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1")
# The resolver's address: only its queries count in the ECS statistics (the
# drills' own +norec samples come from another address of the client site).
RESOLVER = bytes([10, 53, 10, 53])

# Round-trip times in milliseconds. Region to region as given by the
# issue; the client (a resolver in North America, near us-east-1) and the
# parent zone's server (an anycast TLD server near the client) are our pick.
RTT_MS = {
    ("us-east-1", "eu-west-1"): 80,
    ("us-east-1", "ap-southeast-1"): 220,
    ("eu-west-1", "ap-southeast-1"): 160,
    ("client", "us-east-1"): 20,
    ("client", "eu-west-1"): 90,
    ("client", "ap-southeast-1"): 230,
    ("client", "parent"): 10,
}


def rtt_ms(a, b):
    """The round-trip time of the link between sites a and b."""
    return RTT_MS.get((a, b), RTT_MS.get((b, a)))


def skip_name(msg, i):
    while i < len(msg):
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n
    raise ValueError("name runs past the end")


def has_ecs(pkt):
    """Whether an IPv4 packet is a UDP DNS query to port 53 carrying ECS."""
    ihl = (pkt[0] & 0x0F) * 4
    if pkt[9] != 17 or len(pkt) < ihl + 8 + 12:
        return None
    if struct.unpack(">H", pkt[ihl + 2:ihl + 4])[0] != 53:
        return None
    msg = pkt[ihl + 8:]
    try:
        qd, an, ns, ar = struct.unpack(">HHHH", msg[4:12])
        i = 12
        for _ in range(qd):
            i = skip_name(msg, i) + 4
        for _ in range(an + ns + ar):
            i = skip_name(msg, i)
            rtype, _, _, rdlen = struct.unpack(">HHIH", msg[i:i + 10])
            i += 10
            if rtype == 41:
                j, end = i, i + rdlen
                while j + 4 <= end:
                    code, olen = struct.unpack(">HH", msg[j:j + 4])
                    if code == 8:
                        return True
                    j += 4 + olen
            i += rdlen
    except (ValueError, struct.error, IndexError):
        return False
    return False


def sh(*cmd):
    subprocess.run(cmd, check=True)


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def route_through(tun, veths):
    """Send every forwarded packet through the TUN device, once."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")
    sh("ip", "link", "set", tun, "up")
    for key in ("all", "default", tun, *veths):
        with open(f"/proc/sys/net/ipv4/conf/{key}/rp_filter", "w") as f:
            f.write("0")
        with open(f"/proc/sys/net/ipv4/conf/{key}/send_redirects", "w") as f:
            f.write("0")
    sh("ip", "route", "add", "default", "dev", tun, "table", "200")
    sh("ip", "rule", "add", "iif", tun, "lookup", "main", "pref", "100")
    sh("ip", "rule", "add", "lookup", "200", "pref", "200")


class Cuts:
    def __init__(self, path):
        self.path = path
        self.stamp = None
        self.sites = set()
        self.links = set()

    def refresh(self):
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            stamp = 0
        if stamp == self.stamp:
            return
        self.stamp = stamp
        sites, links = set(), set()
        if stamp:
            with open(self.path) as f:
                for line in f:
                    words = line.split("#")[0].split()
                    if len(words) == 1:
                        sites.add(words[0])
                    elif len(words) == 2:
                        links.add(frozenset(words))
        self.sites, self.links = sites, links
        print(f"delay_router: cuts now sites={sorted(sites)} links={sorted(map(sorted, links))}",
              flush=True)

    def cut(self, a, b):
        return a in self.sites or b in self.sites or frozenset((a, b)) in self.links


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tun", default="tun0")
    ap.add_argument("--cuts", required=True, help="control file of cut sites/links")
    ap.add_argument("--veth", action="append", default=[], help="router-side veth (rp_filter off)")
    ap.add_argument("--stats", help="file to write counters to (JSON, every second)")
    args = ap.parse_args()

    by_octet = {n: s for s, n in SITES.items()}
    delay = {}
    for a in SITES:
        for b in SITES:
            if a != b and rtt_ms(a, b) is not None:
                delay[(a, b)] = rtt_ms(a, b) / 2000.0

    fd = open_tun(args.tun)
    route_through(args.tun, args.veth)
    cuts = Cuts(args.cuts)
    cuts.refresh()
    print("delay_router: one-way delays (ms): " + ", ".join(
        f"{a}<->{b} {rtt_ms(a, b) / 2:g}" for (a, b) in RTT_MS), flush=True)
    print("delay_router: ready", flush=True)

    held = []  # (release time, sequence, packet)
    seq = 0
    stats = {"forwarded": 0, "dropped": 0, "dns_queries_to_regions": 0, "with_ecs": 0}
    last_check = last_stats = 0.0
    while True:
        now = time.monotonic()
        timeout = 0.05
        if held:
            timeout = max(0.0, min(timeout, held[0][0] - now))
        readable, _, _ = select.select([fd], [], [], timeout)
        now = time.monotonic()
        if now - last_check > 0.05:
            cuts.refresh()
            last_check = now
        if args.stats and now - last_stats > 1.0:
            with open(args.stats + ".tmp", "w") as f:
                json.dump(stats, f)
            os.replace(args.stats + ".tmp", args.stats)
            last_stats = now
        if readable:
            for _ in range(256):
                try:
                    pkt = os.read(fd, 65535)
                except BlockingIOError:
                    break
                if len(pkt) < 20 or pkt[0] >> 4 != 4:
                    stats["dropped"] += 1
                    continue
                src, dst = pkt[12:16], pkt[16:20]
                if src[:2] != b"\x0a\x35" or dst[:2] != b"\x0a\x35":
                    stats["dropped"] += 1  # not between the lab's 10.53.0.0/16 networks
                    continue
                a, b = by_octet.get(src[2]), by_octet.get(dst[2])
                d = delay.get((a, b))
                if d is None or cuts.cut(a, b):
                    stats["dropped"] += 1
                    continue
                if src == RESOLVER and b in REGIONS:
                    ecs = has_ecs(pkt)
                    if ecs is not None:
                        stats["dns_queries_to_regions"] += 1
                        stats["with_ecs"] += int(ecs)
                seq += 1
                heapq.heappush(held, (now + d, seq, pkt))
        while held and held[0][0] <= now:
            _, _, pkt = heapq.heappop(held)
            try:
                os.write(fd, pkt)
                stats["forwarded"] += 1
            except OSError as e:
                stats["dropped"] += 1
                print(f"delay_router: write failed: {e}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
