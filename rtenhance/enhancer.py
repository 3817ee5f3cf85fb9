"""The frame pipeline, spelled out once: samples -> STFT frame -> model step -> iSTFT -> samples.

``Enhancer`` is the streaming form (any chunk size in, what is ready out); ``enhance_offline`` is the
whole-signal form used for files and training checks. Both run at the model's sample rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from rtenhance.backends import FrameStepper
from rtenhance.config import StftConfig
from rtenhance.dsp.stft import StreamingIstft, StreamingStft, sqrt_hann_numpy

if TYPE_CHECKING:
    from rtenhance.model.gtcrn import GTCRN

ENVELOPE_FLOOR = 1e-11  # overlap-add window envelope below this is treated as uncovered (as torch.istft does)
CENTRED_BLOCK_FRAMES = 1024  # frames per FFT block of ``enhance_centred`` (16 s at 16 ms hops)


class Enhancer:
    """Streaming enhancement of one mono stream at the model rate.

    The output stream equals ``enhance_offline(model, x, causal=True)`` delayed by ``latency_samples``
    (n_fft - hop = 256 samples, 16 ms); in real time, collecting a hop adds another hop, so the
    algorithmic latency is ``algorithmic_latency_samples`` = n_fft (512 samples, 32 ms).
    """

    def __init__(self, stepper: FrameStepper, cfg: StftConfig) -> None:
        self.cfg = cfg
        self.stepper = stepper
        self.hop_samples = cfg.hop_samples
        self._analysis = StreamingStft(cfg)
        self._synthesis = StreamingIstft(cfg)
        self._pending = np.zeros(cfg.hop_samples, dtype=np.float32)
        self._pending_count = 0
        self._samples_in = 0
        self._samples_out = 0

    @property
    def latency_samples(self) -> int:
        """Delay of the output stream relative to the input stream, in samples (256)."""
        return self.cfg.n_fft - self.cfg.hop_samples

    @property
    def algorithmic_latency_samples(self) -> int:
        """Latency in real time: hop collection plus ``latency_samples`` (512 samples = 32 ms)."""
        return self.cfg.n_fft

    def reset(self) -> None:
        """Forget all history: STFT buffers, model state and pending input."""
        self.stepper.reset()
        self._analysis.reset()
        self._synthesis.reset()
        self._pending_count = 0
        self._samples_in = 0
        self._samples_out = 0

    def process(self, hop: np.ndarray) -> np.ndarray:
        """Enhance exactly one hop.

        Args:
            hop: (hop_samples,) float32 samples.

        Returns:
            (hop_samples,) float32 enhanced samples, ``latency_samples`` behind the input; a view of an
            internal buffer, valid until the next call.
        """
        frame = self._analysis.analyze(hop)
        return self._synthesis.synthesize(self.stepper.step(frame))

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Enhance any number of samples; returns every output sample that is ready (a new array).

        Args:
            samples: (N,) samples, any N >= 0.

        Returns:
            (M,) float32 enhanced samples, M a multiple of hop_samples.
        """
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        h = self.hop_samples
        self._samples_in += samples.shape[0]
        ready = (self._pending_count + samples.shape[0]) // h
        out = np.empty(ready * h, dtype=np.float32)
        pos = 0
        for i in range(ready):
            take = h - self._pending_count
            self._pending[self._pending_count :] = samples[pos : pos + take]
            pos += take
            self._pending_count = 0
            out[i * h : (i + 1) * h] = self.process(self._pending)
        rest = samples.shape[0] - pos
        self._pending[self._pending_count : self._pending_count + rest] = samples[pos:]
        self._pending_count += rest
        self._samples_out += out.shape[0]
        return out

    def flush(self) -> np.ndarray:
        """Push zeros through until every input sample has come out, return the rest, then ``reset``.

        After ``flush`` the total output is exactly (total input + latency_samples) samples.
        """
        target = self._samples_in + self.latency_samples
        parts = []
        while self._samples_out < target:
            parts.append(self.feed(np.zeros(self.hop_samples - self._pending_count, dtype=np.float32)))
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        excess = self._samples_out - target
        if excess > 0:
            out = out[: out.shape[0] - excess]
        self.reset()
        return out

    def enhance(
        self, samples: np.ndarray, chunk_samples: int = 16000, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Whole signal through the streaming path, aligned to the input: (N,) -> (N,).

        Args:
            samples: (N,) samples at the model rate.
            chunk_samples: input is fed in chunks of this many samples.
            progress: optional callback receiving the number of samples fed after each chunk.
        """
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.reset()
        parts = []
        for start in range(0, x.shape[0], chunk_samples):
            parts.append(self.feed(x[start : start + chunk_samples]))
            if progress is not None:
                progress(min(chunk_samples, x.shape[0] - start))
        parts.append(self.flush())
        out = np.concatenate(parts)
        return out[self.latency_samples : self.latency_samples + x.shape[0]]


def enhance_centred(stepper: FrameStepper, samples: np.ndarray, cfg: StftConfig) -> np.ndarray:
    """Enhance one whole signal frame by frame with the centred framing of ``enhance_offline`` (NumPy and
    the stepper only, no PyTorch): the same samples as ``enhance_offline(model, x)`` within float
    tolerance, since the model is causal over frames. The FFTs run over blocks of ``CENTRED_BLOCK_FRAMES``.

    Args:
        stepper: the model's stepper (reset first).
        samples: (N,) float32 at the model rate.
        cfg: the model's STFT (n_fft = 2 hop, as ``StftConfig`` guarantees).

    Returns:
        (N,) float32 enhanced samples.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    n, hop, n_fft = x.shape[0], cfg.hop_samples, cfg.n_fft
    n_frames = n // hop + 1
    padded = np.pad(x, n_fft // 2, mode="reflect" if n > n_fft // 2 else "constant")  # (N + n_fft,)
    hops = padded[: (n_frames + 1) * hop].reshape(n_frames + 1, hop)  # frame t is hops t and t + 1
    window = sqrt_hann_numpy(n_fft)
    out = np.zeros((n_frames + 1, hop), dtype=np.float32)  # overlap-added hops
    stepper.reset()
    for first in range(0, n_frames, CENTRED_BLOCK_FRAMES):
        last = min(first + CENTRED_BLOCK_FRAMES, n_frames)
        frames = np.concatenate([hops[first:last], hops[first + 1 : last + 1]], axis=1) * window  # (B, n_fft)
        spectra = np.fft.rfft(frames, axis=1)  # (B, F)
        noisy = np.stack([spectra.real, spectra.imag], axis=-1).astype(np.float32)  # (B, F, 2)
        enhanced = np.empty_like(noisy)
        for i in range(noisy.shape[0]):
            enhanced[i] = stepper.step(noisy[i])
        y = np.fft.irfft(enhanced[..., 0] + 1j * enhanced[..., 1], n=n_fft, axis=1) * window  # (B, n_fft)
        out[first:last] += y[:, :hop]
        out[first + 1 : last + 1] += y[:, hop:]
    envelope = np.zeros_like(out)  # overlap-added squared windows, as torch.istft divides by
    envelope[:n_frames] += window[:hop] ** 2
    envelope[1:] += window[hop:] ** 2
    flat, env = out.reshape(-1), envelope.reshape(-1)
    covered = env > ENVELOPE_FLOOR
    flat[covered] /= env[covered]
    return flat[n_fft // 2 : n_fft // 2 + n].astype(np.float32)


def enhance_offline(model: GTCRN, samples: np.ndarray, causal: bool = False) -> np.ndarray:
    """Enhance whole signals with ``model.forward`` (needs PyTorch; ``enhance_centred`` does not).

    Args:
        model: the network (eval mode).
        samples: (N,) or (B, N) float32 at the model rate.
        causal: causal (streaming-equivalent) framing instead of the published centred framing.

    Returns:
        Enhanced samples, the same shape as ``samples``.
    """
    import torch

    from rtenhance.dsp.stft import istft, stft

    cfg = model.config.stft
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    batched = x.reshape(-1, x.shape[-1])  # (B, N)
    with torch.inference_mode():
        y = istft(model(stft(batched, cfg, causal=causal)), cfg, batched.shape[-1], causal=causal)
    return y.reshape(x.shape).numpy()
