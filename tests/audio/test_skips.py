"""The skip policy: the model is skipped only when a median step would miss the ring, and a step's deadline
is never shorter than a usual step; the median and p99 follow the recent steps."""

from __future__ import annotations

import math

import numpy as np

from rtenhance.audio.realtime.skips import (
    MIN_DEADLINE_S, MIN_STEPS, OVERLOAD_FACTOR, START_DEADLINE_S, SkipCounts, StepTimes, ring_low, step_deadline_s,
)


def timed(values: list[float]) -> StepTimes:
    steps = StepTimes()
    for v in values:
        steps.add(v)
    return steps


def test_percentiles_follow_recent_steps_and_ignore_nan():
    steps = timed([0.0001] * 300 + [math.nan] * 5)
    assert steps.ready and abs(steps.p99_s - 0.0001) < 1e-12 and abs(steps.p50_s - 0.0001) < 1e-12
    for _ in range(10):
        steps.add(0.004)  # 10 slow steps of the last 256: above the 99th percentile
    for _ in range(22):
        steps.add(0.0001)
    assert steps.p99_s == 0.004 and steps.p50_s == 0.0001


def test_a_low_ring_is_no_reason_unless_a_usual_slow_step_would_miss_it():
    steps = timed([0.003] * 100)
    assert not ring_low(0.010, steps)
    assert not ring_low(0.0, steps)  # already dry: the hop is late whatever runs
    assert ring_low(0.001, steps)
    assert not ring_low(0.001, timed([0.003] * (MIN_STEPS - 1)))  # p99 not trusted yet
    assert not ring_low(0.0001, timed([0.0002] * 100))  # a sub-ms step: skipping it saves no underflow


def test_preemptions_of_a_fast_step_are_no_reason_to_skip_it():
    """A 0.1 ms step preempted now and then (a p99 of 2.5 ms, as on a busy CI machine) is never skipped."""
    steps = timed(([0.0001] * 24 + [0.0025]) * 10)
    assert steps.p99_s == 0.0025 and steps.p50_s == 0.0001
    assert not ring_low(0.001, steps)


def test_deadline_is_a_few_usual_steps_or_half_the_ring():
    steps = timed([0.0002] * 100)
    assert step_deadline_s(0.012, steps) == 0.006
    assert step_deadline_s(0.0, steps) == MIN_DEADLINE_S
    slow = timed([0.003] * 100)
    assert step_deadline_s(0.001, slow) == OVERLOAD_FACTOR * 0.003
    assert step_deadline_s(0.040, StepTimes()) == START_DEADLINE_S  # not yet timed: up to a hop
    assert step_deadline_s(0.005, StepTimes()) == 0.005


def test_skip_counts_separate_bypass():
    counts = SkipCounts(ring_low=2, overload=3, bypass=40)
    assert counts.unwanted == 5


def test_median_and_p99_equal_those_of_the_sorted_history():
    values = np.random.default_rng(0).random(256 + 64)
    steps = timed(list(values))
    history = np.sort(values[-256:])
    assert steps.p50_s == history[127] and steps.p99_s == history[253]
