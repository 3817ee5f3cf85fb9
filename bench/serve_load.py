"""Bounded load test of ``rtenhance serve`` on 127.0.0.1, used by ``bench/streams.py --serve``.

The server runs as its own process pinned to one core; the clients run in another process (on the other
cores when there are any). Each client streams 16 kHz pcm16 in real time, one hop (16 ms) per message,
for a fixed time. Reported per run: streams held to the end, delay from sending a hop to receiving its
output hop (p50, p99; this includes waiting for the server's next tick), and the server's own counts of
skipped and passed-through hops and its step time, read from its log.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HOP = 256
HOP_S = HOP / 16000
HOST = "127.0.0.1"
SERVER_START_TIMEOUT_S = 60.0
CONNECT_SPREAD_S = 2.0  # clients connect spread over this long
MS_PER_S = 1e3
STATS_LINE = re.compile(r"(\d+) streams; (?:step p50 ([\d.]+) ms, p99 ([\d.]+) ms, ([\d.]+) us per stream-hop|no steps); "
                        r"hops (\d+), skipped (\d+), passthrough (\d+), late ticks (\d+)")



def fmt(value: object, spec: str) -> str:
    """``value`` formatted with ``spec``, or "-" for None."""
    return format(value, spec) if value is not None else "-"

def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def _client(uri: str, seconds: float, delay_s: float, out: dict) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    await asyncio.sleep(delay_s)
    sent: list[float] = []
    delays: list[float] = []
    hop = (np.random.default_rng(len(out)).standard_normal(HOP) * 1600).astype("<i2").tobytes()
    try:
        async with connect(uri, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "hello", "sample_rate": 16000, "format": "pcm16"}))
            json.loads(await ws.recv())

            async def receive() -> None:
                try:
                    async for _ in ws:
                        delays.append(time.perf_counter() - sent[len(delays)])
                except ConnectionClosed:
                    return

            receiver = asyncio.create_task(receive())
            start = time.perf_counter()
            for k in range(int(seconds / HOP_S)):
                pause = start + k * HOP_S - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                sent.append(time.perf_counter())
                await ws.send(hop)
            await asyncio.sleep(0.2)
            receiver.cancel()
            out[id(sent)] = {"held": True, "delays": delays, "sent": len(sent)}
    except (ConnectionClosed, OSError) as exc:
        out[id(sent)] = {"held": False, "delays": delays, "sent": len(sent), "error": str(exc)}


def _client_process(port: int, streams: int, seconds: float, results) -> None:
    async def main() -> dict:
        out: dict = {}
        uri = f"ws://{HOST}:{port}"
        await asyncio.gather(*(_client(uri, seconds, CONNECT_SPREAD_S * i / streams, out) for i in range(streams)))
        return out

    out = asyncio.run(main())
    delays = np.concatenate([np.asarray(o["delays"]) for o in out.values()] or [np.zeros(0)])
    results.put({"held": sum(o["held"] for o in out.values()), "sent": sum(o["sent"] for o in out.values()),
                 "received": int(delays.shape[0]),
                 "delay_p50_ms": float(np.percentile(delays, 50) * MS_PER_S) if delays.size else None,
                 "delay_p99_ms": float(np.percentile(delays, 99) * MS_PER_S) if delays.size else None})


def _run_once(streams: int, seconds: float, core: int, weights: str | None) -> dict:
    port = _free_port()
    command = [sys.executable, "-m", "rtenhance", "serve", "--port", str(port), "--stats-interval", "1",
               "--max-streams", str(streams + 1)] + (["--weights", weights] if weights else [])
    server = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    os.sched_setaffinity(server.pid, {core})
    log_lines = []
    assert server.stderr is not None
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        log_lines.append(line)
        if "serving on" in line or not line:
            break
    others = (os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))) - {core} or {core}
    results = mp.get_context("fork").Queue()
    client = mp.get_context("fork").Process(target=_client_process, args=(port, streams, seconds, results))
    client.start()
    os.sched_setaffinity(client.pid, others)
    outcome = results.get()
    client.join()
    server.send_signal(signal.SIGINT)
    _, rest = server.communicate(timeout=30)
    log_lines += rest.splitlines()
    stats = [m for m in (STATS_LINE.search(line) for line in log_lines) if m]
    last = stats[-1] if stats else None
    steps = [m for m in stats if m.group(2)]
    outcome.update({
        "streams": streams, "seconds": seconds,
        "server_hops": int(last.group(5)) if last else None,
        "skipped_hops": int(last.group(6)) if last else None,
        "passthrough_hops": int(last.group(7)) if last else None,
        "late_ticks": int(last.group(8)) if last else None,
        "step_p99_ms_worst_interval": max(float(m.group(3)) for m in steps) if steps else None,
        "step_us_per_stream_hop": float(np.median([float(m.group(4)) for m in steps])) if steps else None,
    })
    return outcome


def run_load_tests(counts: list[int], seconds: float, core: int, weights: str | None) -> list[dict]:
    """One load-test run per client count; prints a line each and returns their figures."""
    print(f"\nrtenhance serve load test on {HOST}: server pinned to core {core}, clients in another process, "
          f"{seconds:g} s per run")
    print(f"  {'clients':>7}{'held':>6}{'delay p50':>11}{'p99 ms':>8}{'skipped':>9}{'passthrough':>13}"
          f"{'late ticks':>12}{'step us/hop':>13}")
    runs = []
    for n in counts:
        r = _run_once(n, seconds, core, weights)
        runs.append(r)
        print(f"  {n:>7}{r['held']:>6}{fmt(r['delay_p50_ms'], '>11.1f')}{fmt(r['delay_p99_ms'], '>8.1f')}"
              f"{fmt(r['skipped_hops'], '>9')}{fmt(r['passthrough_hops'], '>13')}{fmt(r['late_ticks'], '>12')}"
              f"{fmt(r['step_us_per_stream_hop'], '>13.1f')}", flush=True)
    return runs
