#!/usr/bin/env python3
"""A PostgreSQL wire proxy that counts SQL round trips, for bench/checkout.sh.

  pgwire.py --listen PORT --upstream HOST:PORT --stats FILE

Forwards every client connection to the upstream server and reads the frontend protocol
(the client must not use TLS: sslmode=disable). A round trip ends at each message after
which the client waits for the server: Sync ('S', ending an extended-protocol exchange, a
prepared statement's bind/execute or a pool's ping) and Query ('Q', a simple query such as
BEGIN or COMMIT). Each is attributed to what it carried: the statement bound since the last
Sync (named by a few words of its SQL, which sqlx sends once per connection in Parse), a
bare Sync is a "ping", a Query is "simple: <first words>". After each round trip the totals
are written to FILE as JSON: {"round_trips": N, "by_kind": {kind: n}}.
"""
import argparse
import json
import os
import socket
import struct
import threading

lock = threading.Lock()
totals = {"round_trips": 0, "by_kind": {}}


def kind_of(sql):
    s = " ".join(sql.split())
    low = s.lower()
    if "sandbox_" in low:
        return "payment gateway (sandbox ledger)"
    for needle, name in [
        ("with want as", "place order (reserve + order + lines + events)"),
        ("with o as (update orders", "mark paid (+ event, returns the order)"),
        ("from products where sku in", "price lookup"),
        ("idempotency_key = ", "idempotency lookup"),
    ]:
        if needle in low:
            return name
    return s[:60]


def count(kind, stats_path):
    with lock:
        totals["round_trips"] += 1
        totals["by_kind"][kind] = totals["by_kind"].get(kind, 0) + 1
        tmp = stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(totals, f)
        os.replace(tmp, stats_path)


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def client_side(client, server, stats_path):
    statements = {}  # prepared statement name -> kind
    bound = None
    try:
        (n,) = struct.unpack("!I", read_exact(client, 4))
        server.sendall(struct.pack("!I", n) + read_exact(client, n - 4))
        while True:
            head = read_exact(client, 5)
            (n,) = struct.unpack("!I", head[1:])
            body = read_exact(client, n - 4)
            t = head[:1]
            if t == b"P":
                name, _, rest = body.partition(b"\0")
                sql = rest.partition(b"\0")[0].decode("utf-8", "replace")
                statements[name] = kind_of(sql)
                bound = bound or "prepare: " + statements[name]
            elif t == b"B":
                stmt = body.split(b"\0")[1]
                bound = statements.get(stmt, "unnamed statement")
            elif t == b"S":
                count(bound or "ping", stats_path)
                bound = None
            elif t == b"Q":
                q = " ".join(body.rstrip(b"\0").decode("utf-8", "replace").split()[:2])
                count("simple: " + q, stats_path)
            server.sendall(head + body)
    except (EOFError, OSError):
        pass
    finally:
        for s in (client, server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--stats", required=True)
    a = ap.parse_args()
    host, port = a.upstream.rsplit(":", 1)
    with open(a.stats, "w") as f:
        json.dump(totals, f)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.listen))
    ls.listen(64)
    while True:
        client, _ = ls.accept()
        server = socket.create_connection((host, int(port)))
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pump, args=(server, client), daemon=True).start()
        threading.Thread(target=client_side, args=(client, server, a.stats), daemon=True).start()


if __name__ == "__main__":
    main()
