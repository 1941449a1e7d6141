#!/usr/bin/env python3
"""Live-stream bench client (aiohttp), driven by bench/fanout.sh.

  latency  N SSE clients on the staff feed (`/api/v1/events?types=order.placed`), spread
           over P processes; then M orders placed one after another; every client records
           when each `order.placed` arrived. Prints p50/p99 of arrival - `occurred_at` (the
           outbox row's commit-time stamp: includes the relay's polling interval) and of
           arrival - the moment the order's POST returned to the placing client.
  idle     C idle connections (SSE on the feed, or WebSocket subscribed to the feed), then
           the server's RSS (VmRSS of --pid) before and after; holds, then closes.

The SSE parsing here is a bench's minimal `id:/event:/data:` reader, not a client library.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import sys
import time
import urllib.request
from datetime import datetime

import aiohttp


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def parse_ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


async def sse_reader(session, url, token, want, ready, out):
    headers = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
    async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as res:
        assert res.status == 200, res.status
        ready()
        data = None
        got = 0
        while got < want:
            line = await res.content.readline()
            if not line:
                return
            arrived = time.time()
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data = line[5:].lstrip()
            elif not line and data is not None:
                env = json.loads(data)
                out.append((env["aggregate_id"], parse_ts(env["occurred_at"]), arrived))
                data = None
                got += 1


def latency_worker(base, token, clients, orders, ready_q, result_q):
    async def run():
        out = []
        url = base + "/api/v1/events?types=order.placed"
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as session:
            opened = 0

            def ready():
                nonlocal opened
                opened += 1
                if opened == clients:
                    ready_q.put(clients)

            tasks = [asyncio.create_task(sse_reader(session, url, token, orders, ready, out)) for _ in range(clients)]
            await asyncio.wait(tasks, timeout=120)
        result_q.put(out)

    asyncio.run(run())


def place_order(base, token, sku):
    body = json.dumps({"line_items": [{"sku": sku, "quantity": 1}]}).encode()
    req = urllib.request.Request(base + "/api/v1/orders", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=15) as res:
        order = json.loads(res.read())
    return order["id"], time.time()


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def latency(args):
    ready_q, result_q = mp.Queue(), mp.Queue()
    per = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0) for i in range(args.procs)]
    procs = [mp.Process(target=latency_worker, args=(args.base, args.staff_token, n, args.orders, ready_q, result_q)) for n in per]
    for p in procs:
        p.start()
    for _ in procs:
        ready_q.get(timeout=120)
    time.sleep(1)
    returned = {}
    for _ in range(args.orders):
        oid, t = place_order(args.base, args.customer_token, args.sku)
        returned[oid] = t
        time.sleep(args.gap_ms / 1000)
    rows = []
    for _ in procs:
        rows.extend(result_q.get(timeout=180))
    for p in procs:
        p.join(timeout=10)
    from_commit = [(arr - occ) * 1000 for (_, occ, arr) in rows]
    from_return = [(arr - returned[a]) * 1000 for (a, _, arr) in rows if a in returned]
    result = {
        "clients": args.clients,
        "orders": args.orders,
        "deliveries": len(rows),
        "expected_deliveries": args.clients * args.orders,
        "ms_from_occurred_at": {"p50": pct(from_commit, 50), "p99": pct(from_commit, 99), "max": max(from_commit, default=0)},
        "ms_from_post_returned": {"p50": pct(from_return, 50), "p99": pct(from_return, 99), "max": max(from_return, default=0)},
    }
    print(json.dumps(result, indent=2))


async def idle_sse(session, url, token, opened):
    headers = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
    res = await session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=None))
    assert res.status == 200, res.status
    opened.append(res)


async def idle_ws(session, url, token, opened):
    ws = await session.ws_connect(url, headers={"Authorization": "Bearer " + token}, autoping=True, heartbeat=None)
    await ws.send_str(json.dumps({"type": "subscribe", "topic": "feed"}))
    msg = await ws.receive(timeout=30)
    assert json.loads(msg.data)["type"] == "subscribed", msg.data
    opened.append(ws)


def idle(args):
    async def run():
        before = rss_kib(args.pid)
        conn = aiohttp.TCPConnector(limit=0, force_close=False)
        opened = []
        async with aiohttp.ClientSession(connector=conn) as session:
            if args.kind == "sse":
                url, open_one = args.base + "/api/v1/events", idle_sse
            else:
                url, open_one = args.base.replace("http://", "ws://") + "/api/v1/ws", idle_ws
            t0 = time.time()
            for start in range(0, args.connections, args.batch):
                n = min(args.batch, args.connections - start)
                await asyncio.gather(*(open_one(session, url, args.staff_token, opened) for _ in range(n)))
            opened_s = time.time() - t0
            await asyncio.sleep(args.settle)
            after = rss_kib(args.pid)
            print(json.dumps({
                "kind": args.kind,
                "connections": len(opened),
                "open_seconds": round(opened_s, 1),
                "server_rss_mib_before": round(before / 1024, 1),
                "server_rss_mib_with_connections": round(after / 1024, 1),
                "kib_per_connection": round((after - before) / max(1, len(opened)), 1),
            }, indent=2))
            for c in opened:
                c.close() if args.kind == "sse" else await c.close()

    asyncio.run(run())


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--base", required=True)
    lat.add_argument("--staff-token", required=True)
    lat.add_argument("--customer-token", required=True)
    lat.add_argument("--sku", required=True)
    lat.add_argument("--clients", type=int, default=1000)
    lat.add_argument("--orders", type=int, default=50)
    lat.add_argument("--procs", type=int, default=4)
    lat.add_argument("--gap-ms", type=int, default=100)
    idl = sub.add_parser("idle")
    idl.add_argument("--base", required=True)
    idl.add_argument("--staff-token", required=True)
    idl.add_argument("--pid", type=int, required=True)
    idl.add_argument("--kind", choices=["sse", "ws"], required=True)
    idl.add_argument("--connections", type=int, default=10000)
    idl.add_argument("--batch", type=int, default=250)
    idl.add_argument("--settle", type=float, default=3)
    args = ap.parse_args()
    latency(args) if args.cmd == "latency" else idle(args)


if __name__ == "__main__":
    sys.exit(main())
