"""ERB band merging: the fixed (untrained) triangular filterbank of GTCRN.

The lowest ``low_bins`` STFT bins pass through unchanged; the bins above are merged into ``n_bands``
triangular bands spaced evenly on the Glasberg-Moore ERB-rate scale, and expanded back with the
transposed matrix. With the published values (65 low bins, 64 bands, n_fft 512) 257 bins become 129 bands.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# Glasberg & Moore (1990) ERB-rate scale: erb(f) = ERB_SCALE * log10(1 + ERB_SLOPE_PER_HZ * f).
ERB_SCALE = 21.4
ERB_SLOPE_PER_HZ = 0.00437
# Guard added to numerator and denominator of every triangle slope (as in the published matrices),
# so that a zero-width triangle yields 1 instead of 0/0.
SLOPE_EPS = 1e-12


def hz_to_erb(freq_hz: np.ndarray | float) -> np.ndarray:
    """ERB-rate (Cams) of frequencies in Hz."""
    return ERB_SCALE * np.log10(1.0 + ERB_SLOPE_PER_HZ * np.asarray(freq_hz, dtype=np.float64))


def erb_to_hz(erb: np.ndarray | float) -> np.ndarray:
    """Frequencies in Hz of ERB-rates (Cams); inverse of ``hz_to_erb``."""
    return (10.0 ** (np.asarray(erb, dtype=np.float64) / ERB_SCALE) - 1.0) / ERB_SLOPE_PER_HZ


def erb_filterbank(low_bins: int, n_bands: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """Triangular ERB filterbank over the bins above ``low_bins``.

    Args:
        low_bins: bins [0, low_bins) pass through and are not part of the matrix.
        n_bands: number of ERB bands.
        n_fft: FFT size; the spectrum has n_fft // 2 + 1 bins.
        sample_rate: sample rate in Hz; the top band ends at Nyquist.

    Returns:
        float32 matrix of shape (n_bands, n_bins - low_bins): band weights per high bin.
    """
    n_bins = n_fft // 2 + 1
    nyquist_hz = sample_rate / 2
    low_edge_hz = low_bins / n_fft * sample_rate
    centres_erb = np.linspace(hz_to_erb(low_edge_hz), hz_to_erb(nyquist_hz), n_bands)
    centres = np.round(erb_to_hz(centres_erb) / sample_rate * n_fft).astype(np.int64)  # (n_bands,) bin index

    bank = np.zeros((n_bands, n_bins), dtype=np.float32)

    def rising(lo: int, hi: int) -> np.ndarray:
        return (np.arange(lo, hi) - lo + SLOPE_EPS) / (hi - lo + SLOPE_EPS)

    def falling(lo: int, hi: int) -> np.ndarray:
        return (hi - np.arange(lo, hi) + SLOPE_EPS) / (hi - lo + SLOPE_EPS)

    bank[0, centres[0] : centres[1]] = falling(centres[0], centres[1])
    for band in range(1, n_bands - 1):
        lo, mid, hi = centres[band - 1], centres[band], centres[band + 1]
        bank[band, lo:mid] = rising(lo, mid)
        bank[band, mid:hi] = falling(mid, hi)
    last = slice(centres[-2], centres[-1] + 1)
    bank[-1, last] = 1.0 - bank[-2, last]
    return np.abs(bank[:, low_bins:])


class ErbBands(nn.Module):
    """Merge STFT bins into ERB bands and back; the matrices are fixed buffers, not parameters.

    Buffers:
        compress_weight: (n_bands, n_bins - low_bins), bins -> bands.
        expand_weight: (n_bins - low_bins, n_bands), bands -> bins (the transpose).
    """

    def __init__(self, low_bins: int, n_bands: int, n_fft: int, sample_rate: int) -> None:
        super().__init__()
        self.low_bins = low_bins
        bank = torch.from_numpy(erb_filterbank(low_bins, n_bands, n_fft, sample_rate))
        self.register_buffer("compress_weight", bank)
        self.register_buffer("expand_weight", bank.T.contiguous())

    def compress(self, x: torch.Tensor) -> torch.Tensor:
        """(..., n_bins) -> (..., low_bins + n_bands)."""
        high = torch.matmul(x[..., self.low_bins :], self.compress_weight.T)
        return torch.cat([x[..., : self.low_bins], high], dim=-1)

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """(..., low_bins + n_bands) -> (..., n_bins)."""
        high = torch.matmul(x[..., self.low_bins :], self.expand_weight.T)
        return torch.cat([x[..., : self.low_bins], high], dim=-1)
