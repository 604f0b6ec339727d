#!/usr/bin/env python3
"""Helpers for benches/overload.sh. Everything talks to 127.0.0.1 only.

  helpers.py stub PORT FAILFILE     health endpoint: 200 "ok", 503 once FAILFILE exists
  helpers.py watch DNSPORT NAME WANT T0 LIMIT
                                    polls NAME (A) over UDP every 20 ms until the
                                    answer is WANT; prints seconds since T0 (epoch)
  helpers.py tcp DNSPORT            TCP abuse: 600 idle connections, a slow client,
                                    a pipelining client; prints key=value lines
"""
import http.server
import os
import random
import socket
import struct
import sys
import threading
import time


def query(name, qtype=1, qid=None):
    qid = random.randrange(65536) if qid is None else qid
    out = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00" + struct.pack(">HH", qtype, 1)


def first_a(resp):
    """The first A address in a response (enough parsing for our answers)."""
    qd, an = struct.unpack(">HH", resp[4:8])
    at = 12
    for _ in range(qd):
        while resp[at] != 0:
            if resp[at] & 0xC0:
                at += 1
                break
            at += resp[at] + 1
        at += 5
    for _ in range(an):
        if resp[at] & 0xC0:
            at += 2
        else:
            while resp[at] != 0:
                at += resp[at] + 1
            at += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", resp[at:at + 10])
        at += 10
        if rtype == 1 and rdlen == 4:
            return socket.inet_ntoa(resp[at:at + 4])
        at += rdlen
    return None


def stub(port, failfile):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            down = os.path.exists(failfile)
            body = b"down" if down else b"ok"
            self.send_response(503 if down else 200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H)
    srv.daemon_threads = True
    srv.serve_forever()


def watch(dnsport, name, want, t0, limit):
    t0, limit = float(t0), float(limit)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    s.connect(("127.0.0.1", int(dnsport)))
    answered = lost = 0
    while time.time() - t0 < limit:
        try:
            s.send(query(name))
            addr = first_a(s.recv(4096))
            answered += 1
            if addr == want:
                print(f"{time.time() - t0:.3f} answered={answered} lost={lost}")
                return
        except socket.timeout:
            lost += 1
        time.sleep(0.02)
    print(f"never answered={answered} lost={lost}")


def recv_frame(s):
    hdr = b""
    while len(hdr) < 2:
        c = s.recv(2 - len(hdr))
        if not c:
            return None
        hdr += c
    n = struct.unpack(">H", hdr)[0]
    body = b""
    while len(body) < n:
        c = s.recv(n - len(body))
        if not c:
            return None
        body += c
    return body


def tcp_query(port, timeout=2.0):
    """One query on a fresh connection: (seconds, answered?)."""
    t = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        q = query("status.keiko.example.com")
        s.sendall(struct.pack(">H", len(q)) + q)
        r = recv_frame(s)
        s.close()
        return time.time() - t, r is not None and first_a(r) == "192.0.2.80"
    except OSError:
        return time.time() - t, False


def closed_by_peer(s):
    """True when the server has closed (EOF/RST) without blocking."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


def peer_finished(s):
    """The connection is in CLOSE_WAIT (or gone): the server closed it."""
    try:
        state = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return True
    return state != 1  # 1 = ESTABLISHED


def tcp(port):
    port = int(port)
    # (d1) 600 idle connections; those beyond the cap are closed at once.
    conns = []
    for _ in range(600):
        try:
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            conns.append(None)
    time.sleep(0.5)
    closed = sum(1 for c in conns if c is None or closed_by_peer(c))
    print(f"idle_opened=600")
    print(f"idle_closed_at_once={closed}")
    print(f"idle_kept={600 - closed}")
    took, ok = tcp_query(port)
    print(f"fresh_query_while_full_answered={ok} fresh_query_while_full_s={took:.3f}")
    # How long until a fresh query gets through (idle timeout frees slots).
    t = time.time()
    while time.time() - t < 15:
        took, ok = tcp_query(port, timeout=1.0)
        if ok:
            break
        time.sleep(0.2)
    print(f"fresh_query_answered_after_s={time.time() - t:.3f} answered={ok}")
    t = time.time()
    while time.time() - t < 15:
        if all(c is None or closed_by_peer(c) for c in conns):
            break
        time.sleep(0.2)
    still = sum(1 for c in conns if c is not None and not closed_by_peer(c))
    print(f"idle_all_closed_after_s={time.time() - t:.3f} idle_still_open={still}")
    for c in conns:
        if c:
            c.close()

    # (d2) a slow client: one byte per second.
    q = query("status.keiko.example.com")
    framed = struct.pack(">H", len(q)) + q
    slow = socket.create_connection(("127.0.0.1", port), timeout=2)
    result = {}

    def drip():
        t = time.time()
        for b in framed:
            try:
                slow.send(bytes([b]))
            except OSError:
                break
            deadline = time.time() + 1.0
            while time.time() < deadline:
                if closed_by_peer(slow):
                    result["closed_after"] = round(time.time() - t, 3)
                    return
                time.sleep(0.05)
        result["closed_after"] = None

    th = threading.Thread(target=drip)
    th.start()
    others = [tcp_query(port) for _ in range(5)]
    th.join(timeout=40)
    slow.close()
    print(f"slow_client_closed_after_s={result.get('closed_after')}")
    print(f"others_during_slow_answered={sum(ok for _, ok in others)}/5 "
          f"max_s={max(t for t, _ in others):.3f}")

    # (d3) pipelining 1000 queries without reading.
    pipe = socket.create_connection(("127.0.0.1", port), timeout=2)
    pipe.setblocking(False)
    sent = 0
    blob = b"".join(struct.pack(">H", len(q)) + q for q in
                    (query("status.keiko.example.com") for _ in range(1000)))
    t = time.time()
    view = memoryview(blob)
    while view and time.time() - t < 10:
        try:
            n = pipe.send(view)
            view = view[n:]
            sent += n
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    print(f"pipeline_bytes_sent={sent}/{len(blob)} in {time.time() - t:.3f}s")
    others = [tcp_query(port) for _ in range(5)]
    print(f"others_during_pipeline_answered={sum(ok for _, ok in others)}/5 "
          f"max_s={max(t for t, _ in others):.3f}")
    t = time.time()
    while time.time() - t < 15:
        if peer_finished(pipe):
            break
        time.sleep(0.1)
    # Answers wait unread in our buffer, so EOF is invisible to recv: the
    # TCP state (CLOSE_WAIT) says the server gave up on a client that never
    # reads.
    print(f"pipeline_client_closed_after_s={time.time() - t:.3f} closed={peer_finished(pipe)}")
    pipe.close()
    took, ok = tcp_query(port)
    print(f"final_fresh_query_answered={ok} s={took:.3f}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"stub": stub, "watch": watch, "tcp": tcp}[cmd](*args)
