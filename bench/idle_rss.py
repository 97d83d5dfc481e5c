#!/usr/bin/env python3
"""Idle-client memory: RSS of a lockroute process with N idle clients, minus RSS with 0, over N.

    bench/idle_rss.py PID PORT [N]

The lockroute at PORT must run with --client-auth trust (loopback only), so that a bare socket
can log in without SCRAM. Each client sends a StartupMessage, waits for ReadyForQuery, runs one
`select 1` so that its upstream and buffers are really in use, and then stays idle.
"""
import socket
import struct
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def read_until_ready(sock):
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("server closed the connection")
        buf += chunk
        # Walk whole messages; stop at ReadyForQuery.
        pos = 0
        while len(buf) - pos >= 5:
            tag = buf[pos:pos + 1]
            (length,) = struct.unpack("!I", buf[pos + 1:pos + 5])
            if len(buf) - pos < length + 1:
                break
            if tag == b"E":
                raise RuntimeError(f"error from server: {buf[pos:pos + length + 1]!r}")
            if tag == b"Z":
                return
            pos += length + 1
        buf = buf[pos:]


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    params = b"user\0app\0database\0app\0\0"
    body = struct.pack("!I", 196608) + params
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    read_until_ready(s)
    q = b"select 1\0"
    s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
    read_until_ready(s)
    return s


def main():
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    # Warm up: one client through, so one-time allocations are not counted per client.
    connect(port).close()
    time.sleep(1)
    before = rss_kib(pid)
    clients = [connect(port) for _ in range(n)]
    time.sleep(2)
    after = rss_kib(pid)
    per_client = (after - before) / n
    print(f"clients={n} rss_before_kib={before} rss_after_kib={after} per_idle_client_kib={per_client:.1f}")
    for c in clients:
        c.close()


if __name__ == "__main__":
    main()
