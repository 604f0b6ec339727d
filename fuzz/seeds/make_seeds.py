#!/usr/bin/env python3
"""Writes a handful of valid queries to fuzz/seeds/answer/ (seed corpus for
the `answer` target). Run from fuzz/: python3 seeds/make_seeds.py"""
import os, struct

def name(n):
    out = b""
    for label in n.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"

def query(n, qtype=1, qclass=1, flags=0x0100, opt=None, qid=0x1234):
    p = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if opt is not None else 0)
    p += name(n) + struct.pack(">HH", qtype, qclass)
    if opt is not None:
        payload, version, do, options = opt
        rdata = b"".join(struct.pack(">HH", c, len(v)) + v for c, v in options)
        p += b"\0" + struct.pack(">HHBBHH", 41, payload, 0, version, 0x8000 if do else 0, len(rdata)) + rdata
    return p

Z = "keiko.example.com"
seeds = {
    "soa": query(Z, 6),
    "a_failover": query("api-contracts." + Z, 1),
    "aaaa_geo_ecs_v4": query("api-contracts-geo." + Z, 28, opt=(1232, 0, False, [(8, bytes([0, 1, 24, 0, 81, 2, 69]))])),
    "a_geo_ecs_v6": query("api-contracts-geo." + Z, 1, opt=(4096, 0, True, [(8, bytes([0, 2, 48, 0, 0x20, 0x01, 0x02, 0x18, 0, 0]))])),
    "weighted_cookie_nsid": query("api-contracts-weighted." + Z, 1, opt=(1232, 0, False, [(3, b""), (10, b"clientck")])),
    "nxdomain": query("missing." + Z, 1, opt=(512, 0, False, [])),
    "refused": query("example.org", 1),
    "any_apex": query(Z, 255),
    "chaos_version": query("version.bind", 16, 3),
    "edns1": query(Z, 6, opt=(1232, 1, False, [(100, b"x")])),
    "tsig": query(Z, 6)[:11] + b"\1" + query(Z, 6)[12:] + name("key") + struct.pack(">HHIH", 250, 255, 0, 26)
        + name("hmac-sha256") + bytes([0, 0, 0x6a, 0, 0, 0, 1, 44, 0, 0, 0x12, 0x34, 0, 0, 0, 0]),
}
os.makedirs("seeds/answer", exist_ok=True)
for k, v in seeds.items():
    with open(f"seeds/answer/{k}", "wb") as f:
        f.write(v)
os.makedirs("seeds/zone", exist_ok=True)
with open("seeds/zone/shipped", "w") as f:
    f.write(open("../zones/keiko.example.com.zone").read())
os.makedirs("seeds/config", exist_ok=True)
with open("seeds/config/shipped", "w") as f:
    f.write(open("../zones/keiko.toml").read())
