"""Enhancement of audio of any rate and channel count in bounded memory: resample to the model rate, enhance
each channel on its own (offline framing or the live path, see ``chunk_enhance``), resample back, keep the
exact length. Files are read and written block by block, so memory does not grow with their length, and
the output is checked (finite, not louder than the mask allows) before it replaces anything."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soxr

from rtenhance.audio_output import AtomicAudioWriter
from rtenhance.audiofile import AudioFileError, AudioReader, output_encoding
from rtenhance.backends import DEFAULT_BACKEND, make_stepper
from rtenhance.chunk_enhance import CausalStream, CentredStream, ChannelStream
from rtenhance.dsp.resample import OFFLINE_QUALITY
from rtenhance.weights.model_weights import Model

ProgressFn = Callable[[int], None]  # called with a number of input frames just processed
BLOCK_FRAMES = 1 << 16  # input frames per block (4 s at 16 kHz)
# The complex mask is at most sqrt(2) in magnitude (tanh per component), so the output has at most twice
# the input's energy; 16 x (+12 dB) leaves room for resampling and window effects, and anything above it
# is not speech enhancement (e.g. overflowing weights).
MAX_ENERGY_GAIN = 16.0
SILENCE_ENERGY = 1e-12  # per-sample energy below which an output counts as silent


class PipelineError(AudioFileError):
    """The enhanced output is not usable (not finite, or far louder than the input)."""


class SignalPipeline:
    """(n, C) blocks at ``sample_rate`` in, enhanced (m, C) blocks out; the total output has ``frames`` frames.

    Args:
        model: the network in eval mode.
        sample_rate: input rate in Hz; resampled to the model rate and back when different.
        channels: channel count.
        frames: total input frames (the output is cut or zero-padded to this length at the end).
        streaming: the live path (causal framing) instead of the offline model's centred framing.
        backend: inference backend of the frame steps.
    """

    def __init__(self, model: Model, sample_rate: int, channels: int, frames: int, streaming: bool = False,
                 backend: str = DEFAULT_BACKEND) -> None:
        cfg = model.config.stft
        kind = CausalStream if streaming else CentredStream
        self._channels: list[ChannelStream] = [kind(make_stepper(model, backend), cfg) for _ in range(channels)]
        resampled = sample_rate != cfg.sample_rate
        self._down = soxr.ResampleStream(sample_rate, cfg.sample_rate, channels, "float32", OFFLINE_QUALITY) if resampled else None
        self._up = soxr.ResampleStream(cfg.sample_rate, sample_rate, channels, "float32", OFFLINE_QUALITY) if resampled else None
        self._model_frames = round(frames * cfg.sample_rate / sample_rate)  # as ``resample`` gives for a whole file
        self._frames = frames
        self._in16 = 0  # model-rate frames given to the channel streams
        self._out = 0  # output frames returned

    def feed(self, block: np.ndarray) -> np.ndarray:
        """Enhance the next (n, C) float32 block; returns the (m, C) output frames that are final now."""
        x = self._down.resample_chunk(block) if self._down is not None else block
        return self._emit(self._enhance(x, last=False), last=False)

    def finish(self) -> np.ndarray:
        """The remaining output frames."""
        x = self._down.resample_chunk(np.zeros((0, len(self._channels)), np.float32), last=True) if self._down else None
        return self._emit(self._enhance(x, last=True), last=True)

    def _enhance(self, x: np.ndarray | None, last: bool) -> np.ndarray:
        if x is not None:
            x = x[: max(0, self._model_frames - self._in16)] if self._down is not None else x
            self._in16 += x.shape[0]
        outs = [ch.feed(np.ascontiguousarray(x[:, c])) if x is not None else np.zeros(0, np.float32)
                for c, ch in enumerate(self._channels)]
        if last:
            if self._down is not None and self._in16 < self._model_frames:  # soxr gave a few frames fewer
                pad = np.zeros(self._model_frames - self._in16, np.float32)
                outs = [np.concatenate([o, ch.feed(pad)]) for o, ch in zip(outs, self._channels)]
            outs = [np.concatenate([o, ch.finish()]) for o, ch in zip(outs, self._channels)]
        y = np.stack(outs, axis=1)  # (m, C)
        if self._up is not None:
            y = self._up.resample_chunk(np.ascontiguousarray(y), last=last)
        return y

    def _emit(self, y: np.ndarray, last: bool) -> np.ndarray:
        y = y[: self._frames - self._out]
        if last and self._out + y.shape[0] < self._frames:
            y = np.concatenate([y, np.zeros((self._frames - self._out - y.shape[0], y.shape[1]), np.float32)])
        self._out += y.shape[0]
        return np.asarray(y, dtype=np.float32)


class OutputCheck:
    """Running check of the output: every sample finite, total energy at most ``MAX_ENERGY_GAIN`` x the input's."""

    def __init__(self, dst: Path) -> None:
        self._dst = dst
        self._energy_in = 0.0
        self._energy_out = 0.0
        self._peak_in = 0.0
        self._frames = 0

    def add_input(self, block: np.ndarray) -> None:
        x = block.astype(np.float64)
        self._energy_in += float(np.dot(x.ravel(), x.ravel()))
        self._peak_in = max(self._peak_in, float(np.abs(x).max(initial=0.0)))
        self._frames += block.shape[0]

    def add_output(self, block: np.ndarray) -> None:
        """Raises PipelineError at the first non-finite sample."""
        if not np.isfinite(block).all():
            raise PipelineError(f"{self._dst}: the enhanced output is not finite (NaN or infinity; input peak "
                                f"{self._peak_in:.3g}): not written")
        y = block.astype(np.float64)
        self._energy_out += float(np.dot(y.ravel(), y.ravel()))

    def verify(self) -> None:
        """Raises PipelineError when the output is far louder than the input."""
        floor = SILENCE_ENERGY * max(1, self._frames)
        if self._energy_out > MAX_ENERGY_GAIN * self._energy_in + floor:
            gain_db = 10 * np.log10(self._energy_out / max(self._energy_in, floor))
            raise PipelineError(f"{self._dst}: the enhanced output is {gain_db:.0f} dB louder than the input "
                                "(not speech enhancement; are the weights sane?): not written")


@dataclass(frozen=True)
class FileResult:
    """What ``enhance_file`` did: the output path and the seconds of audio it holds."""

    dst: Path
    seconds: float


def enhance_file(model: Model, src: Path, dst: Path, streaming: bool = False, backend: str = DEFAULT_BACKEND,
                 overwrite: bool = False, progress: ProgressFn | None = None) -> FileResult:
    """Enhance ``src`` into ``dst`` block by block, in the input's rate, channels, length and (when the
    container allows) encoding. Nothing is left at ``dst`` or beside it unless the whole file succeeds.

    Raises:
        AudioFileError: unreadable input (with the reason), unusable output (``PipelineError``), or ``dst``
            exists and ``overwrite`` is false.
        OutputError: the output cannot be written (no space left on device, read-only folder, ...).
    """
    with AudioReader(src) as reader:
        info = reader.info
        fmt, subtype = output_encoding(dst, info)
        pipeline = SignalPipeline(model, info.sample_rate, info.channels, info.frames, streaming, backend)
        check = OutputCheck(dst)
        with AtomicAudioWriter(dst, info.sample_rate, info.channels, fmt, subtype, overwrite) as writer:
            for block in reader.blocks(BLOCK_FRAMES):
                check.add_input(block)
                out = pipeline.feed(block)
                check.add_output(out)
                writer.write(out)
                if progress is not None:
                    progress(block.shape[0])
            out = pipeline.finish()
            check.add_output(out)
            writer.write(out)
            check.verify()
            writer.commit()
    return FileResult(dst, info.seconds)


def enhance_samples(model: Model, samples: np.ndarray, sample_rate: int, streaming: bool = False,
                    backend: str = DEFAULT_BACKEND) -> np.ndarray:
    """Enhance (N, C) samples held in memory at ``sample_rate``; returns (N, C) float32 at the same rate."""
    pipeline = SignalPipeline(model, sample_rate, samples.shape[1], samples.shape[0], streaming, backend)
    blocks = [pipeline.feed(samples[i : i + BLOCK_FRAMES]) for i in range(0, samples.shape[0], BLOCK_FRAMES)]
    return np.concatenate([*blocks, pipeline.finish()])
