#!/usr/bin/env python3
"""Writes the dnsperf query files of benches/dnsperf.sh.

Every class is written in dnsperf's binary input format (`dnsperf -B`: each
query is a 2-byte length and the raw message, RFC 1035 4.2.2), because
dnsperf's text format cannot give different queries different EDNS Client
Subnet options; `-E` sets one fixed option for a whole run. Every query
carries an EDNS0 OPT record (UDP payload 1232, as resolvers send today);
the geo class and part of the mix add ECS (option 8). RD is clear, as
resolvers send to authoritative servers. dnsperf rewrites the IDs.

Next to each NAME.bin goes NAME.txt, the same queries readable (one
`name type [ecs]` a line), for humans and for the answer check.

usage: queries.py OUTDIR [ORIGIN]
"""

import ipaddress
import random
import struct
import sys

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "CAA": 257}

# ECS sources for the geo class: (network, country) from geoip-fixtures
# (keiko-regions.csv), v4 and v6, several continents.
ECS = [
    ("216.160.83.0/24", "US"),
    ("81.2.69.0/24", "GB"),
    ("202.196.224.0/24", "PH"),
    ("127.0.7.0/24", "JP"),
    ("127.0.5.0/24", "BR"),
    ("127.0.4.0/24", "AU"),
    ("127.0.6.0/24", "ZA"),
    ("127.0.8.0/24", "DE"),
    ("2001:218::/48", "JP"),
    ("2a02:d280::/48", "CZ"),
    ("2001:db8:1::/48", "US"),
    ("2001:db8:3::/48", "SG"),
]


def wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def ecs_option(cidr):
    net = ipaddress.ip_network(cidr)
    family = 1 if net.version == 4 else 2
    nbytes = (net.prefixlen + 7) // 8
    addr = net.network_address.packed[:nbytes]
    data = struct.pack("!HBB", family, net.prefixlen, 0) + addr
    return struct.pack("!HH", 8, len(data)) + data


def query(name, qtype, ecs=None):
    header = struct.pack("!HHHHHH", 0, 0x0000, 1, 0, 0, 1)
    question = wire_name(name) + struct.pack("!HH", TYPES[qtype], 1)
    options = ecs_option(ecs) if ecs else b""
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(options)) + options
    return header + question + opt


def write(outdir, cls, items):
    with open(f"{outdir}/{cls}.bin", "wb") as b, open(f"{outdir}/{cls}.txt", "w") as t:
        for name, qtype, ecs in items:
            msg = query(name, qtype, ecs)
            b.write(struct.pack("!H", len(msg)) + msg)
            t.write(f"{name} {qtype}{' ' + ecs if ecs else ''}\n")


def main():
    outdir = sys.argv[1]
    origin = sys.argv[2] if len(sys.argv) > 2 else "keiko.example.com"
    o = origin.rstrip(".")
    rnd = random.Random(20261126)
    classes = {
        "static": [(f"api-contracts-us-east.{o}", "A", None)],
        "failover": [(f"api-contracts.{o}", "A", None)],
        "weighted": [(f"api-contracts-weighted.{o}", "A", None)],
        "geo": [
            (f"api-contracts-geo.{o}", qtype, net)
            for net, _ in ECS
            for qtype in ("A", "AAAA")
        ],
        "nxdomain": [(f"nx{i}-{rnd.randrange(10**6)}.{o}", "A", None) for i in range(1000)],
    }
    # A guess at an authoritative server's real diet: mostly the steered
    # names (some with ECS from public resolvers), some static data and
    # some junk. 1000 queries in a fixed random order.
    mix_weights = [
        ((f"api-contracts.{o}", "A", None), 25),
        ((f"api-contracts.{o}", "AAAA", None), 10),
        ((f"api.{o}", "A", None), 5),
        ((f"api-contracts-weighted.{o}", "A", None), 8),
        ((f"api-contracts-weighted.{o}", "AAAA", None), 2),
        ((f"api-contracts-us-east.{o}", "A", None), 3),
        ((f"api-contracts-eu-west.{o}", "AAAA", None), 2),
        ((f"status.{o}", "A", None), 2),
        ((f"www.{o}", "A", None), 2),
        ((f"{o}", "SOA", None), 2),
        ((f"{o}", "NS", None), 2),
        ((f"{o}", "MX", None), 1),
        ((f"{o}", "TXT", None), 1),
        ((f"ns1.{o}", "A", None), 2),
        ((f"ns2.{o}", "AAAA", None), 1),
    ]
    mix_weights += [((f"api-contracts-geo.{o}", "A", None), 4)]
    mix_weights += [((f"api-contracts-geo.{o}", "A" if i % 2 == 0 else "AAAA", net), 2)
                    for i, (net, _) in enumerate(ECS)]
    mix_weights += [((f"api-contracts.{o}", "A", ECS[i][0]), 1) for i in (0, 1, 8)]
    items, weights = zip(*mix_weights)
    mix = rnd.choices(items, weights=weights, k=1000 - 1000 * 8 // 100)
    mix += [(f"nx-{rnd.randrange(10**6)}.{o}", "A", None) for _ in range(1000 * 8 // 100)]
    rnd.shuffle(mix)
    classes["mix"] = mix
    for cls, items in classes.items():
        write(outdir, cls, items)


if __name__ == "__main__":
    main()
