#!/usr/bin/env python3
"""A stand-in for one region's API health endpoint, for the lab.

GET /health answers 200 "ok" while the region is up and 503 while it is
failed; POST (or GET) /fail and /recover switch it. Usage:
    standin.py ADDRESS [PORT]
"""

import http.server
import sys
import threading


class State:
    failed = False
    lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self):
        path = self.path.split("?")[0]
        if path == "/health":
            with State.lock:
                failed = State.failed
            self.reply(503 if failed else 200, "failed\n" if failed else "ok\n")
        elif path in ("/fail", "/recover"):
            with State.lock:
                State.failed = path == "/fail"
            self.reply(200, path[1:] + "ed\n")
        else:
            self.reply(404, "not found\n")

    do_GET = route
    do_POST = route

    def log_message(self, format, *args):  # quiet: the drills probe often
        pass


def main():
    addr = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    server = http.server.ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    print(f"standin: serving {addr}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
