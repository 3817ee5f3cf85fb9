"""How much audio the output ring holds, and how the engine keeps it there: an adaptive jitter buffer.

Each hop the worker reads the output ring's depth just before it writes. Between two writes only the
playback side takes from the ring, so that reading is the lowest the ring got since the previous hop: it
is 0 when playback ran dry. ``PlayoutController`` groups the readings in blocks of about half a second
and keeps, per block, their mean and their minimum:

- the *jitter span* is how far below its mean the ring dips as capture arrives in bursts and the worker
  wakes late: it rises at once to a block's (mean - minimum) and decays slowly (a jitter buffer's peak
  detector), so that a steady run keeps a steady delay;
- each underflow of the ring (a dip deeper than the span foresaw) adds to a safety margin that decays
  slowly too; an xrun of the device or server while the ring held audio (it was handed over too late,
  on a loaded machine a PulseAudio server's own wake-up) adds none, since a deeper ring would not have
  prevented it: the server's buffer, sized by the stream, does that. The silence it played is delay it
  added, worked off by resampling like any excess, not dropped, however long that takes (``XRUN_HOLD_S``),
  unless xruns pile up more than resampling can work off in 20 s (``XRUN_JUMP_S``): the delay stays bounded;
- after a session's first ``LEARNING_S``, a dip beyond the span or an underflow raises them only when
  another came within ``PEAK_CONFIRM_S`` (NetEq's delay peak detector likewise waits for a second peak): one
  stall of the whole machine (a PipeWire cycle the producer, the server and our thread all missed) is not
  jitter to hold for. Raising the target for it moved the output 4-8 ms later by resampling, slowly
  enough to read as a delay that wanders (a matrix cell's spread of 12.9 ms after one 10 ms stall), while
  the silence the underflow played had already raised the ring by itself;
- the ring's mean is held at span + headroom + margin (or the user's latency target, when that is more),
  so its lowest point stays ``headroom_s`` above empty: the delay is the smallest the timing allows;
- the clocks' mismatch is *measured*: the block means, less the resampling applied by each block's middle,
  drift at the rate the playback clock outruns the capture clock; a straight line fitted over the last
  ``DRIFT_WINDOW_BLOCKS`` gives it (``drift_ppm``), taken only when it differs significantly from the
  current value, and by at least ``DRIFT_FLOOR`` over the shortest fit, less over longer ones (bursty
  capture makes the block means noisy), and the resampling ratio follows it, so
  drift does not move the delay; a proportional correction (at most ``MAX_CORRECTION``: 2 ms per second, a
  pitch change of 3.5 cents that nobody hears in speech) removes the rest. It is gentle for an error within
  ``GENTLE_BAND_S`` (``KP_GENTLE_PER_S``: a PipeWire graph's one-cycle step of 5 ms is taken back at
  200 ppm, not 1300: every second the ratio is off, the output is time-warped against its input, which a
  window-by-window comparison reads as 0.5-0.7 correlation at 1000 ppm and 0.97-1.0 below 100 ppm), firmer
  beyond it (``KP_PER_S``), and firm at once when the ring came close to dry (its lowest reading under the
  headroom): a lack there is an underflow about to happen; and firmer still, both ways
  (``KP_SETTLE_PER_S``), until the session's drift fit has measured the mismatch (taken a value, or seen
  no change beyond its floor, or is precise enough to rule one out): an unmeasured mismatch moves the ring
  meanwhile;
- a *step* in that level (the server moved audio between our ring and its own buffer at once, as
  pipewire-pulse does every few seconds, 4-10 ms at a time; an underflow; a drop) is not drift: the fit starts
  over after it, so that a step never reads as a slope; nor is a session's first ``FIT_START_S``, while the
  server's own buffer settles;
- an excess that gentle resampling would take long to remove (the start, a stalled process, a device
  that stopped) is dropped at once from the next chunks (``take_drop``), counted and logged by the engine;
- in a session's first ``FILL_WINDOW_S`` a lack is filled at once with silence (``take_fill``), counted as
  well: the first block shows the span (a PipeWire graph at quantum 2048 hands capture over in 43 ms bursts,
  an 18 ms span), and resampling at its 2 ms/s cap took 9 s to fill it, time-warping the output meanwhile
  (window correlations of 0.48-0.89 in the first 8 s of speech).

Times are in seconds; the controller never touches audio and never allocates after construction.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK_S = 0.5  # readings per control update
SPAN_DECAY_PER_S = 0.00005  # the jitter span falls by this per second once the dips are smaller (3 ms a minute)
KP_GENTLE_PER_S = 0.04  # ratio change per second of error within GENTLE_BAND_S: 5 ms is taken back at 200 ppm
GENTLE_BAND_S = 0.006  # errors up to this are corrected gently...
KP_PER_S = 0.25  # ...the rest at this (a 30 ms excess is worked off at the 2 ms/s cap), and a lack that let the
# ring come close to dry all at this
MAX_CORRECTION = 0.002  # the correction is capped at 2000 ppm (2 ms per second)
DRIFT_WINDOW_BLOCKS = 40  # the drift is fitted over this many blocks (20 s)
DRIFT_SIGNIFICANCE = 3.0  # a fitted slope is taken only when this many standard errors from the current value
MIN_DRIFT_BLOCKS = 8  # and measured from this many on (4 s: a steady run's bursts then read as up to 750 ppm, hence DRIFT_FLOOR)
DRIFT_STEP_S = 0.003  # the drift-corrected level moving this much within 1 s is a step (drift moves it < 2 ms/s)
FIT_STEP_S = 0.002  # the fit starts over when a block's level, less the measured drift's fall, is this far from
# either of the previous two blocks' (measured block to block: 0.4-1.4 ms at the 99th percentile, a 0.1 % mismatch's
# 0.5 ms included; a 2.9 ms step under DRIFT_STEP_S, kept in a first fit, read that mismatch as none)
FIT_START_S = 4.0  # blocks before this are not fitted: a PulseAudio server's buffer grows by a few ms as a stream
# starts (2.7 ms over 4.5 s), which a fit from the first seconds read as +732 ppm of drift
MAX_DRIFT = 0.002  # the measured mismatch is capped at 0.2 %: real clocks differ by < 0.05 %
DRIFT_FLOOR = 0.0005  # a fitted slope is taken only when this far from the current value (0.5 ms/s) at MIN_DRIFT_BLOCKS,
# less over more blocks as a fitted slope's noise is (n^-1.5: 45 ppm over DRIFT_WINDOW_BLOCKS; a first estimate 475 ppm
# off, taken from the first seconds' blocks, stuck for a whole PulseAudio mismatch cell and moved the delay 17 ms)
UNDERFLOW_MARGIN_S = 0.004  # an underflow of the ring adds this to the margin, once per episode...
UNDERFLOW_EPISODE_S = 2.0  # ...(underflows within this long of the one that added it; the ring is still filling)
MAX_MARGIN_S = 0.04  # ...up to this
MARGIN_DECAY_PER_S = 0.00005  # and the margin shrinks by this per second without one (3 ms a minute)
JUMP_S = 0.012  # a block whose lowest reading is this far (plus the span) above its target low is dropped
XRUN_HOLD_S = 10.0  # for this long after a device's xrun, and on while its excess lasts, it is resampled away, not dropped...
XRUN_JUMP_S = 0.04  # ...unless it is this large (20 s of resampling at MAX_CORRECTION)
STEP_S = 0.1  # a block whose readings span more than this holds a step (a stall), not jitter
FILL_WINDOW_S = 3.0  # in a session's first seconds a lack of more than FILL_MIN_S is filled with silence at once
FILL_MIN_S = 0.002
KP_SETTLE_PER_S = 1.0  # until the session's drift fit first measures the mismatch, every error is corrected this
SETTLE_MAX_S = 10.0  # firmly (but no longer than this): what an unmeasured drift moves the ring meanwhile, worked
# off gently afterwards, made a delay that wandered 4-5 ms over a 0.1 % mismatch cell, and on PulseAudio, where the
# ring may run below empty into the server's cushion, a slow capture clock drained the server's buffer that low
LEARNING_S = 10.0  # in a session's first seconds every dip and underflow raises the span or the margin at once...
PEAK_CONFIRM_S = 20.0  # ...afterwards only when another dip that deep, or another underflow, came within this long
PEAK_EPISODE_S = 2.0  # dips within this long of the one recorded are the same event (a step straddles two blocks)


class PlayoutController:
    """The output ring's target depth, the drift ratio and the drops that hold it.

    Args:
        hop_s: the engine's hop duration in seconds (one reading per hop).
        headroom_s: how far above empty the ring's lowest point is held, in seconds.

    Attributes:
        headroom_s: see Args.
        floor_s: an extra floor for the block mean (from the user's latency target), in seconds.
        dropped_s: total audio dropped at once so far, in seconds.
        filled_s: total silence inserted at once so far (``take_fill``), in seconds.
        margin_s: the safety margin underflows have added (decaying), in seconds.
        span_s: the jitter span, in seconds.
    """

    def __init__(self, hop_s: float, headroom_s: float) -> None:
        self.headroom_s = headroom_s
        self.floor_s = 0.0
        self.dropped_s = 0.0
        self.filled_s = 0.0
        self.margin_s = 0.0
        self._block_hops = max(1, round(BLOCK_S / hop_s))
        self._block_s = self._block_hops * hop_s
        self._fit_x = np.zeros(DRIFT_WINDOW_BLOCKS, dtype=np.float64)  # block end times, s
        self._fit_y = np.zeros(DRIFT_WINDOW_BLOCKS, dtype=np.float64)  # block means less applied resampling, s
        self._drift = 0.0
        self.restart()

    def restart(self) -> None:
        """Forget the readings and the jitter (new streams); the measured mismatch, the margin and the
        totals are kept."""
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._count = 0
        self._mean_s = math.nan
        self._correction = 0.0
        self._pending_drop_s = 0.0
        self._pending_fill_s = 0.0
        self._applied_s = 0.0  # what resampling has added to the ring so far (the ratio's integral), s
        self._clock_s = 0.0  # block time, s
        self._fit_count = 0
        self._fitted = False  # the drift fit has measured the mismatch this session (taken, or precisely confirmed)
        self._recent = [math.nan, math.nan]  # the previous two blocks' drift-corrected levels, newest first, s
        self._own_step_in_block = False  # a drop or fill of ours happened in the current block
        self._xrun_hold_s = 0.0  # time left in which an excess is not dropped (after a device's xrun), s
        self._margin_hold_s = 0.0  # time left in which another underflow adds no margin (the same episode), s
        self.span_s = 0.0
        self._disturbed = False
        self._peak_s = 0.0  # the deepest recent dip beyond the span (an isolated one raises nothing), s
        self._peak_at_s = -math.inf  # its block time, s
        self._underflow_at_s = -math.inf  # block time of the latest underflow episode, s

    @property
    def target_s(self) -> float:
        """The block mean the controller holds, in seconds."""
        return max(self.span_s + self.headroom_s + self.margin_s, self.floor_s)

    @property
    def mean_s(self) -> float:
        """The latest block's mean depth in seconds (NaN before the first block)."""
        return self._mean_s

    @property
    def ratio(self) -> float:
        """Output samples per input sample for the next chunk."""
        return 1.0 + self._drift + self._correction

    @property
    def drift_ppm(self) -> float:
        """The measured clocks' mismatch (playback faster than capture > 0), in parts per million."""
        return 1e6 * self._drift

    def observe(self, depth_s: float) -> None:
        """Feed the output ring's depth read just before a hop's write, in seconds."""
        self._sum += depth_s
        self._min = min(self._min, depth_s)
        self._max = max(self._max, depth_s)
        self._count += 1
        if self._count == self._block_hops:
            self._end_block(self._sum / self._count, self._min, self._max, depth_s)
            self._sum, self._min, self._max, self._count = 0.0, math.inf, -math.inf, 0

    def underflowed(self) -> None:
        """The ring ran dry since the previous hop: expect timing that bad again (raises the margin, once per
        episode, and after ``LEARNING_S`` only when another episode came within ``PEAK_CONFIRM_S``: one late
        wake-up leaves it short for several hops, and it takes seconds to fill back, while
        the jitter span has already grown by the dip) and fill it at once (a ring left near
        empty until the block ends would run short on every hop). The silence played is a step in the ring's
        level (the drift fit starts over) and delay it added: as after a device's xrun, the excess the late
        hops leave when they come is resampled away, not dropped (up to ``XRUN_JUMP_S``; a 9-hop underflow
        left 17 ms, and the drop threshold cut 39 ms, +78 ms/min in a PipeWire matrix cell)."""
        self._xrun_hold_s = XRUN_HOLD_S
        if self._margin_hold_s <= 0.0:
            if self._learning or self._clock_s - self._underflow_at_s <= PEAK_CONFIRM_S:
                self.margin_s = min(MAX_MARGIN_S, self.margin_s + UNDERFLOW_MARGIN_S)
            self._underflow_at_s = self._clock_s
            self._margin_hold_s = UNDERFLOW_EPISODE_S
        self._correction = MAX_CORRECTION
        self._fit_count = 0

    def device_xrun(self) -> None:
        """The device or server ran dry while the ring held audio: no margin (the ring's depth was not what
        lacked); the silence it played is a step in the ring's level (the drift fit starts over), and the
        excess it leaves is resampled away, for ``XRUN_HOLD_S`` and on while it lasts, not dropped (up to
        ``XRUN_JUMP_S``)."""
        self._fit_count = 0
        self._xrun_hold_s = XRUN_HOLD_S

    def disturbed(self) -> None:
        """The current block's dips have a known cause that is not the timing of capture and playback (the
        model missed its deadline): they do not widen the jitter span."""
        self._disturbed = True

    def take_drop(self) -> float:
        """Seconds of output to drop now (0 almost always); the caller drops them and reports them back
        with ``dropped``."""
        return self._pending_drop_s

    def dropped(self, seconds: float) -> None:
        """``seconds`` of output were dropped to honour ``take_drop`` (a step of our own: the drift fit starts
        over, and the level before it is forgotten, so that the step does not read as a server's grab)."""
        self._pending_drop_s = max(0.0, self._pending_drop_s - seconds)
        self.dropped_s += seconds
        self._fit_count = 0
        self._own_step_in_block = True

    def take_fill(self) -> float:
        """Seconds of silence to write now (0 but in a session's first ``FILL_WINDOW_S``); the caller writes
        them and reports them back with ``filled``."""
        return self._pending_fill_s

    def filled(self, seconds: float) -> None:
        """``seconds`` of silence were written to honour ``take_fill`` (a step of our own, as a drop is)."""
        self._pending_fill_s = max(0.0, self._pending_fill_s - seconds)
        self.filled_s += seconds
        self._fit_count = 0
        self._own_step_in_block = True

    def _end_block(self, mean_s: float, min_s: float, max_s: float, last_s: float) -> None:
        # resampling added to the ring by the block's middle, where its mean was read, and by its end
        applied_mid_s = self._applied_s + (self.ratio - 1.0) * self._block_s / 2
        self._applied_s += (self.ratio - 1.0) * self._block_s
        self._clock_s += self._block_s
        self._mean_s = mean_s
        self.margin_s = max(0.0, self.margin_s - MARGIN_DECAY_PER_S * self._block_s)
        self._pending_drop_s = self._pending_fill_s = 0.0
        disturbed, self._disturbed = self._disturbed, False
        own_step, self._own_step_in_block = self._own_step_in_block, False
        self._margin_hold_s = max(0.0, self._margin_hold_s - self._block_s)
        # how far the lowest reading is above where it belongs; bursts move a block's lowest reading by up
        # to the span, so only what is beyond that is excess
        excess = min_s - (self.target_s - self.span_s)
        holding, self._xrun_hold_s = self._xrun_hold_s > 0.0, max(0.0, self._xrun_hold_s - self._block_s)
        if holding and self._xrun_hold_s == 0.0 and excess > JUMP_S + self.span_s:
            self._xrun_hold_s = self._block_s  # the xrun's silence is still being worked off: hold on
        if excess > (XRUN_JUMP_S if holding else JUMP_S) + self.span_s:
            # far too much queued (start-up, a device that stopped taking audio): drop it at once, no more
            # than the latest reading shows
            self._pending_drop_s = max(0.0, min(excess, last_s - self.target_s))
            self._correction = 0.0
            self._fit_count = 0
            return
        corrected = mean_s - applied_mid_s
        newest, older = self._recent  # NaN before two blocks: max() then keeps the 0.0
        rose = max(0.0, corrected - newest, corrected - older)
        fell = max(0.0, newest - corrected, older - corrected)
        # a stall's step, a miss, a drop or fill of ours, or audio the server gave back (a step up: the readings
        # before it are no dip) says nothing of jitter; audio the server took at once (a step down) may be
        # taken again, so the whole step is a dip to foresee (the block's own readings show only part of it)
        if max_s - min_s < STEP_S and not disturbed and not own_step and rose <= DRIFT_STEP_S:
            dip = max(mean_s - min_s, fell if fell > DRIFT_STEP_S else 0.0)
            self.span_s = max(self._confirmed(dip), self.span_s - SPAN_DECAY_PER_S * self._block_s)
        error = mean_s - self.target_s
        self._fit(corrected)
        if own_step:  # levels from before our own drop or fill are no reference for the next blocks' steps
            self._recent[0] = self._recent[1] = math.nan
        self._correction = min(max(-self._proportional(error, min_s), -MAX_CORRECTION), MAX_CORRECTION)
        if self._clock_s <= FILL_WINDOW_S and -error > FILL_MIN_S:
            self._pending_fill_s, self._correction = -error, 0.0

    @property
    def _settling(self) -> bool:
        return not self._fitted and self._clock_s <= SETTLE_MAX_S

    @property
    def _learning(self) -> bool:
        return self._clock_s <= LEARNING_S

    def _confirmed(self, dip_s: float) -> float:
        """How much of a block's ``dip_s`` (s) the span may rise to: all of it while learning; afterwards as
        much of it as another dip within ``PEAK_CONFIRM_S`` reached (0 for the first of its depth; dips within
        ``PEAK_EPISODE_S`` of it are the same event). The deepest recent dip is kept until one as deep comes
        or it is ``PEAK_CONFIRM_S`` old."""
        age = self._clock_s - self._peak_at_s
        if self._learning:
            confirmed = dip_s
        else:
            confirmed = min(dip_s, self._peak_s) if PEAK_EPISODE_S < age <= PEAK_CONFIRM_S else 0.0
        if dip_s > self.span_s and (dip_s >= self._peak_s or age > PEAK_CONFIRM_S):
            self._peak_s, self._peak_at_s = dip_s, self._clock_s
        return confirmed

    def _proportional(self, error_s: float, min_s: float) -> float:
        """The proportional correction's size for a block's mean ``error_s`` above target and its lowest reading
        ``min_s`` (s): gentle within the band, firm beyond it or when the ring came close to dry, firmer still in
        a session's first seconds."""
        if self._settling:
            return KP_SETTLE_PER_S * error_s
        if error_s < 0.0 and min_s < self.headroom_s:
            return KP_PER_S * error_s
        gentle = min(max(error_s, -GENTLE_BAND_S), GENTLE_BAND_S)
        return KP_GENTLE_PER_S * gentle + KP_PER_S * (error_s - gentle)

    def _fit(self, corrected_s: float) -> None:
        """Add a block to the drift fit; from ``MIN_DRIFT_BLOCKS`` on, the line's slope is the mismatch. A
        step against either of the previous two blocks (a step may straddle two) starts the fit over, as does every
        block of a session's first ``FIT_START_S``."""
        newest, older = self._recent
        self._recent[1], self._recent[0] = newest, corrected_s
        fall = self._drift * self._block_s  # the level falls this much per block at the measured drift
        stepped = abs(corrected_s + fall - newest) > FIT_STEP_S or abs(corrected_s + 2 * fall - older) > FIT_STEP_S
        if stepped or self._clock_s < FIT_START_S:
            self._fit_count = 0
        slot = self._fit_count % DRIFT_WINDOW_BLOCKS
        self._fit_x[slot], self._fit_y[slot] = self._clock_s, corrected_s
        self._fit_count += 1
        n = min(self._fit_count, DRIFT_WINDOW_BLOCKS)
        if n < MIN_DRIFT_BLOCKS:
            return
        x, y = self._fit_x[:n], self._fit_y[:n]
        dx = x - x.mean()
        sxx = float((dx * dx).sum())
        slope = float((dx * (y - y.mean())).sum() / sxx)
        residual = y - y.mean() - slope * dx
        standard_error = math.sqrt(float((residual * residual).sum()) / (n - 2) / sxx)
        # the corrected level falls at the rate playback outruns capture: that is the ratio to add
        floor = DRIFT_FLOOR * (MIN_DRIFT_BLOCKS / n) ** 1.5
        change = abs(-slope - self._drift)
        if change > max(DRIFT_SIGNIFICANCE * standard_error, floor):
            self._drift = min(max(-slope, -MAX_DRIFT), MAX_DRIFT)
            self._fitted = True
        elif change <= floor or DRIFT_SIGNIFICANCE * standard_error <= floor:
            self._fitted = True  # no change beyond the floor, or a fit precise enough to rule one out
