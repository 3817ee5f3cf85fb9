"""Streams per core: how many live 16 kHz streams one CPU core enhances in real time, four ways side by side.

    python bench/streams.py [--json OUT] [--ticks N] [--counts 1,16,64,256,...] [--serve]

Methods (each hop is the whole pipeline: samples in, STFT, model step, iSTFT, samples out):
- ``batched``: one ``MultiStreamEnhancer``, all streams in one batched native step per hop;
- ``enhancers``: N single-stream ``Enhancer``s (native backend) in this process, one after the other;
- ``processes``: N processes with one ``Enhancer`` each (forked from this one);
- ``official_onnx``: the official GTCRN streaming ONNX export, one onnxruntime session per stream (with
  our numpy STFT around it); skipped with a message when ../shared/reference/gtcrn_simple.onnx is absent.

Everything is pinned to one core (``os.sched_setaffinity``). Ticks follow a real 16 ms schedule; a tick's
time is from its scheduled start to its last stream's output, so a tick that overruns delays the next.
N is real time when the p99 tick time is at most 8 ms (half a hop). For each method N goes through
``--counts`` (until a tick needs more than 4 hops of CPU), then the gap above the largest real-time N is
bisected. Reported: the largest real-time N and CPU time per stream-hop (process CPU time, which other
processes on a shared machine disturb less than wall time) at that N, or at the largest N measured when
none is real time.
``--serve`` adds a bounded load test of ``rtenhance serve`` on 127.0.0.1 (``bench/serve_load.py``).
It is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rtenhance.backends import make_stepper  # noqa: E402
from rtenhance.dsp.stft import StreamingIstft, StreamingStft  # noqa: E402
from rtenhance.enhancer import Enhancer  # noqa: E402
from rtenhance.model.gtcrn import GTCRN  # noqa: E402
from rtenhance.multistream import MultiStreamEnhancer  # noqa: E402
from rtenhance.weights import resolve_model  # noqa: E402

SHARED = Path(os.environ.get("RTENHANCE_SHARED", REPO.parent / "shared"))
OFFICIAL = SHARED / "reference" / "gtcrn_simple.onnx"
OFFICIAL_CACHES = {"conv_cache": (2, 1, 16, 16, 33), "tra_cache": (2, 3, 1, 1, 16), "inter_cache": (2, 1, 33, 16)}
HOP = 256
HOP_S = HOP / 16000
REALTIME_P99_S = 0.008
DEFAULT_COUNTS = (1, 16, 64, 256, 384, 512, 768, 1024)
DEFAULT_TICKS = 250
BISECT_STEPS = 3
MAX_PROCESSES = 64
HOPELESS_CPU_S = 4 * HOP_S  # a method needing this much CPU per tick is not tried with more streams
NOISE_RMS = 0.05
METHODS = ("batched", "enhancers", "processes", "official_onnx")
US_PER_S = 1e6
MS_PER_S = 1e3

TickFn = Callable[[np.ndarray], None]  # one tick: (N, HOP) input hops


def _batched(model: GTCRN, n: int) -> TickFn:
    multi = MultiStreamEnhancer(model, capacity=n)
    ids = [multi.add_stream() for _ in range(n)]
    return lambda hops: multi.process_hops(ids, hops)


def _enhancers(model: GTCRN, n: int) -> TickFn:
    enhancers = [Enhancer(make_stepper(model, "native"), model.config.stft) for _ in range(n)]

    def tick(hops: np.ndarray) -> None:
        for enhancer, hop in zip(enhancers, hops):
            enhancer.process(hop)

    return tick


def _official(model: GTCRN, n: int) -> TickFn:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    streams = []
    for _ in range(n):
        session = ort.InferenceSession(str(OFFICIAL), options, providers=["CPUExecutionProvider"])
        caches = {name: np.zeros(shape, np.float32) for name, shape in OFFICIAL_CACHES.items()}
        streams.append((session, caches, StreamingStft(model.config.stft), StreamingIstft(model.config.stft)))
    names = ["enh"] + [f"{k}_out" for k in OFFICIAL_CACHES]

    def tick(hops: np.ndarray) -> None:
        for (session, caches, analysis, synthesis), hop in zip(streams, hops):
            frame = analysis.analyze(hop)
            enh, *new = session.run(names, {"mix": frame.reshape(1, -1, 1, 2), **caches})
            caches.update(zip(caches, new))
            synthesis.synthesize(enh.reshape(-1, 2))

    return tick


def _schedule(tick: TickFn, audio: np.ndarray, n: int, ticks: int) -> tuple[np.ndarray, float]:
    """Runs ``tick`` on a 16 ms schedule; (tick times in s, CPU s of this process) over the timed ticks."""
    offsets = np.arange(n) * 997 % (audio.shape[0] - HOP)
    for k in range(2):  # warm-up
        tick(audio[(offsets + k * HOP)[:, None] % (audio.shape[0] - HOP) + np.arange(HOP)])
    times = np.empty(ticks)
    cpu0 = time.process_time()
    start = time.perf_counter() + HOP_S
    for k in range(ticks):
        due = start + k * HOP_S
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        positions = (offsets + k * HOP) % (audio.shape[0] - HOP)
        tick(audio[positions[:, None] + np.arange(HOP)])
        times[k] = time.perf_counter() - due
    return times, time.process_time() - cpu0


def _process_worker(model: GTCRN, audio: np.ndarray, offset: int, start: float, ticks: int, results) -> None:
    enhancer = Enhancer(make_stepper(model, "native"), model.config.stft)
    done = np.empty(ticks)
    enhancer.process(audio[:HOP])
    cpu0 = time.process_time()
    for k in range(ticks):
        due = start + k * HOP_S
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        position = (offset + k * HOP) % (audio.shape[0] - HOP)
        enhancer.process(audio[position : position + HOP])
        done[k] = time.perf_counter() - due
    results.put((done, time.process_time() - cpu0))


def _processes(model: GTCRN, audio: np.ndarray, n: int, ticks: int) -> tuple[np.ndarray, float]:
    """N forked processes on the same schedule; a tick's time is its slowest process's finish."""
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    start = time.perf_counter() + 1.0 + 0.02 * n  # time for every process to start
    workers = [ctx.Process(target=_process_worker, args=(model, audio, i * 997, start, ticks, results))
               for i in range(n)]
    for w in workers:
        w.start()
    outcomes = [results.get() for _ in workers]
    for w in workers:
        w.join()
    return np.max([done for done, _ in outcomes], axis=0), float(sum(cpu for _, cpu in outcomes))


def _measure(method: str, model: GTCRN, audio: np.ndarray, n: int, ticks: int) -> dict[str, float]:
    if method == "processes":
        times, cpu = _processes(model, audio, n, ticks)
    else:
        make = {"batched": _batched, "enhancers": _enhancers, "official_onnx": _official}[method]
        times, cpu = _schedule(make(model, n), audio, n, ticks)
    p50, p99 = np.percentile(times, [50, 99])
    return {"streams": n, "p50_ms": p50 * MS_PER_S, "p99_ms": p99 * MS_PER_S,
            "cpu_us_per_stream_hop": cpu / (n * ticks) * US_PER_S, "realtime": bool(p99 <= REALTIME_P99_S)}


def _sweep(method: str, model: GTCRN, audio: np.ndarray, counts: list[int], ticks: int) -> dict:
    """Every N of ``counts`` until one needs more than ``HOPELESS_CPU_S`` of CPU per tick; then the gap
    between the largest real-time N and the next is bisected. CPU per stream-hop is reported at the largest
    real-time N, or at the largest N measured when none is real time (a noisy machine)."""
    rows: list[dict] = []
    for n in counts:
        if method == "processes" and n > MAX_PROCESSES:
            print(f"  processes: not tried above {MAX_PROCESSES} (each is a Python process with its own model)")
            break
        rows.append(_measure(method, model, audio, n, ticks))
        _print_row(method, rows[-1])
        if rows[-1]["cpu_us_per_stream_hop"] * n / US_PER_S > HOPELESS_CPU_S:
            break
    passing = [r["streams"] for r in rows if r["realtime"]]
    best = max(passing, default=0)
    above = [r["streams"] for r in rows if r["streams"] > best and not r["realtime"]]
    fail = min(above, default=None)
    for _ in range(BISECT_STEPS if fail is not None and best else 0):
        n = (best + fail) // 2
        if n in (best, fail):
            break
        rows.append(_measure(method, model, audio, n, ticks))
        _print_row(method, rows[-1])
        best, fail = (n, fail) if rows[-1]["realtime"] else (best, n)
    at = best or max(r["streams"] for r in rows)
    cpu = [r for r in rows if r["streams"] == at][-1]["cpu_us_per_stream_hop"]
    return {"max_realtime_streams": best, "cpu_us_per_stream_hop": round(cpu, 2), "cpu_measured_at": at, "runs": rows}


def _print_row(method: str, row: dict) -> None:
    print(f"  {method:<14}{row['streams']:>6}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
          f"{row['cpu_us_per_stream_hop']:>12.1f}  {'yes' if row['realtime'] else 'no'}", flush=True)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, help="write {METHOD: {max_realtime_streams, cpu_us_per_stream_hop}} here")
    p.add_argument("--ticks", type=int, default=DEFAULT_TICKS, help=f"timed 16 ms ticks per run (default {DEFAULT_TICKS})")
    p.add_argument("--counts", default=",".join(map(str, DEFAULT_COUNTS)), help="stream counts to try, ascending")
    p.add_argument("--methods", default=",".join(METHODS), help=f"methods to run (default all: {','.join(METHODS)})")
    p.add_argument("--weights", help="checkpoint (default: the bundled weights)")
    p.add_argument("--serve", action="store_true", help="also load-test rtenhance serve on 127.0.0.1")
    p.add_argument("--serve-streams", default="64,256", help="client counts of the load test (default 64,256)")
    p.add_argument("--serve-seconds", type=float, default=10.0, help="seconds per load-test run (default 10)")
    return p.parse_args()


def main() -> int:
    args = _parse()
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    model, name = resolve_model(args.weights)
    audio = (np.random.default_rng(0).standard_normal(16000 * 8) * NOISE_RMS).astype(np.float32)
    counts = [int(c) for c in args.counts.split(",")]
    print(f"model: {name}; pinned to core {core}; {args.ticks} ticks of 16 ms per run; real time: p99 <= 8 ms")
    print(f"  {'method':<14}{'N':>6}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/hop':>12}  real time")
    results = {}
    for method in args.methods.split(","):
        if method == "official_onnx" and not OFFICIAL.is_file():
            print(f"  official_onnx skipped: {OFFICIAL} is absent")
            continue
        results[method] = _sweep(method, model, audio, counts, args.ticks)
    print(f"\n{'method':<14}{'max real-time streams':>22}{'CPU us per stream-hop':>23}{'8 ms / CPU per hop':>20}")
    for method, r in results.items():
        print(f"{method:<14}{r['max_realtime_streams']:>22}{r['cpu_us_per_stream_hop']:>23.1f}"
              f"{int(REALTIME_P99_S * US_PER_S / r['cpu_us_per_stream_hop']):>20}")
    print("(last column: streams whose CPU time fits in 8 ms per hop, what a quiet core would reach)")
    summary = {m: {k: r[k] for k in ("max_realtime_streams", "cpu_us_per_stream_hop")} for m, r in results.items()}
    if args.serve:
        from bench.serve_load import run_load_tests

        summary["serve_load"] = run_load_tests([int(n) for n in args.serve_streams.split(",")], args.serve_seconds,
                                               core, args.weights)
    if args.json:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
