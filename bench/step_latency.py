"""Per-hop latency of the streaming model: our fast step, our full Enhancer hop, our eager PyTorch step, and
the official GTCRN ONNX export, in one run, one thread, pinned to one core.

    taskset -c 0 python bench/step_latency.py [--json OUT] [--hops N] [--weights PATH]

Input is real audio (../shared/reference/mix.wav, looped) when present, else white noise. The fast step,
the Enhancer hop and the official model run interleaved hop by hop (so they see the same machine load);
the eager step, much slower, runs on its own afterwards. Warm-up hops are excluded. It is a benchmark,
not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
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

from rtenhance.backends import make_stepper  # noqa: E402
from rtenhance.dsp.stft import StreamingStft  # noqa: E402
from rtenhance.enhancer import Enhancer  # noqa: E402
from rtenhance.model.checkpoint import load_model  # noqa: E402
from rtenhance.model.gtcrn import GTCRN  # noqa: E402

SHARED = Path(os.environ.get("RTENHANCE_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
DEFAULT_HOPS = 3000
WARMUP_HOPS = 300
NOISE_SEED = 0
NOISE_RMS = 0.1
OFFICIAL_CONV_CACHE = (2, 1, 16, 16, 33)  # official gtcrn_simple.onnx state inputs
OFFICIAL_TRA_CACHE = (2, 3, 1, 1, 16)
OFFICIAL_INTER_CACHE = (2, 1, 33, 16)
NS_PER_MS = 1e6


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--hops", type=int, default=DEFAULT_HOPS, help=f"timed hops per measurement (default {DEFAULT_HOPS})")
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


def _stats(ns: list[int], hop_ms: float) -> dict[str, float]:
    ms = np.asarray(ns, dtype=np.float64) / NS_PER_MS
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "rtf": float(ms.mean() / hop_ms),
    }


def _time_interleaved(tasks: dict[str, Callable[[int], object]], hops: int) -> dict[str, list[int]]:
    """Run every task once per hop (rotating their order), timing each call; warm-up excluded."""
    times: dict[str, list[int]] = {name: [] for name in tasks}
    items = list(tasks.items())
    clock = time.perf_counter_ns
    for i in range(WARMUP_HOPS + hops):
        k = i % len(items)
        for name, task in items[k:] + items[:k]:
            t0 = clock()
            task(i)
            elapsed = clock() - t0
            if i >= WARMUP_HOPS:
                times[name].append(elapsed)
    return times


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

    fast = make_stepper(model, "onnx")
    enhancer = Enhancer(make_stepper(model, "onnx"), cfg)
    tasks: dict[str, Callable[[int], object]] = {
        "fast_step": lambda i: fast.step(frames[i]),
        "enhancer_hop": lambda i: enhancer.process(hops[i]),
    }
    official = _official(args.official)
    if official is not None:
        tasks["official_onnx"] = lambda i: official(frames[i])
    times = _time_interleaved(tasks, args.hops)
    eager = make_stepper(model, "torch")
    times.update(_time_interleaved({"torch_step": lambda i: eager.step(frames[i])}, args.hops))

    results: dict[str, object] = {name: _stats(t, cfg.hop_ms) for name, t in times.items()}
    ratios = {}
    if official is not None:
        ref = results["official_onnx"]
        for ours in ("fast_step", "enhancer_hop"):
            for q in ("p50_ms", "p99_ms"):
                ratios[f"official_over_{ours}_{q[:3]}"] = ref[q] / results[ours][q]  # type: ignore[index]
    ratios["torch_over_fast_step_p50"] = results["torch_step"]["p50_ms"] / results["fast_step"]["p50_ms"]  # type: ignore[index]
    results["ratios"] = ratios
    results["setup"] = {
        "hops": args.hops,
        "warmup_hops": WARMUP_HOPS,
        "core": core,
        "model": model_name,
        "audio": audio_name,
        "official": str(args.official) if official is not None else "absent",
        "loadavg_1min": os.getloadavg()[0],
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
    }

    print(f"model: {model_name}\ninput: {audio_name}\n{args.hops} hops after {WARMUP_HOPS} warm-up, core {core}, 1 thread")
    print(f"{'':16}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'RTF':>8}")
    for name in ("fast_step", "enhancer_hop", "torch_step", "official_onnx"):
        if name in results:
            s = results[name]
            print(f"{name:16}{s['p50_ms']:9.3f}{s['p95_ms']:9.3f}{s['p99_ms']:9.3f}{s['max_ms']:9.3f}{s['rtf']:8.4f}")  # type: ignore[index]
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    if official is None:
        print(f"official model not found at {args.official}: no comparison")
    print(f"load average (1 min) at the end: {results['setup']['loadavg_1min']:.2f}")  # type: ignore[index]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
