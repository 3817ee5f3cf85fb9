"""STFT analysis and synthesis, offline and streaming, from one ``StftConfig``.

Spectra are real tensors of shape (..., F, T, 2) (last axis: real, imaginary), F = n_fft // 2 + 1.
Window: sqrt-Hann (periodic) for analysis and synthesis; with 50 % overlap its square sums to one, so
overlap-add needs no normalisation in the steady state.

Two framings exist:
- centred (``causal=False``): torch.stft with reflect padding, as the published GTCRN was trained and evaluated;
- causal (``causal=True``): zero history of n_fft - hop samples, frame k covering input samples
  [(k - 1) * hop, (k + 1) * hop). This is exactly what ``StreamingStft`` produces hop by hop, and
  ``istft(..., causal=True)`` is exactly what ``StreamingIstft`` produces, delayed by n_fft - hop samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rtenhance.config import StftConfig

if TYPE_CHECKING:
    import torch  # the offline functions need PyTorch; the streaming classes are NumPy only


def sqrt_hann_numpy(n_fft: int) -> np.ndarray:
    """Periodic sqrt-Hann window of length n_fft, float32 (computed in float64)."""
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    return np.sqrt(hann).astype(np.float32)


def sqrt_hann(n_fft: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Periodic sqrt-Hann window of length n_fft (float32 unless ``dtype`` says otherwise)."""
    import torch

    return torch.hann_window(n_fft, periodic=True, dtype=torch.float64).sqrt().to(dtype or torch.float32)


def causal_frames(num_samples: int, cfg: StftConfig) -> int:
    """Frames the causal framing of ``num_samples`` samples needs so that every sample is synthesised."""
    hops = -(-num_samples // cfg.hop_samples)  # ceil
    return hops + (cfg.n_fft - cfg.hop_samples) // cfg.hop_samples


def stft(x: torch.Tensor, cfg: StftConfig, causal: bool = False) -> torch.Tensor:
    """Analyse a waveform.

    Args:
        x: (..., N) samples at cfg.sample_rate.
        cfg: the STFT configuration.
        causal: zero-history causal framing instead of centred reflect framing.

    Returns:
        (..., F, T, 2) spectrum; T = N // hop + 1 (centred) or ``causal_frames(N)`` (causal).
    """
    import torch

    window = sqrt_hann(cfg.n_fft, x.dtype).to(x.device)
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])  # (B', N)
    if causal:
        n_frames = causal_frames(x.shape[-1], cfg)
        history = cfg.n_fft - cfg.hop_samples
        total = (n_frames - 1) * cfg.hop_samples + cfg.n_fft
        flat = torch.nn.functional.pad(flat, (history, total - history - flat.shape[-1]))
        spec = torch.stft(flat, cfg.n_fft, cfg.hop_samples, cfg.n_fft, window, center=False, return_complex=True)
    else:
        # Reflection needs more samples than the padding; shorter signals are zero-padded instead.
        pad_mode = "reflect" if flat.shape[-1] > cfg.n_fft // 2 else "constant"
        spec = torch.stft(
            flat, cfg.n_fft, cfg.hop_samples, cfg.n_fft, window, center=True, pad_mode=pad_mode, return_complex=True
        )
    spec = torch.view_as_real(spec)  # (B', F, T, 2)
    return spec.reshape(*lead, *spec.shape[-3:])


def istft(spec: torch.Tensor, cfg: StftConfig, length: int, causal: bool = False) -> torch.Tensor:
    """Synthesise a waveform; inverse of ``stft`` with the same framing.

    Args:
        spec: (..., F, T, 2) spectrum.
        cfg: the STFT configuration.
        length: number of output samples N (the analysed signal's length).
        causal: the spectrum used causal framing.

    Returns:
        (..., N) samples.
    """
    import torch

    window = sqrt_hann(cfg.n_fft, spec.dtype).to(spec.device)
    lead = spec.shape[:-3]
    flat = torch.view_as_complex(spec.reshape(-1, *spec.shape[-3:]).contiguous())  # (B', F, T)
    if not causal:
        out = torch.istft(flat, cfg.n_fft, cfg.hop_samples, cfg.n_fft, window, center=True, length=length)
        return out.reshape(*lead, length)
    frames = torch.fft.irfft(flat, n=cfg.n_fft, dim=-2) * window[:, None]  # (B', n_fft, T)
    n_frames = frames.shape[-1]
    total = (n_frames - 1) * cfg.hop_samples + cfg.n_fft
    out = torch.nn.functional.fold(
        frames, output_size=(1, total), kernel_size=(1, cfg.n_fft), stride=(1, cfg.hop_samples)
    )  # (B', 1, 1, total): overlap-add
    history = cfg.n_fft - cfg.hop_samples
    out = out.reshape(-1, total)[:, history : history + length]
    if out.shape[-1] < length:
        out = torch.nn.functional.pad(out, (0, length - out.shape[-1]))
    return out.reshape(*lead, length)


class StreamingStft:
    """Hop-by-hop analysis with causal framing; no buffer allocation per hop.

    ``analyze(hop)`` takes hop_samples new samples and returns the spectrum of the last n_fft samples
    (the previous hop and this one: the configuration guarantees n_fft = 2 * hop).
    """

    def __init__(self, cfg: StftConfig) -> None:
        self.cfg = cfg
        h = cfg.hop_samples
        window = sqrt_hann_numpy(cfg.n_fft)
        self._window_old, self._window_new = window[:h].copy(), window[h:].copy()
        self._previous = np.zeros(h, dtype=np.float32)
        self._windowed = np.zeros(cfg.n_fft, dtype=np.float32)
        self._windowed_old, self._windowed_new = self._windowed[:h], self._windowed[h:]
        self._spectrum = np.zeros(cfg.n_bins, dtype=np.complex64)
        self._frame = self._spectrum.view(np.float32).reshape(cfg.n_bins, 2)  # same memory as _spectrum

    def reset(self) -> None:
        """Forget the history (back to zeros)."""
        self._previous.fill(0.0)

    def analyze(self, hop: np.ndarray) -> np.ndarray:
        """Analyse one hop.

        Args:
            hop: (hop_samples,) float32 samples.

        Returns:
            (F, 2) float32 frame (real, imaginary); a view of an internal buffer, valid until the next call.
        """
        np.multiply(self._previous, self._window_old, out=self._windowed_old)
        np.multiply(hop, self._window_new, out=self._windowed_new)
        np.copyto(self._previous, hop)
        np.fft.rfft(self._windowed, out=self._spectrum)
        return self._frame


class StreamingIstft:
    """Frame-by-frame synthesis by windowed overlap-add; no buffer allocation per hop.

    ``synthesize(frame)`` returns the hop_samples samples that the frame completes; the output stream is
    ``istft(..., causal=True)`` delayed by n_fft - hop samples.
    """

    def __init__(self, cfg: StftConfig) -> None:
        self.cfg = cfg
        h = cfg.hop_samples
        self._window = sqrt_hann_numpy(cfg.n_fft)
        self._samples = np.zeros(cfg.n_fft, dtype=np.float32)
        self._samples_head, self._samples_tail = self._samples[:h], self._samples[h:]
        self._overlap = np.zeros(cfg.n_fft - h, dtype=np.float32)
        self._out = np.zeros(h, dtype=np.float32)
        self._complex = np.zeros(cfg.n_bins, dtype=np.complex64)
        self._complex_pairs = self._complex.view(np.float32).reshape(cfg.n_bins, 2)

    def reset(self) -> None:
        """Forget the pending overlap (back to zeros)."""
        self._overlap.fill(0.0)

    def synthesize(self, frame: np.ndarray) -> np.ndarray:
        """Synthesise one frame.

        Args:
            frame: (F, 2) float32 frame (real, imaginary).

        Returns:
            (hop_samples,) float32 samples; a view of an internal buffer, valid until the next call.
        """
        np.copyto(self._complex_pairs, frame)
        np.fft.irfft(self._complex, n=self.cfg.n_fft, out=self._samples)
        np.multiply(self._samples, self._window, out=self._samples)
        np.add(self._overlap, self._samples_head, out=self._out)
        np.copyto(self._overlap, self._samples_tail)
        return self._out
