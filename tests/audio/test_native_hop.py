"""NativeHop: the same samples as the Python hop (Enhancer + FrameGate + SoftLimiter over the native stepper),
FrameGate's deadline and reset semantics on its C thread, and a Python fallback without a compiler."""

from __future__ import annotations

import gc
import math
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rtenhance import native_build
from rtenhance.audio.realtime.gate import dry_gain
from rtenhance.audio.realtime.hop import HopProcessor, NativeHop, PythonHop, make_hop_processor
from rtenhance.audio.realtime.native_hop import NativeFft
from rtenhance.backends.native import NativeStepper
from rtenhance.config import StftConfig
from rtenhance.weights import resolve_model
from tests.conftest import noise_signal

THREAD_NAME_WAIT_S = 2.0  # how long a new model thread may take to show up under its name
KNEE_DBFS = -1.0  # the default limiter knee
SECONDS = 6.0
TOLERANCE = 1e-5  # max abs difference of the output samples
DEADLINE_S = 0.005
SLOW_S = 0.05
SLOW_STEPS = 4  # a slowed step lasts at least this many plain steps (sanitizer builds step slowly)
RETURN_MARGIN_S = 0.02  # scheduling slack on a busy 2-core machine
WARMUP_FRAMES = 3
MODEL_THREAD = "rtenhance-model"


@pytest.fixture(scope="module")
def model():
    return resolve_model(None)[0]


@pytest.fixture(scope="module")
def cfg(model) -> StftConfig:
    return model.config.stft


def hops(x: np.ndarray, cfg: StftConfig) -> list[np.ndarray]:
    """(N,) -> the whole hops of x, each (hop_samples,) contiguous float32."""
    h = cfg.hop_samples
    return [np.ascontiguousarray(x[i : i + h]) for i in range(0, x.shape[0] - h + 1, h)]


def run(processor: HopProcessor, x: np.ndarray, cfg: StftConfig, run_model, dry: float) -> np.ndarray:
    """Each hop of x through ``processor`` without a deadline; run_model(i) says whether hop i may use the model."""
    try:
        return np.concatenate([processor.process(hop, run_model(i), dry, math.inf, 0.0).copy()
                               for i, hop in enumerate(hops(x, cfg))])
    finally:
        processor.close()


def started(native: NativeHop) -> NativeHop:
    """``native`` after ``reset``, which starts its model thread (as the engine does when it opens the devices)."""
    native.reset()
    return native


def passthrough_stretches(i: int) -> bool:
    """The model is skipped for hops 60..79 and 200..201 (each stretch forces a state reset)."""
    return not (60 <= i < 80 or 200 <= i < 202)


@pytest.mark.parametrize("dry", [0.0, 0.3])
@pytest.mark.parametrize("loud", [False, True], ids=["speech", "limited"])
@pytest.mark.parametrize("stretches", [False, True], ids=["model", "passthrough"])
def test_native_hop_equals_the_python_hop(model, cfg, dry, loud, stretches):
    x = noise_signal(SECONDS, seed=1) * (40.0 if loud else 1.0)
    run_model = passthrough_stretches if stretches else (lambda i: True)
    native = started(NativeHop(NativeStepper(model), cfg, KNEE_DBFS))
    python = PythonHop(NativeStepper(model), cfg, KNEE_DBFS)
    out = run(native, x, cfg, run_model, dry)
    expected = run(python, x, cfg, run_model, dry)
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOLERANCE)
    assert native.state_resets == python.state_resets == (2 if stretches else 0)
    if loud:  # the limiter was engaged: its knee was crossed, full scale never
        knee = 10 ** (KNEE_DBFS / 20)
        assert np.abs(expected).max() > knee and np.abs(out).max() <= 1.0
    assert native.model_s > 0.0


def test_passthrough_reconstructs_the_input_and_strength_zero_skips_the_model(model, cfg):
    x = noise_signal(1.0, seed=2)
    native = NativeHop(NativeStepper(model), cfg, KNEE_DBFS)
    delay = native.latency_samples
    out = run(native, x, cfg, lambda i: False, 0.0)
    np.testing.assert_allclose(out[delay:], x[: out.shape[0] - delay], atol=1e-6)
    out = run(native, x, cfg, lambda i: True, dry_gain(0.0))
    np.testing.assert_allclose(out[delay:], x[: out.shape[0] - delay], atol=1e-6)
    assert math.isnan(native.model_s)  # the model never ran


@pytest.mark.parametrize("n_fft", [8, 64, 512])
def test_fft_matches_numpy_and_round_trips(n_fft):
    fft = NativeFft(n_fft)
    rng = np.random.default_rng(n_fft)
    for _ in range(5):
        x = rng.standard_normal(n_fft).astype(np.float32)
        spec = fft.rfft(x)
        reference = np.fft.rfft(x.astype(np.float64))
        np.testing.assert_allclose(spec[:, 0] + 1j * spec[:, 1], reference, rtol=0, atol=1e-5 * math.sqrt(n_fft))
        np.testing.assert_allclose(fft.irfft(spec), x, rtol=0, atol=1e-6)
        any_spec = rng.standard_normal((n_fft // 2 + 1, 2)).astype(np.float32)  # imaginary DC and Nyquist ignored
        np.testing.assert_allclose(fft.irfft(any_spec), np.fft.irfft(any_spec[:, 0] + 1j * any_spec[:, 1], n_fft),
                                   rtol=0, atol=1e-6)


def test_a_late_model_is_passed_through_then_reset(model, cfg):
    native = started(NativeHop(NativeStepper(model), cfg, KNEE_DBFS))
    hop = noise_signal(0.1, seed=3)[: cfg.hop_samples].copy()
    try:
        native.process(hop, True, 0.0, math.inf, 0.0)
        slow_s = max(SLOW_S, SLOW_STEPS * native.model_s)  # well above a plain step, even on a slow build
        start = time.monotonic()
        native.process(hop, True, 0.0, DEADLINE_S, slow_s)
        assert time.monotonic() - start < DEADLINE_S + RETURN_MARGIN_S
        assert native.missed
        passed = native.process(hop, True, 0.0, DEADLINE_S, 0.0)  # still busy with the late frame
        assert native.missed and native.state_resets == 0
        # this frame and the one before passed through: their overlap-add is the (repeated) input hop
        np.testing.assert_allclose(passed, hop, atol=1e-6)
        time.sleep(slow_s + RETURN_MARGIN_S)
        assert native.model_s >= slow_s  # the late step finished, slowed down
        native.process(hop, True, 0.0, math.inf, 0.0)
        assert not native.missed and native.state_resets == 1 and native.model_s < slow_s
    finally:
        native.close()


def test_reset_warm_up_and_close(model, cfg):
    x = noise_signal(1.0, seed=4)
    native = started(NativeHop(NativeStepper(model), cfg, KNEE_DBFS))
    first = run(native, x, cfg, lambda i: True, 0.0)
    native.reset()
    again = run(native, x, cfg, lambda i: True, 0.0)  # run closed the thread; reset started it again
    np.testing.assert_array_equal(again, first)
    native.reset()
    native.warm_up(WARMUP_FRAMES)  # leaves the zero state behind it
    np.testing.assert_array_equal(run(native, x, cfg, lambda i: True, 0.0), first)
    native.reset()
    native.process(x[: cfg.hop_samples].copy(), True, 0.0, 0.0, SLOW_S)  # a step in progress...
    native.reset()  # ...is waited for
    np.testing.assert_array_equal(run(native, x, cfg, lambda i: True, 0.0), first)
    assert native.state_resets == 0
    native.close()
    native.close()


def _threads_once_reaped(expected: dict[int, str]) -> dict[int, str]:
    """``_model_threads()`` once a joined thread has left /proc: pthread_join returns when the thread clears its
    id on exit, a moment before the kernel removes its task entry (under ThreadSanitizer, visibly later)."""
    deadline = time.monotonic() + THREAD_NAME_WAIT_S
    while (threads := _model_threads()) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return threads


def _model_threads() -> dict[int, str]:
    """This process's threads named like the model thread (C threads too, unlike ``threading``): their CPU lists."""
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            comm, status = (task / "comm").read_text().strip(), (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        if comm == MODEL_THREAD:
            found[int(task.name)] = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.MULTILINE).group(1)
    return found


def _reset_on(cpu: int, hop: NativeHop) -> None:
    os.sched_setaffinity(0, {cpu})
    hop.reset()


def test_reset_starts_the_model_thread_on_the_callers_cpus_and_a_hop_never_does(model, cfg):
    before = _model_threads()
    native = NativeHop(NativeStepper(model), cfg, KNEE_DBFS)
    hop = noise_signal(0.1, seed=6)[: cfg.hop_samples].copy()
    native.warm_up(WARMUP_FRAMES)  # on this thread
    assert _model_threads() == before
    for _ in range(3):  # before reset, model hops pass through as missed, and no thread starts
        native.process(hop, True, 0.0, math.inf, 0.0)
        assert native.missed and _model_threads() == before
    cpu = min(os.sched_getaffinity(0))
    pinned = threading.Thread(target=_reset_on, args=(cpu, native))  # as the worker
    pinned.start()
    pinned.join()
    deadline = time.monotonic() + THREAD_NAME_WAIT_S  # the thread names itself just after it starts
    while not set(_model_threads()) - set(before) and time.monotonic() < deadline:
        time.sleep(0.01)
    new = set(_model_threads()) - set(before)
    assert len(new) == 1 and _model_threads()[new.pop()] == str(cpu)  # it inherited the caller's CPUs
    native.process(hop, True, 0.0, math.inf, 0.0)
    assert not native.missed and native.state_resets == 0  # reset cleared the stale state: not counted
    native.reset()  # a running thread is kept
    assert len(_model_threads()) == len(before) + 1
    native.close()  # joins the thread
    native.process(hop, True, 0.0, math.inf, 0.0)
    assert native.missed and _threads_once_reaped(before) == before
    native.reset()
    assert len(_model_threads()) == len(before) + 1
    del native
    gc.collect()
    assert _threads_once_reaped(before) == before  # freeing the hop joined its thread


def test_limiter_knee_changes_apply(model, cfg):
    x = noise_signal(1.0, seed=5) * 40.0
    native = NativeHop(NativeStepper(model), cfg, KNEE_DBFS)
    native.set_limiter_knee(-12.0)
    out = run(native, x, cfg, lambda i: False, 0.0)
    python = PythonHop(NativeStepper(model), cfg, KNEE_DBFS)
    python.set_limiter_knee(-12.0)
    np.testing.assert_allclose(out, run(python, x, cfg, lambda i: False, 0.0), rtol=0, atol=TOLERANCE)


def test_without_a_compiler_the_python_hop_runs(model, cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    stepper = NativeStepper(model)  # built with the real compiler
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "false")
    monkeypatch.setattr(native_build, "prebuilt_dir", lambda: tmp_path / "no-prebuilt")  # as in a plain checkout
    processor = make_hop_processor(stepper, cfg, KNEE_DBFS)
    assert isinstance(processor, PythonHop)
    processor.close()
    monkeypatch.undo()
    assert isinstance(make_hop_processor(stepper, cfg, KNEE_DBFS), NativeHop)


def test_a_non_native_stepper_gets_the_python_hop(model, cfg):
    from rtenhance.backends import make_stepper

    assert isinstance(make_hop_processor(make_stepper(model, "torch"), cfg, KNEE_DBFS), PythonHop)
