"""Peak memory and speed of offline file enhancement against file length, side by side with the reference.

``rtenhance enhance`` (blocks in, model state carried, blocks out) against the whole-file path it replaced
(read the whole file, ``enhance_offline`` over it, write it), each in its own process on the same
N-minute 16 kHz file. Prints peak RSS (MB), wall and CPU seconds, seconds of audio per second, and the
largest difference between the two outputs.

    .venv/bin/python bench/enhance_files.py [--minutes 1 10] [--weights PATH] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
RATE = 16000
WHOLE_FILE = (
    "import sys, soundfile as sf, torch\n"
    "torch.set_num_threads(1)\n"
    "from rtenhance.enhancer import enhance_offline\n"
    "from rtenhance.weights import resolve_model\n"
    "model, _ = resolve_model(sys.argv[3] if len(sys.argv) > 3 else None)\n"
    "x, rate = sf.read(sys.argv[1], dtype='float32')\n"
    "sf.write(sys.argv[2], enhance_offline(model, x), rate, subtype='FLOAT')\n"
)


def _write_input(path: Path, minutes: int) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(60 * RATE) / RATE
    tone = (0.05 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    with sf.SoundFile(path, "w", RATE, 1, "FLOAT") as f:
        for _ in range(minutes):
            f.write(tone + 0.01 * rng.standard_normal(tone.shape[0]).astype(np.float32))


def _measure(command: list[str]) -> dict[str, float]:
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(process.stderr.read().decode()[-2000:])
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "wall_s": time.monotonic() - start,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--weights", help="checkpoint; default: the bundled weights")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    weights = [args.weights] if args.weights else []
    results: dict[str, dict[str, dict[str, float]]] = {}
    print(f"{'minutes':>7} {'method':<12} {'peak RSS MB':>11} {'wall s':>8} {'CPU s':>8} {'audio s/s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            src, ours, whole = Path(tmp) / "in.wav", Path(tmp) / "ours.wav", Path(tmp) / "whole.wav"
            _write_input(src, minutes)
            rows = {
                "chunked": _measure([sys.executable, "-m", "rtenhance", "enhance", str(src), str(ours), "--jobs", "1",
                                     "--overwrite", *(["--weights", args.weights] if args.weights else [])]),
                "whole_file": _measure([sys.executable, "-c", WHOLE_FILE, str(src), str(whole), *weights]),
            }
            for method, row in rows.items():
                row["audio_s_per_s"] = 60 * minutes / row["wall_s"]
                print(f"{minutes:>7} {method:<12} {row['peak_rss_mb']:>11.1f} {row['wall_s']:>8.1f} "
                      f"{row['cpu_s']:>8.1f} {row['audio_s_per_s']:>10.1f}")
            diff = float(np.abs(sf.read(ours, dtype="float32")[0] - sf.read(whole, dtype="float32")[0]).max())
            print(f"{minutes:>7} max |chunked - whole_file| = {diff:.2e}")
            results[f"{minutes}_min"] = {**rows, "max_abs_diff": {"value": diff}}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
