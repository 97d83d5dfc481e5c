#!/usr/bin/env python3
"""Idle-client memory: RSS of a lockroute process with N idle clients, minus RSS with 0, over N.

    bench/idle_rss.py PID PORT [N]
    bench/idle_rss.py PID PORT N [--scram PASSWORD] [--burst] [--tls]

Each client sends a StartupMessage (user and database `app`), waits for ReadyForQuery, runs one
`select 1` so that its upstream and buffers are really in use, and then stays idle. Without
--scram the lockroute at PORT must run with --client-auth trust (loopback only). With --scram
each client logs in with SCRAM-SHA-256, as a driver does; --burst logs all N in at once (64 at a
time) and reads RSS right after the last one, while the runtime's blocking threads that ran
the upstream logins' key derivation are still alive, and again 15 s later, when they are gone.
--tls asks for TLS first, as libpq does with sslmode=prefer (psycopg's default): the lockroute
must run with --client-tls on.
"""
import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def read_until_ready(sock, buf=b""):
    """Reads whole messages until ReadyForQuery; an ErrorResponse is raised."""
    while True:
        tag, body, buf = read_message(sock, buf)
        if tag == b"E":
            raise RuntimeError(f"error from server: {body!r}")
        if tag == b"Z":
            return


def read_message(sock, buf):
    """One whole message: (tag, body, rest of the buffer)."""
    while True:
        if len(buf) >= 5:
            (length,) = struct.unpack("!I", buf[1:5])
            if len(buf) >= length + 1:
                return buf[0:1], buf[5:length + 1], buf[length + 1:]
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("server closed the connection")
        buf += chunk


def scram_login(sock, password):
    """SCRAM-SHA-256 (RFC 7677), as libpq does it; returns what followed AuthenticationOk."""
    buf = b""
    tag, body, buf = read_message(sock, buf)
    if tag != b"R" or struct.unpack("!I", body[:4])[0] != 10:
        raise RuntimeError(f"expected AuthenticationSASL, got {tag!r} {body!r}")
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n=,r={nonce}"
    first = ("n,," + first_bare).encode()
    mech = b"SCRAM-SHA-256\0"
    payload = mech + struct.pack("!I", len(first)) + first
    sock.sendall(b"p" + struct.pack("!I", len(payload) + 4) + payload)
    tag, body, buf = read_message(sock, buf)
    server_first = body[4:].decode()
    fields = dict(f.split("=", 1) for f in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_bare = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    final = f"{final_bare},p={proof}".encode()
    sock.sendall(b"p" + struct.pack("!I", len(final) + 4) + final)
    tag, body, buf = read_message(sock, buf)  # SASLFinal
    if tag != b"R":
        raise RuntimeError(f"SCRAM failed: {tag!r} {body!r}")
    return buf


TLS = None


def connect(port, password=None):
    s = socket.create_connection(("127.0.0.1", port))
    if TLS is not None:
        # SSLRequest, as libpq sends it with sslmode=prefer or require.
        s.sendall(struct.pack("!II", 8, 80877103))
        if s.recv(1) != b"S":
            raise RuntimeError("the server refused TLS")
        s = TLS.wrap_socket(s)
    params = b"user\0app\0database\0app\0\0"
    body = struct.pack("!I", 196608) + params
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    rest = scram_login(s, password) if password is not None else b""
    read_until_ready(s, rest)
    q = b"select 1\0"
    s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
    read_until_ready(s)
    return s


def main():
    args = sys.argv[1:]
    password = None
    if "--scram" in args:
        at = args.index("--scram")
        password = args[at + 1]
        del args[at:at + 2]
    burst = "--burst" in args
    if "--tls" in args:
        global TLS
        TLS = ssl.create_default_context()
        TLS.check_hostname = False
        TLS.verify_mode = ssl.CERT_NONE
    args = [a for a in args if a not in ("--burst", "--tls")]
    pid, port = int(args[0]), int(args[1])
    n = int(args[2]) if len(args) > 2 else 1000
    # Warm up: one client through, so one-time allocations are not counted per client.
    connect(port, password).close()
    time.sleep(1)
    before = rss_kib(pid)
    if burst:
        with ThreadPoolExecutor(max_workers=64) as pool:
            clients = list(pool.map(lambda _: connect(port, password), range(n)))
        threads = len(os.listdir(f"/proc/{pid}/task"))
        after = rss_kib(pid)
        print(f"clients={n} scram burst: rss_before_kib={before} rss_right_after_kib={after} "
              f"per_idle_client_kib={(after - before) / n:.1f} threads={threads}")
        time.sleep(15)
        threads = len(os.listdir(f"/proc/{pid}/task"))
        after = rss_kib(pid)
        print(f"clients={n} 15 s later: rss_kib={after} per_idle_client_kib={(after - before) / n:.1f} "
              f"threads={threads}")
    else:
        clients = [connect(port, password) for _ in range(n)]
        time.sleep(2)
        after = rss_kib(pid)
        per_client = (after - before) / n
        print(f"clients={n} rss_before_kib={before} rss_after_kib={after} per_idle_client_kib={per_client:.1f}")
    for c in clients:
        c.close()


if __name__ == "__main__":
    main()
