"""Speech quality metrics of one signal against its clean reference: SI-SDR, WB-PESQ, STOI, DNSMOS.

All functions take (N,) float arrays at 16 kHz and return floats; DNSMOS needs no reference.
"""

from __future__ import annotations

import numpy as np

METRIC_RATE = 16000  # Hz: WB-PESQ, STOI and DNSMOS are defined here at 16 kHz
SDR_EPS = 1e-8  # regularises the SI-SDR ratio


class MetricError(ValueError):
    """A metric cannot be computed for this signal (wrong rate, silent reference, too short)."""


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (both signals made zero-mean first)."""
    est = np.asarray(estimate, dtype=np.float64) - np.mean(estimate)
    ref = np.asarray(reference, dtype=np.float64) - np.mean(reference)
    scale = np.dot(est, ref) / (np.dot(ref, ref) + SDR_EPS)
    target = scale * ref
    return float(10.0 * np.log10((np.dot(target, target) + SDR_EPS) / (np.sum(np.square(est - target)) + SDR_EPS)))


def pesq_wb(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Wide-band PESQ (ITU-T P.862.2) MOS-LQO, about 1.0 to 4.64.

    Raises:
        MetricError: PESQ found no speech in the reference.
    """
    from pesq import PesqError, pesq

    try:
        return float(pesq(METRIC_RATE, np.asarray(reference, np.float32), np.asarray(estimate, np.float32), "wb"))
    except PesqError as exc:
        raise MetricError(f"PESQ failed: {exc}") from None


def stoi(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Short-time objective intelligibility, 0 to 1."""
    from pystoi import stoi as _stoi

    return float(_stoi(np.asarray(reference, np.float64), np.asarray(estimate, np.float64), METRIC_RATE, extended=False))
