"""Benchmark: the studio server under a bounded load, on 127.0.0.1 with the embedded model.

    python bench/bench_server.py [--clients 8] [--requests 200] [--steps 4] [--quick]

Starts ``latentscape serve`` as a fresh process on a free port (its own temp data folder), then ``--clients``
threads send ``--requests`` small A1111 ``txt2img`` calls between them (64x64, ``--steps`` steps, distinct
seeds), each waiting for its images as webuiapi does. Reported: throughput (images/s), p50/p95 latency of a
call, lost jobs (a call without its image, or a seed's image missing from the job store) and duplicated jobs
(more rows or output folders than requests), and the server's RSS before and after the load (from /proc).
``--quick``: 2 clients, 16 requests (a smoke run). Prints a ready-to-paste RESULTS.md row.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=None, help="torch threads in the server (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="2 clients, 16 requests")
    args = p.parse_args()
    if args.quick:
        args.clients, args.requests = 2, 16
    import httpx

    data = Path(tempfile.mkdtemp(prefix="bench-server-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "latentscape.interfaces.cli", "serve", "--port", str(port), "--data", str(data / "data")]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    log = open(data / "serve.log", "wb")
    start = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=log, stderr=log)
    try:
        while True:
            if server.poll() is not None:
                sys.exit(f"the server exited: {(data / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        startup = time.perf_counter() - start
        # one warm-up call (first-call allocations), not counted
        httpx.post(url + "/sdapi/v1/txt2img", json={"prompt": "warm up", "steps": args.steps, "seed": 0}, timeout=600)
        rss_before = rss_mb(server.pid)

        latencies: list[float] = []
        got: dict[int, int] = {}
        errors: list[str] = []
        lock = threading.Lock()
        todo = iter(range(1, args.requests + 1))

        def client() -> None:
            with httpx.Client(timeout=600) as http:
                while True:
                    with lock:
                        seed = next(todo, None)
                    if seed is None:
                        return
                    t0 = time.perf_counter()
                    try:
                        r = http.post(url + "/sdapi/v1/txt2img", json={"prompt": "cat face, google style", "seed": seed,
                                                                       "steps": args.steps, "width": 64, "height": 64})
                        r.raise_for_status()
                        body = r.json()
                        info = json.loads(body["info"])
                        ok = len(body["images"]) == 1 and info["seed"] == seed and base64.b64decode(body["images"][0])[:4] == b"\x89PNG"
                    except Exception as exc:  # counted as lost, reported
                        with lock:
                            errors.append(f"seed {seed}: {exc}")
                        continue
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                        got[seed] = got.get(seed, 0) + (1 if ok else 0)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        rss_after = rss_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    with sqlite3.connect(data / "data" / "jobs.sqlite3") as db:
        rows = db.execute("SELECT request, status FROM jobs").fetchall()
    seeds_done = [json.loads(r)["seed"] for r, s in rows if s == "done"]
    bench_seeds = [s for s in seeds_done if s != 0]
    folders = [p for p in (data / "data" / "jobs").iterdir() if not p.name.startswith(".")]
    lost = args.requests - sum(1 for s in range(1, args.requests + 1) if got.get(s) == 1 and s in bench_seeds)
    duplicated = (len(rows) - 1 - args.requests) + (len(folders) - len(rows)) + (len(bench_seeds) - len(set(bench_seeds)))
    mean = statistics.mean(latencies) if latencies else float("nan")
    print(f"server start-up (fresh process to /health): {startup:.1f} s")
    print(f"{args.requests} txt2img ({args.steps} steps, 64x64) from {args.clients} clients in {elapsed:.1f} s: "
          f"{args.requests / elapsed:.2f} images/s; latency p50 {percentile(latencies, 0.5):.2f} s, "
          f"p95 {percentile(latencies, 0.95):.2f} s (mean {mean:.2f} s)")
    print(f"lost jobs: {lost}, duplicated jobs: {duplicated}; server RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after")
    if errors:
        print("errors:", *errors[:5], sep="\n  ")
    print("\nRESULTS.md row:")
    print("| clients | requests | steps | images/s | p50 | p95 | lost | duplicated | RSS before -> after |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.clients} | {args.requests} | {args.steps} | {args.requests / elapsed:.2f} | {percentile(latencies, 0.5):.2f} s | "
          f"{percentile(latencies, 0.95):.2f} s | {lost} | {duplicated} | {rss_before:.0f} -> {rss_after:.0f} MB |")
    if lost or duplicated:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
