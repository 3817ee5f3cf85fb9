"""The live scenario matrix of issue 10 (server x scenario), printed as one table.

Starts a private PulseAudio and a private PipeWire (as the tests do), runs the real daemon with default
settings in each scenario of tests/audio/live_scenarios.py and prints, per row: hops that skipped the model
in percent (by cause when the daemon reports causes), output dropped (+) or inserted (-) in ms per minute,
playback underflows, the recording's correlation with the offline enhancement in 1 s windows (median and
10th percentile), the spread of the delay the daemon adds per window over the windows that correlate at 0.5 or better
(their count beside it; the input's own shifts, from the producer's gaps on a busy machine, taken out and
shown in the next column), the end-to-end delay (``delay`` scenario, remap
topology), the drift the daemon reports in ppm, and the machine's load. Below the table: the end-to-end
delay of a plain module-loopback on each server, the reference for the ``delay`` rows.

    .venv/bin/python bench/live_matrix.py                       # the whole matrix, 35 s of speech each
    .venv/bin/python bench/live_matrix.py --servers pipewire --scenarios steady bursty --seconds 20
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest  # noqa: E402

from rtenhance.audio.realtime.huge_pages import disable_huge_pages  # noqa: E402
from tests.audio.live_scenarios import (  # noqa: E402
    SCENARIOS, SPEECH_S, WARMUP_S, ScenarioResult, loopback_delay_ms, run_scenario,
)
from tests.audio.live_speech import make_speech_input  # noqa: E402
from tests.audio.pipewire_support import start_pipewire_server  # noqa: E402
from tests.audio.pulse_support import start_pulse_server  # noqa: E402
from tests.audio.sound_server import PIPEWIRE, PULSEAUDIO, SERVER_KINDS, stop_server  # noqa: E402

STARTERS = {PULSEAUDIO: start_pulse_server, PIPEWIRE: start_pipewire_server}
HEADER = ("server", "scenario", "skipped %", "by cause", "adjust ms/min", "underflows", "corr med/p10",
          "delay spread ms (confident windows)", "input shift ms", "e2e ms (over loopback)", "drift ppm", "load",
          "exit")


def row(result: ScenarioResult, loopback_ms: float) -> tuple[str, ...]:
    stats, windows = result.stats, result.windows
    causes = " ".join(f"{cause} {n}" for cause, n in stats.skipped.items())
    drift = "n/a" if stats.drift_ppm is None else f"{stats.drift_ppm:+.0f}"
    e2e = "" if result.e2e_ms is None else ("no match" if math.isnan(result.e2e_ms)
                                            else f"{result.e2e_ms:.1f} ({result.e2e_ms - loopback_ms:+.1f})")
    spread = f"{result.delay_spread_ms:.1f} ({windows.confident_lags_ms.size}/{windows.lags_ms.size} win)"
    return (result.server, result.scenario.name, f"{stats.skipped_pct:.1f}", f"{causes} /{stats.hops}",
            f"{stats.adjust_ms_per_min:+.1f}", str(stats.underflows), f"{windows.median:.3f}/{windows.p10:.3f}",
            spread, f"{result.input_shift_ms:.1f}", e2e, drift, f"{result.load:.1f}", str(result.exit_code))


def table(rows: list[tuple[str, ...]]) -> str:
    lines = [HEADER, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    fmt = lambda line: "| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(HEADER), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", nargs="+", default=list(SERVER_KINDS), choices=SERVER_KINDS)
    parser.add_argument("--scenarios", nargs="+", default=[s.name for s in SCENARIOS],
                        choices=[s.name for s in SCENARIOS])
    parser.add_argument("--seconds", type=float, default=SPEECH_S,
                        help=f"speech per scenario, s (the first {WARMUP_S:g} s are not measured)")
    parser.add_argument("--keep", type=Path, help="keep the recordings, stats and logs in this folder")
    args = parser.parse_args()
    disable_huge_pages()  # as the tests do (tests/conftest.py): khugepaged's stalls are not the daemon's
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"live matrix: {args.seconds:g} s of speech per scenario, {os.cpu_count()} CPUs; {uptime}", flush=True)
    rows: list[tuple[str, ...]] = []
    loopbacks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="live_matrix_") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        speech = make_speech_input(args.seconds, root)
        for kind in args.servers:
            try:
                server = STARTERS[kind](root / kind)
            except pytest.skip.Exception as skipped:
                print(f"{kind}: skipped ({skipped})", flush=True)
                continue
            try:
                loopbacks[kind] = loopback_delay_ms(server, speech, root / kind / "loopback")
                for scenario in SCENARIOS:
                    if scenario.name not in args.scenarios or kind not in scenario.servers:
                        continue
                    started = time.monotonic()
                    try:
                        result = run_scenario(server, scenario, speech, root / kind / scenario.name)
                    except (AssertionError, RuntimeError, ValueError) as error:
                        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                        rows.append((kind, scenario.name, f"error: {first_line}", *[""] * (len(HEADER) - 3)))
                        print(f"  {kind} {scenario.name}: {rows[-1][2]}", flush=True)
                        continue
                    rows.append(row(result, loopbacks[kind]))
                    print(f"  {kind} {scenario.name}: {time.monotonic() - started:.0f} s; {' | '.join(rows[-1][2:])}",
                          flush=True)
            finally:
                stop_server(server)
    print(table(rows))
    print("loopback (module-loopback A.monitor -> B, latency_msec=1) end-to-end delay: "
          + ", ".join(f"{kind} {ms:.1f} ms" for kind, ms in loopbacks.items()))
    print(f"after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
