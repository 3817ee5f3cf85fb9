"""Per-hop latency of the streaming model: our fast step (the backend ``auto`` picks: native when a C compiler
is available), our full Enhancer hop on it, the daemon's hop (``make_hop_processor``: with the native
backend all of STFT, model, iSTFT and limiter in C, the model handed to its own thread), our ONNX step,
our eager PyTorch step, and the official GTCRN ONNX export, in one run, pinned to one core (the daemon
hop's model thread shares that core).

    taskset -c 0 python bench/step_latency.py [--json OUT] [--hops N] [--weights PATH]

Input is real audio (../shared/reference/mix.wav, looped) when present, else white noise; each contender
carries its streaming state from hop to hop. After a warm-up block each (excluded), the contenders take
turns in rounds of blocks of hops, so that all of them see the same machine load over the run. It is a
benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import onnxruntime as ort  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from rtenhance.audio.realtime.hop import make_hop_processor  # noqa: E402
from rtenhance.backends import make_stepper, resolve_backend  # noqa: E402
from rtenhance.dsp.stft import StreamingStft  # noqa: E402
from rtenhance.enhancer import Enhancer  # noqa: E402
from rtenhance.model.checkpoint import load_model  # noqa: E402
from rtenhance.model.gtcrn import GTCRN  # noqa: E402

SHARED = Path(os.environ.get("RTENHANCE_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
DEFAULT_HOPS = 3000
DEFAULT_GAP_MS = 0.0
WARMUP_HOPS = 300
ROUNDS = 10  # each measurement is split into this many blocks, alternating between the contenders
NOISE_SEED = 0
NOISE_RMS = 0.1
OFFICIAL_CONV_CACHE = (2, 1, 16, 16, 33)  # official gtcrn_simple.onnx state inputs
OFFICIAL_TRA_CACHE = (2, 3, 1, 1, 16)
OFFICIAL_INTER_CACHE = (2, 1, 33, 16)
NS_PER_MS = 1e6
LIMITER_KNEE_DBFS = -3.0  # the daemon's default (config/rtenhance.yaml; its CPU column is the worker's only)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--hops", type=int, default=DEFAULT_HOPS, help=f"timed hops per contender (default {DEFAULT_HOPS})")
    p.add_argument(
        "--gap-ms", type=float, default=DEFAULT_GAP_MS, help="sleep between hops, as a stream does (default 0)"
    )
    p.add_argument("--weights", type=Path, help="checkpoint (default: ../shared/reference/gtcrn_dns3.tar)")
    p.add_argument("--official", type=Path, default=REFERENCE / "gtcrn_simple.onnx", help="official ONNX model")
    return p.parse_args()


def _pin_one_core() -> int:
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    return core


def _model(weights: Path | None) -> tuple[GTCRN, str]:
    if weights is None and (REFERENCE / "gtcrn_dns3.tar").is_file():
        weights = REFERENCE / "gtcrn_dns3.tar"
    if weights is None:
        torch.manual_seed(NOISE_SEED)
        return GTCRN().eval(), "random-initialised model (no --weights and ../shared is absent)"
    return load_model(weights), str(weights)


def _audio(hops: int, hop: int) -> tuple[np.ndarray, str]:
    need = hops * hop
    path = REFERENCE / "mix.wav"
    if path.is_file():
        x, _ = sf.read(path, dtype="float32")
        return np.resize(x, need).astype(np.float32), f"{path} looped"
    rng = np.random.default_rng(NOISE_SEED)
    return (NOISE_RMS * rng.standard_normal(need)).astype(np.float32), "white noise (../shared is absent)"


def _official(path: Path) -> Callable[[np.ndarray], None] | None:
    if not path.is_file():
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    caches = {
        "conv_cache": np.zeros(OFFICIAL_CONV_CACHE, np.float32),
        "tra_cache": np.zeros(OFFICIAL_TRA_CACHE, np.float32),
        "inter_cache": np.zeros(OFFICIAL_INTER_CACHE, np.float32),
    }
    names = ["enh"] + [f"{k}_out" for k in caches]

    def step(frame: np.ndarray) -> None:
        _, *new = session.run(names, {"mix": frame.reshape(1, -1, 1, 2), **caches})
        caches.update(zip(caches, new))

    return step


def _stats(wall_ns: list[int], cpu_ns: list[int], hop_ms: float) -> dict[str, float]:
    """Wall-clock percentiles and RTF (mean wall time / hop), plus this thread's CPU time p50/p99 (which
    leaves out time the thread spent preempted by other processes)."""
    ms = np.asarray(wall_ns, dtype=np.float64) / NS_PER_MS
    cpu = np.asarray(cpu_ns, dtype=np.float64) / NS_PER_MS
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "rtf": float(ms.mean() / hop_ms),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
        "cpu_p99_ms": float(np.percentile(cpu, 99)),
    }


def _time_in_rounds(
    tasks: dict[str, Callable[[int], object]], hops: int, gap_s: float
) -> dict[str, tuple[list[int], list[int]]]:
    """Time every call of every task (wall and thread CPU ns): a warm-up block each, then ``ROUNDS``
    rounds in which each task runs a block of hops in turn (each keeps its caches warm within a block,
    and all share the machine's load over the run). Task ``name`` gets its own running hop index."""
    times: dict[str, tuple[list[int], list[int]]] = {name: ([], []) for name in tasks}
    position = dict.fromkeys(tasks, 0)
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    blocks = [WARMUP_HOPS] + [hops // ROUNDS + (r < hops % ROUNDS) for r in range(ROUNDS)]
    for r, block in enumerate(blocks):
        for name, task in tasks.items():
            start = position[name]
            for i in range(start, start + block):
                c0 = cpu()
                t0 = wall()
                task(i)
                t1 = wall()
                c1 = cpu()
                if gap_s:
                    time.sleep(gap_s)
                if r:
                    times[name][0].append(t1 - t0)
                    times[name][1].append(c1 - c0)
            position[name] = start + block
    return times


def _ratios(stats: dict[str, dict[str, float]]) -> dict[str, float]:
    """official / ours at p50 and p99 (above 1: ours is faster), and eager / fast and onnx / fast at p50."""
    ratios = {}
    if "official_onnx" in stats:
        for ours in ("fast_step", "enhancer_hop", "daemon_hop"):
            for q in ("p50", "p99"):
                ratios[f"official_over_{ours}_{q}"] = stats["official_onnx"][f"{q}_ms"] / stats[ours][f"{q}_ms"]
    ratios["torch_over_fast_step_p50"] = stats["torch_step"]["p50_ms"] / stats["fast_step"]["p50_ms"]
    ratios["onnx_over_fast_step_p50"] = stats["onnx_step"]["p50_ms"] / stats["fast_step"]["p50_ms"]
    return ratios


def _print_report(stats: dict[str, dict[str, float]], ratios: dict[str, float], setup: dict[str, object]) -> None:
    print(f"model: {setup['model']}\ninput: {setup['audio']}\nofficial: {setup['official']}")
    print(f"fast backend: {setup['fast_backend']}, gap between hops {setup['gap_ms']} ms")
    print(f"{setup['hops']} hops after {setup['warmup_hops']} warm-up, core {setup['core']}, 1 thread")
    print(f"{'':16}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'RTF':>8}   CPU p50/p99 ms")
    for name in ("fast_step", "enhancer_hop", "daemon_hop", "onnx_step", "torch_step", "official_onnx"):
        if name in stats:
            s = stats[name]
            cells = "".join(f"{s[k]:9.3f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
            print(f"{name:16}{cells}{s['rtf']:8.4f}   {s['cpu_p50_ms']:.3f}/{s['cpu_p99_ms']:.3f}")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    print(f"load average (1 min) at the end: {setup['loadavg_1min']:.2f}")


def main() -> int:
    args = _parse()
    core = _pin_one_core()
    model, model_name = _model(args.weights)
    cfg = model.config.stft
    total = WARMUP_HOPS + args.hops
    audio, audio_name = _audio(total, cfg.hop_samples)
    hops = audio.reshape(total, cfg.hop_samples)
    analysis = StreamingStft(cfg)
    frames = np.stack([analysis.analyze(h).copy() for h in hops])  # (hops, F, 2)

    fast_backend = resolve_backend("auto")
    fast = make_stepper(model, fast_backend)
    enhancer = Enhancer(make_stepper(model, fast_backend), cfg)
    daemon_hop = make_hop_processor(make_stepper(model, fast_backend), cfg, LIMITER_KNEE_DBFS)
    onnx = make_stepper(model, "onnx")
    eager = make_stepper(model, "torch")
    tasks: dict[str, Callable[[int], object]] = {
        "fast_step": lambda i: fast.step(frames[i]),
        "enhancer_hop": lambda i: enhancer.process(hops[i]),
        "daemon_hop": lambda i: daemon_hop.process(hops[i], True, 0.0, math.inf, 0.0),
        "onnx_step": lambda i: onnx.step(frames[i]),
        "torch_step": lambda i: eager.step(frames[i]),
    }
    official = _official(args.official)
    if official is not None:
        tasks["official_onnx"] = lambda i: official(frames[i])
    timed = _time_in_rounds(tasks, args.hops, args.gap_ms / 1000.0)
    stats = {name: _stats(wall_ns, cpu_ns, cfg.hop_ms) for name, (wall_ns, cpu_ns) in timed.items()}
    ratios = _ratios(stats)
    setup: dict[str, object] = {
        "hops": args.hops,
        "warmup_hops": WARMUP_HOPS,
        "gap_ms": args.gap_ms,
        "fast_backend": fast_backend,
        "core": core,
        "model": model_name,
        "audio": audio_name,
        "official": str(args.official) if official is not None else f"absent ({args.official}): no comparison",
        "loadavg_1min": os.getloadavg()[0],
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
    }
    _print_report(stats, ratios, setup)
    if args.json:
        args.json.write_text(json.dumps({**stats, "ratios": ratios, "setup": setup}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
