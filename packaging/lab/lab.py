#!/usr/bin/env python3
"""The three-region lab: namespaces, processes, drills, measurements.

Run through packaging/lab/drill.sh (which checks for root, finds the
binary and cleans up on every exit). `lab.py run` builds the lab, runs the
drills and prints the table; `lab.py cleanup` stops every process the lab
started (by the PIDs it recorded) and deletes its namespaces.

Everything happens inside the namespaces this script creates:

    keiko-us-east-1       10.53.1.53  ns1 (keiko-dns, port 53, peer 9443)
                          10.53.1.80  the region's API /health stand-in
    keiko-eu-west-1       10.53.2.53 / .80   ns2 and its API
    keiko-ap-southeast-1  10.53.3.53 / .80   ns3 and its API
    keiko-client          10.53.10.53 unbound (ECS via subnetcache), the clients
    keiko-parent          10.53.20.53 nsd serving example.com (the delegation)
    keiko-router          10.53.N.1 on every link; delay_router.py adds the
                          round-trip times and cuts links
"""

import argparse
import ctypes
import http.client
import json
import os
import random
import re
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from delay_router import rtt_ms  # noqa: E402

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"]
OCTET = {"us-east-1": 1, "eu-west-1": 2, "ap-southeast-1": 3, "client": 10, "parent": 20}
INSTANCE = {"us-east-1": "ns1.us-east-1", "eu-west-1": "ns2.eu-west-1",
            "ap-southeast-1": "ns3.ap-southeast-1"}
NSNAME = {"us-east-1": "ns1", "eu-west-1": "ns2", "ap-southeast-1": "ns3"}
VETH = {"us-east-1": "r-use1", "eu-west-1": "r-euw1", "ap-southeast-1": "r-apse1",
        "client": "r-client", "parent": "r-parent"}
NETNS = {site: f"keiko-{site}" for site in OCTET}
NETNS["router"] = "keiko-router"
ALL_NETNS = list(NETNS.values())
# The steered answer of each region (the addresses in the shipped config).
ANSWER = {"us-east-1": "192.0.2.10", "eu-west-1": "198.51.100.10",
          "ap-southeast-1": "203.0.113.10"}
NAME = "api-contracts.keiko.example.com"
RESOLVER = "10.53.10.53"
STUB = "10.53.10.100"     # the clients' address: their queries go to the resolver
SAMPLER = "10.53.10.99"   # where +norec samples of each nameserver come from


def addr(site, host):
    return f"10.53.{OCTET[site]}.{host}"


# Lab settings, printed by the script, and production's, for the arithmetic.
LAB = {"interval": 1.0, "timeout": 1.0, "fast_interval": 0.5, "failure_threshold": 3,
       "recovery_threshold": 3, "peer_timeout": 3.0,
       "ttl": int(os.environ.get("LAB_TTL", "5"))}  # LAB_TTL: try another record TTL
PROD = {"interval": 30.0, "timeout": 10.0, "fast_interval": 5.0, "failure_threshold": 3,
        "recovery_threshold": 3, "peer_timeout": 10.0, "ttl": 60}
TARGETS = {"failover": 120.0, "rto": 300.0, "propagation": 60.0}


def detection_budget(s, kind):
    """Seconds from a fault to the fleet verdict, by the timers alone.

    kind "fail": probes fail at once (HTTP 503, connection refused):
        interval + (failure_threshold - 1) x fast_interval
    kind "timeout": probes time out (a cut link): each failing probe also
        waits its timeout: interval + (failure_threshold - 1) x fast_interval
        + failure_threshold x timeout
    kind "peers": the vantage points that died with the regions still count
        until peer_timeout: the larger of "fail" and peer_timeout
    kind "forced": an operator command: no detection
    """
    fail = s["interval"] + (s["failure_threshold"] - 1) * s["fast_interval"]
    if kind == "fail":
        return fail
    if kind == "timeout":
        return fail + s["failure_threshold"] * s["timeout"]
    if kind == "peers":
        return max(fail, s["peer_timeout"])
    return 0.0


# --- namespaces, sockets and processes ------------------------------------

libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000
_ns_lock = threading.Lock()


def ns_socket(netns, family=socket.AF_INET, kind=socket.SOCK_DGRAM):
    """A socket created inside network namespace `netns` (None: this one)."""
    if netns is None:
        return socket.socket(family, kind)
    with _ns_lock:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns}")
            try:
                return socket.socket(family, kind)
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(own)
            os.close(target)


def http_call(netns, host, port, method, path, timeout=2.0):
    sock = ns_socket(netns, kind=socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect((host, port))
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def sh(*cmd, check=True, quiet=False):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    if not quiet and r.stdout.strip():
        print(r.stdout.rstrip())
    return r


class Procs:
    """Every process the lab starts, with its PID recorded for cleanup."""

    def __init__(self, labdir):
        self.labdir = labdir
        self.pidfile = labdir / "pids"
        self.procs = {}

    def start(self, key, netns, argv, ready=None):
        log = open(self.labdir / f"{key}.log", "ab")
        p = subprocess.Popen(["ip", "netns", "exec", netns, *argv], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.procs[key] = p
        with open(self.pidfile, "a") as f:
            f.write(f"{p.pid} {key}\n")
        if ready:
            deadline = time.monotonic() + 20
            while not ready():
                if p.poll() is not None:
                    raise RuntimeError(f"{key} exited ({p.returncode}); see {self.labdir}/{key}.log")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{key} not ready after 20 s; see {self.labdir}/{key}.log")
                time.sleep(0.1)
        return p

    def kill(self, key, sig=signal.SIGKILL):
        p = self.procs.pop(key)
        if p.poll() is None:
            p.send_signal(sig)
        p.wait(timeout=10)


def cleanup(labdir):
    """Stop the lab's processes by their recorded PIDs, delete its namespaces."""
    pidfile = Path(labdir) / "pids"
    pids = []
    if pidfile.exists():
        for line in pidfile.read_text().splitlines():
            pid = int(line.split()[0])
            if Path(f"/proc/{pid}").exists():
                pids.append(pid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    for pid in pids:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:  # reap it if it is our child
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    existing = sh("ip", "netns", "list", check=False, quiet=True).stdout.split()
    for netns in ALL_NETNS:
        if netns in existing:
            sh("ip", "netns", "del", netns, check=False, quiet=True)


# --- DNS on the wire ---------------------------------------------------------

def dns_query(qid, name, rd):
    flags = 0x0100 if rd else 0
    q = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 0) + q + b"\0" + struct.pack(">HH", 1, 1)


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def dns_parse(msg):
    """(id, rcode, sorted A addresses as one string) of a response."""
    qid, flags, qd, an = struct.unpack(">HHHH", msg[:8])
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    addrs = []
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[i:i + 4]))
        i += rdlen
    return qid, flags & 0x0F, ",".join(sorted(addrs))


# --- measurement -------------------------------------------------------------

class ClientStream(threading.Thread):
    """A steady stream of client queries through the resolver.

    Each query: (sent, latency or None, outcome, answer); outcome is "ok",
    "servfail", "rcode N" or "timeout" (no answer within `timeout`).
    """

    def __init__(self, qps, timeout=3.0):
        super().__init__(daemon=True)
        self.qps, self.timeout = qps, timeout
        self.sock = ns_socket(NETNS["client"])
        self.sock.bind((STUB, 0))
        self.sock.setblocking(False)
        self.results = []
        self.lock = threading.Lock()
        self.stop = False

    def run(self):
        pending = {}
        qid = random.randrange(65536)
        step = 1.0 / self.qps
        next_send = time.monotonic()
        while not self.stop:
            now = time.monotonic()
            if now >= next_send:
                qid = (qid + 1) % 65536
                pending[qid] = now
                try:
                    self.sock.sendto(dns_query(qid, NAME, True), (RESOLVER, 53))
                except OSError:
                    pass
                next_send += step
            r, _, _ = select.select([self.sock], [], [], max(0.0, min(step, next_send - now)))
            now = time.monotonic()
            if r:
                while True:
                    try:
                        msg = self.sock.recv(4096)
                    except BlockingIOError:
                        break
                    try:
                        rid, rcode, answer = dns_parse(msg)
                    except (struct.error, IndexError):
                        continue
                    sent = pending.pop(rid, None)
                    if sent is None:
                        continue
                    outcome = "ok" if rcode == 0 else "servfail" if rcode == 2 else f"rcode {rcode}"
                    with self.lock:
                        self.results.append((sent, now - sent, outcome, answer))
            for q, sent in list(pending.items()):
                if now - sent > self.timeout:
                    del pending[q]
                    with self.lock:
                        self.results.append((sent, None, "timeout", ""))

    def window(self, a, b):
        with self.lock:
            return sorted(r for r in self.results if a <= r[0] < b)


class Sampler(threading.Thread):
    """Asks one nameserver directly (+norec) every `tick` seconds.

    view "inside": from the nameserver's own namespace (what it answers,
    reachable or not); view "client": from the client namespace (what a
    resolver there can get)."""

    def __init__(self, region, view, start, tick):
        super().__init__(daemon=True)
        self.region, self.view, self.start_t, self.tick = region, view, start, tick
        netns = NETNS[region] if view == "inside" else NETNS["client"]
        self.sock = ns_socket(netns)
        if view == "client":
            self.sock.bind((SAMPLER, 0))
        self.sock.settimeout(min(0.5, tick * 2.5))
        self.samples = {}  # tick number -> answer, or None when it did not answer
        self.stop = False

    def run(self):
        target = (addr(self.region, 53), 53)
        k = 0
        while not self.stop:
            k = max(k + 1, int((time.monotonic() - self.start_t) / self.tick) + 1)
            time.sleep(max(0.0, self.start_t + k * self.tick - time.monotonic()))
            qid = random.randrange(65536)
            answer = None
            try:
                self.sock.sendto(dns_query(qid, NAME, False), target)
                deadline = time.monotonic() + self.sock.gettimeout()
                while time.monotonic() < deadline:
                    msg = self.sock.recv(4096)
                    rid, rcode, ans = dns_parse(msg)
                    if rid == qid:
                        answer = ans if rcode == 0 else f"rcode {rcode}"
                        break
            except (OSError, struct.error, IndexError):
                pass
            self.samples[k] = answer


class Lab:
    def __init__(self, keiko, labdir, qps, tick):
        self.keiko, self.labdir, self.qps, self.tick = keiko, labdir, qps, tick
        self.procs = Procs(labdir)
        self.cuts = labdir / "cuts"
        self.t0 = time.monotonic()

    # setup ----------------------------------------------------------------
    def build(self):
        cleanup(self.labdir)  # leftovers of an earlier run that was killed hard
        self.cuts.write_text("")
        router = NETNS["router"]
        sh("ip", "netns", "add", router)
        sh("ip", "-n", router, "link", "set", "lo", "up")
        for site, octet in OCTET.items():
            netns, veth = NETNS[site], VETH[site]
            sh("ip", "netns", "add", netns)
            sh("ip", "-n", netns, "link", "set", "lo", "up")
            sh("ip", "link", "add", veth, "netns", router, "type", "veth",
               "peer", "name", "eth0", "netns", netns)
            sh("ip", "-n", router, "addr", "add", f"10.53.{octet}.1/24", "dev", veth)
            sh("ip", "-n", router, "link", "set", veth, "up")
            sh("ip", "-n", netns, "addr", "add", f"10.53.{octet}.53/24", "dev", "eth0")
            if site in REGIONS:
                sh("ip", "-n", netns, "addr", "add", f"10.53.{octet}.80/24", "dev", "eth0")
            if site == "client":
                for extra in (STUB, SAMPLER):
                    sh("ip", "-n", netns, "addr", "add", f"{extra}/24", "dev", "eth0")
            sh("ip", "-n", netns, "link", "set", "eth0", "up")
            sh("ip", "-n", netns, "route", "add", "default", "via", f"10.53.{octet}.1")
        args = ["python3", str(HERE / "delay_router.py"), "--cuts", str(self.cuts),
                "--stats", str(self.labdir / "router-stats.json")]
        for veth in VETH.values():
            args += ["--veth", veth]
        self.procs.start("router", router, args,
                         ready=lambda: "ready" in (self.labdir / "router.log").read_text())
        for region in REGIONS:
            self.procs.start(f"api-{region}", NETNS[region],
                             ["python3", str(HERE / "standin.py"), addr(region, 80)],
                             ready=lambda r=region: self.api_ok(r))
        self.write_parent()
        self.procs.start("nsd", NETNS["parent"],
                         ["nsd", "-d", "-c", str(self.labdir / "parent" / "nsd.conf")],
                         ready=lambda: self.tcp_open(NETNS["client"], addr("parent", 53), 53))
        self.write_fleet()
        for region in REGIONS:
            self.start_ns(region)
        self.write_unbound()
        self.procs.start("unbound", NETNS["client"],
                         ["unbound", "-d", "-c", str(self.labdir / "client" / "unbound.conf")],
                         ready=lambda: self.tcp_open(NETNS["client"], RESOLVER, 53))

    def tcp_open(self, netns, host, port, timeout=1.0):
        try:
            s = ns_socket(netns, kind=socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect((host, port))
            s.close()
            return True
        except OSError:
            return False

    def api_ok(self, region):
        try:
            return http_call(NETNS[region], addr(region, 80), 80, "GET", "/health")[0] == 200
        except OSError:
            return False

    def api(self, region, action):
        status, _ = http_call(NETNS[region], addr(region, 80), 80, "POST", f"/{action}")
        if status != 200:
            raise RuntimeError(f"{region} stand-in answered {status} to /{action}")

    def ready(self, region):
        try:
            return http_call(NETNS[region], "127.0.0.1", 9300, "GET", "/ready")[0] == 200
        except OSError:
            return False

    def start_ns(self, region):
        conf = self.labdir / NSNAME[region] / "keiko.toml"
        self.procs.start(NSNAME[region], NETNS[region],
                         [str(self.keiko), "serve", "--config", str(conf)],
                         ready=lambda: self.ready(region))

    def write_parent(self):
        d = self.labdir / "parent"
        d.mkdir()
        lines = [
            "$ORIGIN example.com.", "$TTL 300",
            "@ IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300",
            "@ IN NS ns", f"ns IN A {addr('parent', 53)}",
            "; the delegation of keiko.example.com to the three regions' nameservers",
        ]
        for region in REGIONS:
            lines.append(f"keiko IN NS {NSNAME[region]}.keiko")
        for region in REGIONS:
            lines.append(f"{NSNAME[region]}.keiko IN A {addr(region, 53)}")
        (d / "example.com.zone").write_text("\n".join(lines) + "\n")
        (d / "nsd.conf").write_text(f"""server:
  ip-address: {addr('parent', 53)}
  port: 53
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  zonelistfile: "{d}/zone.list"
  xfrdfile: "{d}/xfrd.state"
  pidfile: "{d}/nsd.pid"
  logfile: "{d}/nsd.log"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: "example.com"
  zonefile: "example.com.zone"
""")

    def write_unbound(self):
        d = self.labdir / "client"
        d.mkdir()
        ecs = "\n".join(f"  send-client-subnet: {addr(r, 53)}" for r in REGIONS)
        (d / "unbound.conf").write_text(f"""server:
  interface: {RESOLVER}
  port: 53
  access-control: 10.53.0.0/16 allow
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  logfile: "{d}/unbound.log"
  use-syslog: no
  verbosity: 1
  do-ip6: no
  # EDNS Client Subnet (RFC 7871): the subnetcache module sends the
  # client's /24 to our nameservers and caches answers by the scope they give.
  module-config: "subnetcache iterator"
{ecs}
  max-client-subnet-ipv4: 24
stub-zone:
  name: "example.com"
  stub-addr: {addr('parent', 53)}
""")

    def write_fleet(self):
        certs = self.labdir / "fleet"
        ips = []
        for region in REGIONS:
            ips += ["--ip", addr(region, 53)]
        sh(str(self.keiko), "fleet", "certs", "--out", str(certs),
           *[INSTANCE[r] for r in REGIONS], *ips, quiet=True)
        zone = (REPO / "zones" / "keiko.example.com.zone").read_text()
        # The shared zone, with the nameservers' glue at their lab addresses
        # (the shipped glue is documentation addresses, never to be queried).
        for region, (a, aaaa) in {"us-east-1": ("192.0.2.53", "2001:db8:10::53"),
                                  "eu-west-1": ("198.51.100.53", "2001:db8:20::53"),
                                  "ap-southeast-1": ("203.0.113.53", "2001:db8:30::53")}.items():
            zone = zone.replace(a, addr(region, 53))
            zone = re.sub(rf"^{NSNAME[region]}\s+IN AAAA\s+{re.escape(aaaa)}\n", "", zone,
                          flags=re.M)
        (self.labdir / "keiko.example.com.zone").write_text(zone)
        base = (REPO / "zones" / "keiko.toml").read_text()
        # Keep everything after [zone] as shipped (GeoIP, residency, regions,
        # records) but for the lab's health URLs and TTLs.
        rest = base[base.index("[geoip]"):]
        rest = rest.replace('"../geoip-fixtures/', f'"{REPO}/geoip-fixtures/')
        for i, region in enumerate(REGIONS):
            rest = rest.replace(f'"http://127.0.0.1:1808{i + 1}/health"',
                                f'"http://{addr(region, 80)}/health"')
        rest = rest.replace("ttl    = 60", f"ttl    = {LAB['ttl']}")
        peers = ", ".join(f'"https://{addr(r, 53)}:9443"' for r in REGIONS)
        for region in REGIONS:
            d = self.labdir / NSNAME[region]
            d.mkdir()
            inst = INSTANCE[region]
            (d / "keiko.toml").write_text(f"""# keiko-dns lab config for {inst}, written by packaging/lab/lab.py
[server]
dns_listen   = ["{addr(region, 53)}:53"]
admin_listen = "127.0.0.1:9300"
region       = "{region}"
state_dir    = "state"
nsid         = "{inst}"

[zone]
origin = "keiko.example.com."
file   = "../keiko.example.com.zone"

[health]
interval           = "{LAB['interval']:g}s"
timeout            = "{LAB['timeout']:g}s"
failure_threshold  = {LAB['failure_threshold']}
recovery_threshold = {LAB['recovery_threshold']}
fast_interval      = "{int(LAB['fast_interval'] * 1000)}ms"
recovery           = "automatic"
path               = "/health"

[fleet]
instance     = "{inst}"
listen       = "{addr(region, 53)}:9443"
peers        = [{peers}]
ca_file      = "../fleet/ca.pem"
cert_file    = "../fleet/{inst}.pem"
key_file     = "../fleet/{inst}.key"
down_quorum  = "majority"
peer_timeout = "{LAB['peer_timeout']:g}s"

{rest}""")
            r = sh(str(self.keiko), "check", "--config", str(d / "keiko.toml"), check=False,
                   quiet=True)
            if r.returncode != 0:
                raise RuntimeError(f"keiko-dns check of {d}/keiko.toml failed:\n{r.stdout}{r.stderr}")

    # facts about the running lab -----------------------------------------
    def measure_rtts(self):
        """Median TCP connect time (one round trip) over each link, in ms."""
        pairs = [("us-east-1", "eu-west-1"), ("us-east-1", "ap-southeast-1"),
                 ("eu-west-1", "ap-southeast-1")]
        pairs += [("client", r) for r in REGIONS] + [("client", "parent")]
        out = []
        for a, b in pairs:
            host, port = (addr(b, 53), 53) if b == "parent" else (addr(b, 80), 80)
            times = []
            for _ in range(5):
                s = ns_socket(NETNS[a], kind=socket.SOCK_STREAM)
                s.settimeout(3)
                t = time.monotonic()
                s.connect((host, port))
                times.append((time.monotonic() - t) * 1000)
                s.close()
            out.append((a, b, rtt_ms(a, b), statistics.median(times)))
        return out

    def resolve_once(self):
        s = ns_socket(NETNS["client"])
        s.settimeout(5)
        s.sendto(dns_query(4242, NAME, True), (RESOLVER, 53))
        return dns_parse(s.recv(4096))

    def status(self, region):
        _, body = http_call(NETNS[region], "127.0.0.1", 9300, "GET", "/status")
        return json.loads(body)

    # drills ---------------------------------------------------------------
    def start_measuring(self):
        self.stream = ClientStream(self.qps)
        self.stream.start()
        self.samplers = {}
        for region in REGIONS:
            for view in ("inside", "client"):
                s = Sampler(region, view, self.t0, self.tick)
                s.start()
                self.samplers[(region, view)] = s

    def stop_measuring(self):
        self.stream.stop = True
        for s in self.samplers.values():
            s.stop = True

    def tick_of(self, t):
        return int((t - self.t0) / self.tick)

    def wait_for(self, expected, hold, limit, view_regions=None):
        """Until every nameserver of `view_regions` (inside view; default
        all) and the last clients answer `expected` for `hold` seconds;
        False after `limit`."""
        regions = view_regions or REGIONS
        start = time.monotonic()
        while time.monotonic() - start < limit:
            time.sleep(0.25)
            now = time.monotonic()
            ticks = range(self.tick_of(now - hold), self.tick_of(now) - 1)
            ok = all(self.samplers[(r, "inside")].samples.get(k) == expected
                     for r in regions for k in ticks)
            recent = self.stream.window(now - hold, now - 0.5)
            ok = ok and recent and all(q[2] == "ok" and q[3] == expected for q in recent)
            if ok:
                return True
        return False

    def divergence(self, view, a, b):
        """(seconds, longest seconds) the answering nameservers differed."""
        differ = longest = run = 0
        for k in range(self.tick_of(a), self.tick_of(b) + 1):
            answers = {self.samplers[(r, view)].samples.get(k) for r in REGIONS}
            answers.discard(None)
            if len(answers) > 1:
                differ += 1
                run += 1
                longest = max(longest, run)
            else:
                run = 0
        return differ * self.tick, longest * self.tick

    def ns_switch(self, a, b, new):
        """Per nameserver (inside view): seconds after `a` from which it
        answered `new` until `b` (None if it did not)."""
        out = {}
        for r in REGIONS:
            s = self.samplers[(r, "inside")].samples
            ks = range(self.tick_of(a), self.tick_of(b))
            since = None
            for k in ks:
                if s.get(k) == new:
                    since = k if since is None else since
                elif s.get(k) is not None:
                    since = None
            out[r] = None if since is None else max(0.0, self.t0 + since * self.tick - a)
        return out

    def drill(self, name, fault, repair, new, dead, kind, hold=None, limit=40,
              inside_regions=None, note=""):
        """Run one drill with the stream flowing; return its measurements."""
        old = ANSWER["us-east-1"]
        if not self.wait_for(old, 3, 60):
            raise RuntimeError(f"before {name}: the lab did not settle on {old}")
        print(f"\n== drill: {name}", flush=True)
        t_fault = time.monotonic()
        fault()
        if new != old:
            switched = self.wait_for(new, 3, limit, view_regions=inside_regions)
            if not switched:
                print(f"   clients did not get {new} within {limit} s", flush=True)
        else:
            time.sleep(hold)
            switched = True
        t_repair = time.monotonic()
        repair()
        repair_took = time.monotonic() - t_repair
        back = self.wait_for(old, 3, 60)
        t_end = time.monotonic()
        time.sleep(0.5)

        qs = self.stream.window(t_fault, t_end)
        fault_qs = [q for q in qs if q[0] < t_repair]
        dead_answers = {ANSWER[r] for r in dead}

        def bad(q):
            return q[2] != "ok" or q[3] in dead_answers or q[3] not in ANSWER.values()

        m = {"drill": name, "kind": kind, "queries": len(qs), "note": note,
             "timeouts": sum(q[2] == "timeout" for q in qs),
             "servfail": sum(q[2] == "servfail" for q in qs),
             "other_rcode": sum(q[2].startswith("rcode") for q in qs),
             "switched": switched, "back": back, "new": new, "changes": new != old}
        lat = sorted(q[1] for q in qs if q[1] is not None)
        m["latency_p50_ms"] = 1000 * lat[len(lat) // 2] if lat else None
        m["latency_max_ms"] = 1000 * lat[-1] if lat else None
        if new != old:
            # a query that timed out counts from when it was sent: the
            # resolver could not answer it then
            last_other = max((q[0] + (q[1] or 0.0) for q in fault_qs
                              if not (q[2] == "ok" and q[3] == new)), default=t_fault)
            firsts = [q[0] + q[1] for q in fault_qs
                      if q[2] == "ok" and q[3] == new and q[0] + q[1] > last_other]
            m["clients_new_s"] = (min(firsts) - t_fault) if firsts and switched else None
            sw = self.ns_switch(t_fault, t_repair, new)
            m["ns_switch_s"] = sw
            got = [v for r, v in sw.items() if v is not None and r in (inside_regions or REGIONS)]
            m["ns_propagation_s"] = (max(got) - min(got)) if got else None
        if dead:
            outage = [q[0] + (q[1] or 3.0) for q in fault_qs if bad(q)]
            m["rto_lab_s"] = (max(outage) - t_fault) if outage else 0.0
            m["dead_answers"] = sum(q[2] == "ok" and q[3] in dead_answers for q in fault_qs)
        # answers no client should get at all during this drill
        m["unexpected"] = sum(q[2] == "ok" and q[3] not in (old, new) for q in qs)
        for view in ("client", "inside"):
            m[f"differ_{view}_s"], m[f"differ_{view}_longest_s"] = self.divergence(
                view, t_fault, t_end)
            m[f"differ_{view}_repair_s"] = self.divergence(view, t_repair, t_end)[0]
        m["repair_took_s"] = repair_took  # e.g. a restart until /ready answers 200
        m["back_s"] = t_end - t_repair - 3 if back else None
        m["duration_s"] = t_end - t_fault
        print("   " + json.dumps({k: (round(v, 2) if isinstance(v, float) else v)
                                   for k, v in m.items() if k != "ns_switch_s"}), flush=True)
        return m

    # the drills themselves
    def kill_ns(self, region):
        self.procs.kill(NSNAME[region])

    def set_cuts(self, text):
        tmp = self.cuts.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.cuts)

    def forced(self, restore):
        argv = ["ip", "netns", "exec", NETNS["eu-west-1"], str(self.keiko), "failover",
                "--region", "us-east-1", "--admin", "http://127.0.0.1:9300"]
        if restore:
            argv.append("--restore")
        r = subprocess.run(argv, capture_output=True, text=True)
        with open(self.labdir / "failover-command.log", "a") as f:
            f.write(f"$ {' '.join(argv)}\n{r.stdout}{r.stderr}\n")
        applied = re.search(r"applied on (\d+) of (\d+) instances", r.stdout)
        self.applied = applied.group(0) if applied else "no 'applied on' line"
        print(f"   keiko-dns failover{' --restore' if restore else ''}: {self.applied}",
              flush=True)
        if r.returncode != 0:
            raise RuntimeError(f"keiko-dns failover failed ({r.returncode}): {r.stderr}")

    def drills(self, short):
        us, eu, ap = REGIONS
        out = []

        def down(*regions):
            for r in regions:
                self.api(r, "fail")
                self.kill_ns(r)

        def up(*regions):
            for r in regions:
                self.api(r, "recover")
                self.start_ns(r)

        out.append(self.drill("primary down (us-east-1 API + ns1)", lambda: down(us),
                              lambda: up(us), ANSWER[eu], [us], "fail",
                              inside_regions=[eu, ap]))
        if not short:
            out.append(self.drill("secondary down (eu-west-1 API + ns2)", lambda: down(eu),
                                  lambda: up(eu), ANSWER[us], [eu], "fail", hold=8,
                                  inside_regions=[us, ap]))
            out.append(self.drill("two regions down (us-east-1 + eu-west-1)",
                                  lambda: down(us, eu), lambda: up(us, eu), ANSWER[ap],
                                  [us, eu], "peers", inside_regions=[ap]))
            out.append(self.drill("asymmetric partition (us-east-1 reaches only itself)",
                                  lambda: self.set_cuts("us-east-1\n"),
                                  lambda: self.set_cuts(""), ANSWER[eu], [us], "timeout",
                                  inside_regions=[eu, ap],
                                  note="ns1 is cut off from everyone, clients included; "
                                       "isolated, it keeps answering us-east-1 (inside view)"))
            out.append(self.drill("nameserver killed and restarted (ns1, SIGKILL, 5 s)",
                                  lambda: self.kill_ns(us),
                                  lambda: self.start_ns(us), ANSWER[us], [], "none", hold=5,
                                  inside_regions=[eu, ap]))
        out.append(self.drill("forced failover from eu-west-1 (keiko-dns failover)",
                              lambda: self.forced(False), lambda: self.forced(True),
                              ANSWER[eu], [], "forced"))
        return out


# --- the table ----------------------------------------------------------------

def fmt(v, unit="s"):
    return "-" if v is None else f"{v:.1f} {unit}"


def production(m, prod=None):
    """(failover estimate, RTO estimate) in seconds with production settings.

    estimate = production budget + max(0, measured - lab budget), where a
    budget is detection_budget(settings, kind) + the record TTL (the longest
    a resolver keeps the old answer). The measured time minus the lab's
    budget is what the timers do not explain (network, resolver retries);
    it is carried over as it is, and never counted below zero, so each
    estimate assumes the worst timer phase in production."""
    lab_b = detection_budget(LAB, m["kind"]) + LAB["ttl"]
    prod = prod or PROD
    prod_b = detection_budget(prod, m["kind"]) + prod["ttl"]
    fo = None if m.get("clients_new_s") is None else prod_b + max(0.0, m["clients_new_s"] - lab_b)
    rto = None if m.get("rto_lab_s") is None else prod_b + max(0.0, m["rto_lab_s"] - lab_b)
    if not m["changes"]:
        rto = m.get("rto_lab_s")  # no failover: only resolver retries, which do not scale
    return fo, rto


def table(results):
    rows = ["| drill | clients on the new answer (lab) | client queries failed (no answer in 3 s) / SERVFAIL "
            "| answers differed between nameservers: client view (longest) / inside view (longest) "
            "| nameservers switched (first - last, spread) | lab outage (RTO) "
            "| production estimate: failover / RTO |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in results:
        fo, rto = production(m)
        if m["changes"]:
            sw = [v for v in m["ns_switch_s"].values() if v is not None]
            nss = (f"+{min(sw):.1f} - +{max(sw):.1f} s ({m['ns_propagation_s']:.1f} s)"
                   if sw else "no")
            new = fmt(m["clients_new_s"]) + f" ({m['new']})"
        else:
            nss, new = "unchanged (as expected)", f"unchanged ({m['new']})"
            if m["kind"] == "none":
                nss += f"; restarted ns1 ready in {m['repair_took_s']:.1f} s"
        prod = f"{fmt(fo)} / {fmt(rto)}" if m["kind"] != "none" else "-"
        if m["kind"] == "forced":
            prod = f"{fmt(fo)} / -"
        rows.append(
            f"| {m['drill']} | {new} | {m['timeouts']} / {m['servfail']} (of {m['queries']}; "
            f"slowest answer {m['latency_max_ms'] / 1000:.1f} s) "
            f"| {m['differ_client_s']:.1f} s, {m['differ_client_repair_s']:.1f} of it after the "
            f"repair (longest {m['differ_client_longest_s']:.1f} s) / "
            f"{m['differ_inside_s']:.1f} s, {m['differ_inside_repair_s']:.1f} after "
            f"(longest {m['differ_inside_longest_s']:.1f} s) "
            f"| {nss} | {fmt(m.get('rto_lab_s'))} | {prod} |")
    fos = [production(m)[0] for m in results if production(m)[0] is not None]
    rtos = [production(m)[1] for m in results if production(m)[1] is not None]
    props = [m["ns_propagation_s"] for m in results if m.get("ns_propagation_s") is not None]
    worst = (lambda xs: max(xs) if xs else None)
    checks = [
        ("failover < 2 min (production settings, worst drill)", worst(fos), TARGETS["failover"]),
        ("RTO < 5 min (production settings, worst drill)", worst(rtos), TARGETS["rto"]),
        ("DNS propagation < 60 s (every nameserver on the new answer, worst drill)",
         worst(props), TARGETS["propagation"]),
    ]
    rows += ["", "| seed target | measured / estimated | met |", "| --- | --- | --- |"]
    ok = True
    for label, value, target in checks:
        met = value is not None and value < target
        ok = ok and met
        rows.append(f"| {label} | {fmt(value)} | {'yes' if met else 'NO'} |")
    if not ok:
        alt = dict(PROD, timeout=5.0)
        fos5 = [production(m, alt)[0] for m in results if production(m, alt)[0] is not None]
        rows += ["", f"With `[health] timeout = \"5s\"` (the rest production) the worst "
                 f"failover estimate is {fmt(worst(fos5))}."]
    return "\n".join(rows), ok


def settings_text():
    def line(s):
        return (f"interval {s['interval']:g} s, timeout {s['timeout']:g} s, fast_interval "
                f"{s['fast_interval']:g} s, failure_threshold {s['failure_threshold']}, "
                f"recovery_threshold {s['recovery_threshold']}, peer_timeout "
                f"{s['peer_timeout']:g} s, record TTL {s['ttl']} s")
    out = [f"lab settings:        {line(LAB)}", f"production settings: {line(PROD)}",
           "detection budgets (interval + (failure_threshold - 1) x fast_interval; "
           "+ failure_threshold x timeout when probes time out; at least peer_timeout "
           "when vantage points die with the regions):"]
    for kind in ("fail", "timeout", "peers", "forced"):
        out.append(f"  {kind:8} lab {detection_budget(LAB, kind):5.1f} s + TTL {LAB['ttl']} s"
                   f"   production {detection_budget(PROD, kind):5.1f} s + TTL {PROD['ttl']} s")
    return "\n".join(out)


def run(args):
    labdir = Path(args.lab_dir)
    lab = Lab(Path(args.keiko), labdir, args.qps, args.tick)
    print(settings_text(), flush=True)
    lab.build()
    print("\nround-trip times through delay_router.py (TCP connect, median of 5):")
    rtt_ok = True
    rtts = lab.measure_rtts()
    for a, b, want, got in rtts:
        print(f"  {a:>14} <-> {b:<15} configured {want:4d} ms   measured {got:6.1f} ms")
        rtt_ok = rtt_ok and want <= got < want + 40
    if not rtt_ok:
        raise RuntimeError("a measured round-trip time is off its configured value")
    rid, rcode, answer = lab.resolve_once()
    print(f"\nresolver {RESOLVER}: {NAME} A -> {answer} (rcode {rcode}), via the example.com "
          f"delegation on {addr('parent', 53)}")
    if rcode != 0 or answer != ANSWER["us-east-1"]:
        raise RuntimeError("the resolver does not answer the primary region through the lab")
    st = lab.status("us-east-1")["fleet"]
    print(f"fleet: ns1 sees peers {[(p['instance'], p['state']) for p in st['peers']]}")
    lab.start_measuring()
    time.sleep(2)
    results = lab.drills(args.short)
    lab.stop_measuring()
    stats = json.loads((labdir / "router-stats.json").read_text())
    print(f"\nrouter: {stats['forwarded']} packets forwarded, {stats['dropped']} dropped; "
          f"{stats['with_ecs']} of {stats['dns_queries_to_regions']} resolver queries to our "
          "nameservers carried ECS")
    text, ok = table(results)
    text = ("| round trip (ms) | " + " | ".join(f"{a} - {b}" for a, b, _, _ in rtts)
            + " |\n| --- |" + " --- |" * len(rtts) + "\n| configured | "
            + " | ".join(str(w) for _, _, w, _ in rtts) + " |\n| measured | "
            + " | ".join(f"{g:.1f}" for _, _, _, g in rtts) + " |\n\n" + text)
    print("\n" + text)
    Path(args.table).write_text(text + "\n")
    (labdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    problems = []
    if stats["dns_queries_to_regions"] == 0 or stats["with_ecs"] == 0:
        problems.append("the resolver sent no ECS to the nameservers")
    for m in results:
        if not m["switched"]:
            problems.append(f"{m['drill']}: clients never settled on {m['new']}")
        if not m["back"]:
            problems.append(f"{m['drill']}: clients did not come back to us-east-1")
        if m["servfail"] + m["timeouts"] > 0.05 * m["queries"]:
            problems.append(f"{m['drill']}: more than 5% of client queries failed")
        if m["unexpected"]:
            problems.append(f"{m['drill']}: {m['unexpected']} client answers were neither "
                            "the old nor the new one")
        if m["differ_client_longest_s"] > 5:
            problems.append(f"{m['drill']}: nameservers disagreed for more than 5 s in a row")
    if not ok:
        print("drill: a seed target is NOT met with the production settings (see the table)",
              file=sys.stderr)
        if args.require_targets or args.short:
            problems.append("a seed target is not met")
    for p in problems:
        print(f"drill: FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description="the keiko-dns three-region lab")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--keiko", required=True)
    r.add_argument("--lab-dir", required=True)
    r.add_argument("--table", required=True, help="file to write the drill table to")
    r.add_argument("--short", action="store_true", help="two drills, for CI")
    r.add_argument("--require-targets", action="store_true",
                   help="fail when a seed target is not met (always with --short)")
    r.add_argument("--qps", type=float, default=20)
    r.add_argument("--tick", type=float, default=0.2, help="nameserver sampling period")
    c = sub.add_parser("cleanup")
    c.add_argument("--lab-dir", required=True)
    args = ap.parse_args()
    if args.cmd == "cleanup":
        cleanup(args.lab_dir)
        return 0
    labdir = Path(args.lab_dir)
    try:
        return run(args)
    finally:
        cleanup(labdir)


if __name__ == "__main__":
    sys.exit(main())
