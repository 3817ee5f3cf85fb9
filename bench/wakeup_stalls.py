"""How late a real-time thread wakes on this machine: the floor under every live figure (a cyclictest in short).

One process per CPU, pinned to it, at SCHED_FIFO 99 when allowed (else at its current priority, said so),
sleeps 1 ms at a time for ``--seconds`` and records how late each wake-up came. Prints, per CPU: wake-ups,
the worst lateness, how many were over 2, 5 and 10 ms; and the stalls over 5 ms that hit every CPU within
the same 20 ms (a pause of the whole machine, such as a virtual machine's vCPUs descheduled together: the
producer, the sound server and rtenhance all stall, and no buffer smaller than the pause hides it).

    .venv/bin/python bench/wakeup_stalls.py --seconds 180
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

SLEEP_S = 0.001
STALL_MS = 5.0  # lateness listed as a stall
TOGETHER_S = 0.02  # stalls on every CPU within this long of each other are one pause of the whole machine


def measure(cpu: int, seconds: float, results: multiprocessing.Queue) -> None:
    """Sleep SLEEP_S at a time on ``cpu`` for ``seconds``; put (cpu, policy, lateness ms array as list,
    stalls as [(monotonic s, ms)]) on ``results``."""
    os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
        policy = "SCHED_FIFO 99"
    except PermissionError:
        policy = "normal priority (SCHED_FIFO not allowed)"
    late_ms, stalls = [], []
    end = time.monotonic() + seconds
    while (start := time.monotonic()) < end:
        time.sleep(SLEEP_S)
        late = 1e3 * (time.monotonic() - start - SLEEP_S)
        late_ms.append(late)
        if late > STALL_MS:
            stalls.append((start, late))
    results.put((cpu, policy, late_ms, stalls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to measure (default 60)")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    results: multiprocessing.Queue = multiprocessing.Queue()
    began = time.monotonic()  # CLOCK_MONOTONIC is one clock for every process
    workers = [multiprocessing.Process(target=measure, args=(cpu, args.seconds, results)) for cpu in cpus]
    for worker in workers:
        worker.start()
    found = sorted(results.get() for _ in workers)
    for worker in workers:
        worker.join()
    print(f"wake-up lateness of a thread sleeping {1e3 * SLEEP_S:g} ms, {args.seconds:g} s, {os.getloadavg()[0]:.1f} load")
    for cpu, policy, late_ms, stalls in found:
        over = [sum(late > limit for late in late_ms) for limit in (2.0, 5.0, 10.0)]
        print(f"  cpu{cpu} ({policy}): {len(late_ms)} wake-ups, worst {max(late_ms):.2f} ms, "
              f"over 2/5/10 ms: {over[0]}/{over[1]}/{over[2]}")
    first_cpu_stalls = found[0][3]
    together = [(at, ms) for at, ms in first_cpu_stalls
                if all(any(abs(at - other) < TOGETHER_S for other, _ in cpu_stalls) for *_, cpu_stalls in found[1:])]
    print(f"  stalls over {STALL_MS:g} ms on every CPU at once: {len(together)}"
          + "".join(f"\n    at {at - began:.1f} s: {ms:.1f} ms on cpu{found[0][0]}" for at, ms in together))


if __name__ == "__main__":
    main()
