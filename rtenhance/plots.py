"""Spectrogram figures: the noisy input above the enhanced output, as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PLOT_N_FFT = 512  # samples per spectrogram frame (32 ms at 16 kHz)
PLOT_HOP = 128  # samples between frames
DB_RANGE = 80.0  # dB shown below the loudest bin of the pair
FIGURE_SIZE = (10.0, 6.0)  # inches
DPI = 100


def _spectrogram_db(x: np.ndarray) -> np.ndarray:
    """(N,) samples -> (F, T) power in dB."""
    window = np.hanning(PLOT_N_FFT)
    n_frames = max(1, 1 + (x.shape[0] - PLOT_N_FFT) // PLOT_HOP)
    padded = np.pad(x, (0, max(0, PLOT_N_FFT - x.shape[0])))
    frames = np.stack([padded[i * PLOT_HOP : i * PLOT_HOP + PLOT_N_FFT] * window for i in range(n_frames)])
    return (10.0 * np.log10(np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-12)).T  # (F, T)


def plot_pair(noisy: np.ndarray, enhanced: np.ndarray, sample_rate: int, title: str, path: str | Path) -> None:
    """Write a PNG with the noisy spectrogram above the enhanced one, on the same dB scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [_spectrogram_db(np.asarray(noisy, np.float64)), _spectrogram_db(np.asarray(enhanced, np.float64))]
    top = max(float(s.max()) for s in specs)
    extent = (0.0, noisy.shape[0] / sample_rate, 0.0, sample_rate / 2000.0)
    fig, axes = plt.subplots(2, 1, figsize=FIGURE_SIZE, sharex=True)
    for ax, spec, label in zip(axes, specs, ("noisy", "enhanced")):
        image = ax.imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=top - DB_RANGE, vmax=top, cmap="magma")
        ax.set_ylabel("kHz")
        ax.set_title(f"{title}: {label}")
    axes[-1].set_xlabel("seconds")
    fig.colorbar(image, ax=axes, label="dB")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
