#!/usr/bin/env python3
"""Measurement helpers for bench/run.sh (stdlib only, Linux /proc).

  probe.py port                      print a free TCP port on 127.0.0.1
  probe.py mem PID                   print the process's RSS and peak RSS in KiB
  probe.py scenario --pid PID --name NAME --out DIR -- wrk ARGS...
                                     run wrk once and measure the server around it
  probe.py summary DIR               print the results in DIR as a table

Server CPU is utime+stime of the whole server process (all threads) from
/proc/PID/stat, sampled right before and after wrk; divided by the requests wrk
completed it gives server CPU µs per request, the unit of DESIGN.md's budgets. The
machine-wide busy time from /proc/stat and wrk's own CPU (rusage of the child) are
recorded too, so CPU taken by anything else on the box (a compiler, tests) shows up.
"""

import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid):
    """utime + stime of the process, all threads included, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu_s():
    """(busy, total) CPU seconds of the whole machine since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(parts[:8])  # user nice system idle iowait irq softirq steal
    idle = parts[3] + parts[4]
    return (total - idle) / TICK, total / TICK


def mem_kib(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def scenario(argv):
    opts, wrk = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    o = dict(zip(opts[::2], opts[1::2]))
    pid, name, out = int(o["--pid"]), o["--name"], Path(o["--out"])
    duration_s = float(o.get("--duration", "15"))
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server0, (busy0, total0), t0 = proc_cpu_s(pid), machine_cpu_s(), time.monotonic()
    res = subprocess.run(wrk, capture_output=True, text=True, timeout=duration_s + 60)
    server1, (busy1, total1), t1 = proc_cpu_s(pid), machine_cpu_s(), time.monotonic()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss, hwm = mem_kib(pid)
    (out / f"{name}.wrk.txt").write_text(res.stdout + res.stderr)
    line = next((l for l in res.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if res.returncode != 0 or line is None:
        sys.exit(f"probe: wrk failed for {name} (exit {res.returncode}):\n{res.stdout}{res.stderr}")
    w = json.loads(line[len("BENCH_JSON "):])
    wall = t1 - t0
    requests = w["requests"]
    server_s = server1 - server0
    wrk_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    machine_busy = busy1 - busy0
    result = {
        "name": name,
        "wrk_args": wrk,
        "requests": requests,
        "requests_per_s": requests / (w["duration_us"] / 1e6),
        "latency_ms": {k: v / 1000 for k, v in w["latency_us"].items()},
        "errors": w["errors"],
        "statuses": w["statuses"],
        "error_samples": w["error_samples"],
        "server_cpu_s": server_s,
        "server_cpu_us_per_request": server_s * 1e6 / requests if requests else None,
        "server_cores": server_s / wall,
        "wrk_cores": wrk_s / wall,
        "machine_busy_cores": machine_busy / wall,
        "other_cores": max(0.0, (machine_busy - server_s - wrk_s) / wall),
        "machine_cores": (total1 - total0) / wall,
        "server_rss_kib_after": rss,
        "server_peak_rss_kib": hwm,
    }
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    print(f"{name}: {result['requests_per_s']:.0f} req/s, p99 {result['latency_ms']['p99']:.2f} ms, "
          f"server {result['server_cpu_us_per_request']:.1f} µs CPU/request, "
          f"non-2xx/3xx {w['errors']['status']}")


def summary(out):
    out = Path(out)
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    setup = json.loads((out / "setup.json").read_text()) if (out / "setup.json").exists() else {}
    files = sorted((p for p in out.glob("*.json") if p.name not in ("meta.json", "setup.json")),
                   key=lambda p: p.stat().st_mtime)
    results = [json.loads(p.read_text()) for p in files]
    print()
    print(f"orderly benchmark  {meta.get('started', '')}  commit {meta.get('commit', '?')}  "
          f"{meta.get('cpus', '?')} CPUs  results in {out}")
    print(f"ready after {meta.get('ready_ms', '?')} ms; idle RSS {meta.get('idle_rss_kib', 0) / 1024:.1f} MiB at start, "
          f"{meta.get('setup_rss_kib', 0) / 1024:.1f} MiB after setup, "
          f"{meta.get('rest_rss_kib', 0) / 1024:.1f} MiB 5 s after the load (peak {meta.get('peak_rss_kib', 0) / 1024:.1f} MiB); "
          f"product body {setup.get('product_get_body_bytes', '?')} bytes")
    head = (f"{'scenario':<22}{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            f"{'non2xx':>8}{'sockerr':>8}{'srv µs/req':>11}{'srv cores':>10}{'wrk cores':>10}"
            f"{'other':>7}{'RSS MiB':>8}")
    print(head)
    print("-" * len(head))
    for r in results:
        e = r["errors"]
        sock = e["connect"] + e["read"] + e["write"] + e["timeout"]
        conns = next((a[2:] for a in r["wrk_args"] if a.startswith("-c")), "?")
        lat = r["latency_ms"]
        print(f"{r['name']:<22}{conns:>6}{r['requests_per_s']:>9.0f}{lat['p50']:>9.2f}{lat['p90']:>9.2f}"
              f"{lat['p99']:>9.2f}{lat['max']:>9.1f}{e['status']:>8}{sock:>8}"
              f"{r['server_cpu_us_per_request']:>11.1f}{r['server_cores']:>10.2f}{r['wrk_cores']:>10.2f}"
              f"{r['other_cores']:>7.2f}{r['server_rss_kib_after'] / 1024:>8.1f}")
        if r["statuses"]:
            print(f"{'':<22}statuses: {json.dumps(r['statuses'], sort_keys=True)}")
        for code, body in sorted(r["error_samples"].items()):
            print(f"{'':<22}first {code}: {body[:200]}")
    if meta.get("server_log_lines") is not None:
        print(f"server log: {meta['server_log_lines']} lines at warn or above "
              f"({meta.get('server_log_errors', 0)} at error); see {out}/server.log")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "port":
        print(free_port())
    elif cmd == "mem":
        print(*mem_kib(int(args[0])))
    elif cmd == "scenario":
        scenario(args)
    elif cmd == "summary":
        summary(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
