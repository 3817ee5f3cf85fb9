"""CPU cost of the running daemon: rtenhance on a private PulseAudio null-sink loop at 48 kHz.

Starts a private PulseAudio server (the test suite's: sinks A and B on a 48 kHz null sink), plays noisy
speech into A in a loop, runs ``rtenhance --input pulse:A.monitor --output pulse:B`` for ``--seconds``
after a warm-up, and reports the daemon process's CPU time as a percentage of one core (read from
/proc, all threads) together with its own last stats line, and the sound server's CPU over the same time.

    python bench/daemon_cpu.py [--seconds 30] [--backend auto] [--cpu 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the test suite's PulseAudio helpers live in tests/

from tests.audio.daemon_support import (  # noqa: E402
    DaemonProcess, daemon_env, noisy_speech, read_json_lines, weights_path, write_wav,
)
from tests.audio.pulse_support import start_pulse_server, stop_pulse_server  # noqa: E402

WARMUP_S = 5.0
CLIP_S = 20.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured run time after the warm-up")
    parser.add_argument("--backend", default="auto", help="inference backend (auto, onnx, torch)")
    parser.add_argument("--weights", help="checkpoint; default: the shared DNS3 weights or a random model")
    parser.add_argument("--cpu", type=int, help="pin the daemon to this CPU (taskset)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="daemon config override, repeatable (e.g. audio.block_ms=16)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="rtenhance-bench-"))
    server = start_pulse_server(root / "pulse")
    daemon = None
    try:
        clip = write_wav(root / "speech.wav", noisy_speech(CLIP_S, root))
        weights = args.weights or str(weights_path(root))
        command = ["--input", "pulse:A.monitor", "--output", "pulse:B", "--weights", weights, "--backend",
                   args.backend, "--stats-json", str(root / "stats.jsonl"),
                   "--set", f"stats.interval_s={args.seconds:g}"]
        for override in args.set:
            command += ["--set", override]
        daemon = DaemonProcess(command, daemon_env(server.env), root / "daemon.log")
        if args.cpu is not None:
            os.sched_setaffinity(daemon.process.pid, {args.cpu})
        daemon.wait_ready()
        player_deadline = time.monotonic() + WARMUP_S + args.seconds + 1.0
        player = server.play(clip)
        time.sleep(WARMUP_S)
        start_cpu, start = cpu_seconds(daemon.process.pid), time.monotonic()
        start_server_cpu = cpu_seconds(server.process.pid)
        while time.monotonic() < start + args.seconds:
            if player.poll() is not None and time.monotonic() < player_deadline:
                player = server.play(clip)
            time.sleep(0.1)
        used, elapsed = cpu_seconds(daemon.process.pid) - start_cpu, time.monotonic() - start
        server_used = cpu_seconds(server.process.pid) - start_server_cpu
        time.sleep(1.0)
        player.terminate()
        stats = read_json_lines(root / "stats.jsonl")
        lines = [line for line in daemon.log().splitlines() if "stats: " in line]
        print(f"daemon CPU: {100.0 * used / elapsed:.1f} % of one core over {elapsed:.0f} s "
              f"(backend {args.backend}, pulse loop on 48 kHz null sinks)")
        print(f"sound server CPU meanwhile: {100.0 * server_used / elapsed:.1f} % of one core (mixing, the null sinks,"
              " the player, and any resampling for the daemon's streams)")
        if lines:
            print(lines[-1][lines[-1].index("stats: "):])
        if stats:
            print(f"daemon's own cpu_percent: {stats[-1]['cpu_percent']:.1f}")
    finally:
        if daemon is not None:
            daemon.terminate()
        stop_pulse_server(server)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
