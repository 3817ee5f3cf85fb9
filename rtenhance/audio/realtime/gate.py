"""The frame stepper of the Python hop (``rtenhance.audio.realtime.hop.PythonHop``): the model on a deadline, strength
mix and bypass. ``native_hop.c`` implements the same semantics in C for the native backend.

Working per frame inside the STFT keeps every path on the same delay: a frame that skips the model
comes out of the same overlap-add as an enhanced one, so switching between model and passthrough is
crossfaded by the synthesis window over one hop (16 ms) with no extra delay line.

The model runs in its own thread, started with the gate (never on the hot path). ``step`` hands it the frame and waits at most ``deadline_s`` (set
by the engine per hop from how long the output ring lasts); a frame the model has not finished by then
passes through unchanged, so a slow model can never make playback run dry. The late result is
discarded and the model state, which missed frames, is reset before the model is used again.

The strength setting is an attenuation limit (DeepFilterNet's ``atten_lim_db``): the output frame is
``(1 - g) * enhanced + g * noisy`` with ``g = 10 ** (-limit_db / 20)``, which in the time domain is the
same mix of the enhanced and the equally delayed noisy signal, so the noise floor is lowered by at most
``limit_db``.
"""

from __future__ import annotations

import math
import os
import threading
import time

import numpy as np

from rtenhance.backends import FrameStepper

DRY_EPSILON = 1e-6  # dry gains below this are treated as 0 (full strength)
MODEL_NICE_OFFSET = 5  # the model thread runs this much below the audio threads: audio I/O always preempts it


def dry_gain(attenuation_limit_db: float) -> float:
    """Gain of the noisy signal in the mix for an attenuation limit in dB (0 dB -> 1.0: bypass)."""
    return float(10.0 ** (-attenuation_limit_db / 20.0))


def model_wanted(dry: float) -> bool:
    """Whether a strength mix with noisy-signal gain ``dry`` needs the model (not bypass, limit above 0 dB)."""
    return dry < 1.0 - DRY_EPSILON


class FrameGate:
    """Wraps the model's stepper; the engine sets the public attributes between hops.

    Attributes:
        run_model: False passes frames through unchanged (passthrough or bypass).
        dry: noisy-signal gain in the mix, from ``dry_gain``; 1.0 also skips the model.
        deadline_s: how long ``step`` waits for the model before passing the frame through.
        slow_s: each model step takes at least this many seconds (test-only overload simulation).
        missed: the last ``step`` wanted the model but passed the frame through (late or still busy).
        model_s: how long the latest finished model step took, in seconds.
        state_resets: times the model state was reset because frames had skipped it.
    """

    def __init__(self, stepper: FrameStepper, n_bins: int) -> None:
        self.stepper = stepper
        self.run_model = True
        self.dry = 0.0
        self.deadline_s = math.inf
        self.slow_s = 0.0
        self.missed = False
        self.model_s = math.nan
        self.state_resets = 0
        self._stale = False  # frames skipped the model since its state was last valid
        self._busy = False  # the model thread holds a frame (possibly one we stopped waiting for)
        self._job = np.zeros((n_bins, 2), dtype=np.float32)
        self._result = np.zeros((n_bins, 2), dtype=np.float32)
        self._out = np.zeros((n_bins, 2), dtype=np.float32)
        self._request = threading.Event()
        self._done = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = threading.Thread(target=self._serve, name="rtenhance-model",
                                                                 daemon=True)
        self._thread.start()

    @property
    def wants_model(self) -> bool:
        """Whether the strength setting needs the model (not bypassed, attenuation limit above 0 dB)."""
        return model_wanted(self.dry)

    @property
    def enhancing(self) -> bool:
        """Whether the next frame is meant to go through the model."""
        return self.run_model and self.wants_model

    def close(self, timeout: float = 1.0) -> None:
        """Stop the model thread (waits for a step in progress, at most ``timeout``)."""
        if self._thread is not None:
            self._closing = True
            self._request.set()
            self._thread.join(timeout)
            self._thread = None

    def _serve(self) -> None:
        try:  # on Linux a thread's nice value is its own; lowering priority is always allowed
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + MODEL_NICE_OFFSET))
        except OSError:
            pass
        while True:
            self._request.wait()
            self._request.clear()
            if self._closing:
                return
            start = time.perf_counter()
            self._result[:] = self.stepper.step(self._job)
            if self.slow_s > 0.0:
                time.sleep(max(0.0, self.slow_s - (time.perf_counter() - start)))
            self.model_s = time.perf_counter() - start
            self._done.set()

    def step(self, frame: np.ndarray) -> np.ndarray:
        """(F, 2) noisy frame -> (F, 2) output frame (valid until the next call)."""
        self.missed = False
        if self._busy:
            if not self._done.is_set():  # still on a frame it was too late for
                self._stale = True
                self.missed = self.enhancing
                return frame
            self._busy = False
        if not self.enhancing:
            self._stale = True
            return frame
        if self._stale:
            self.stepper.reset()
            self.state_resets += 1
            self._stale = False
        self._job[:] = frame
        self._done.clear()
        self._busy = True
        self._request.set()
        if not self._done.wait(None if math.isinf(self.deadline_s) else max(0.0, self.deadline_s)):
            self._stale = True
            self.missed = True
            return frame
        self._busy = False
        if self.dry <= DRY_EPSILON:
            return self._result
        np.multiply(self._result, 1.0 - self.dry, out=self._out)
        self._out += self.dry * frame
        return self._out

    def warm_up(self, frames: int) -> None:
        """Run the model on ``frames`` silent frames and reset it, so the first live hops are not slow."""
        silence = np.zeros_like(self._out)
        for _ in range(frames):
            self.stepper.step(silence)
        self.reset()

    def reset(self) -> None:
        """Back to the zero state (a fresh stream, not counted as a reset); waits for a step in progress."""
        if self._busy:
            self._done.wait()
            self._busy = False
        self.stepper.reset()
        self._stale = False
