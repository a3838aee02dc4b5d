#!/usr/bin/env python3
"""Bytes an origin sends for range traffic through lacquer (not a timing benchmark).

    benches/ranges_origin_bytes.py [LACQUER_BIN]

Starts an origin on loopback serving one object of SIZE bytes (default 64 MiB, over the
default max_object_size of 16 MiB) that answers a single byte range with a 206 and
counts the body bytes it sends, starts lacquer in quick mode in front of it, and plays
a media player's pattern: ranges of one MiB at scattered offsets, each asked twice.
Prints, per request, the status, Cache-Status and the origin bytes it cost, then the
totals. Standard library only.
"""

import http.client
import http.server
import os
import socket
import subprocess
import sys
import threading
import time

SIZE = int(os.environ.get("SIZE", 64 << 20))
CHUNK = 1 << 20
BODY = bytes((i * 7 + 3) % 251 for i in range(SIZE))
sent = {"bytes": 0, "requests": 0}


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path != "/video.mp4":
            # lacquer's health probes (quick mode probes "/"): not counted.
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        first, last = 0, SIZE - 1
        status = 200
        asked = self.headers.get("Range", "")
        if asked.startswith("bytes=") and "," not in asked:
            a, _, b = asked[6:].partition("-")
            if a.isdigit():
                first = int(a)
                last = min(int(b), SIZE - 1) if b.isdigit() else SIZE - 1
                status = 206
        body = BODY[first : last + 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "max-age=600")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{SIZE}")
        self.end_headers()
        sent["requests"] += 1
        # Written and counted 64 KiB at a time: a fill lacquer gives up on (nobody left
        # to read a body it does not keep) counts what was written until then.
        done = 0
        try:
            for at in range(0, len(body), 64 << 10):
                piece = body[at : at + (64 << 10)]
                self.wfile.write(piece)
                done += len(piece)
                sent["bytes"] += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if os.environ.get("TRACE"):
            print("origin sent", self.path, asked or "-", done, file=sys.stderr)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/lacquer"
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    port = free_port()
    node = subprocess.Popen(
        [binary, "run", "--listen", f"127.0.0.1:{port}",
         "--origin", f"127.0.0.1:{origin.server_port}", "--admin", "off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        offsets = [0, 40, 8, 63, 21, 8, 55, 0, 33, 47]
        received = 0
        print(f"object {SIZE} B; ranges of {CHUNK} B, each asked twice")
        for k in offsets:
            for _ in range(2):
                before = sent["bytes"]
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                rng = f"bytes={k * CHUNK}-{(k + 1) * CHUNK - 1}"
                c.request("GET", "/video.mp4", headers={"Range": rng})
                r = c.getresponse()
                data = r.read()
                received += len(data)
                c.close()
                print(f"{rng:28} {r.status} {len(data):>9} B  origin {sent['bytes'] - before:>9} B"
                      f"  {r.getheader('Cache-Status')}")
        print(f"client received {received} B; origin sent {sent['bytes']} B"
              f" in {sent['requests']} requests")
    finally:
        node.terminate()
        node.wait(timeout=10)
        origin.shutdown()


if __name__ == "__main__":
    main()
