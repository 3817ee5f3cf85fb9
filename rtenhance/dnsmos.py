"""DNSMOS P.835 (SIG, BAK, OVRL) with the ONNX models the ``speechmos`` package ships (no download).

The scoring follows ``speechmos.dnsmos`` (Microsoft's ``dnsmos_local.py``): clips shorter than 9.01 s are
repeated to that length, scored on 9.01 s windows every second, the raw outputs mapped by the published
polynomials, averaged over windows. Sessions run with a fixed number of threads (the library default uses
every core, which stalls on a shared machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DNSMOS_RATE = 16000  # Hz
WINDOW_SECONDS = 9.01  # length of one scored window
HOP_SECONDS = 1.0  # between scored windows
# Polynomials mapping raw (not personalised) outputs to MOS, highest power first (speechmos / DNSMOS).
SIG_POLY = (-0.08397278, 1.22083953, 0.0052439)
BAK_POLY = (-0.13166888, 1.60915514, -0.39604546)
OVRL_POLY = (-0.06766283, 1.11546468, 0.04602535)


@dataclass(frozen=True)
class DnsmosScore:
    """Mean opinion scores, 1 to 5."""

    sig: float
    bak: float
    ovrl: float


def _model_path() -> Path:
    import speechmos

    return Path(speechmos.__file__).resolve().parent / "dnsmos_models" / "sig_bak_ovr.onnx"


class Dnsmos:
    """A loaded DNSMOS P.835 model.

    Args:
        threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(_model_path()), options, providers=["CPUExecutionProvider"])

    def __call__(self, samples: np.ndarray) -> DnsmosScore:
        """Score (N,) float samples at 16 kHz in [-1, 1].

        Raises:
            ValueError: empty input.
        """
        audio = np.asarray(samples, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise ValueError("DNSMOS needs a non-empty signal")
        window = int(WINDOW_SECONDS * DNSMOS_RATE)
        while audio.shape[0] < window:
            audio = np.concatenate([audio, audio])
        hop = int(HOP_SECONDS * DNSMOS_RATE)
        n_windows = int(np.floor(audio.shape[0] / DNSMOS_RATE) - WINDOW_SECONDS) + 1
        raw = []
        for k in range(n_windows):
            segment = audio[k * hop : k * hop + window]
            if segment.shape[0] < window:
                continue
            raw.append(self._session.run(None, {"input_1": segment[np.newaxis, :]})[0][0])  # (3,): sig, bak, ovrl
        sig, bak, ovrl = np.mean(np.asarray(raw, dtype=np.float64), axis=0)
        return DnsmosScore(
            float(np.polyval(SIG_POLY, sig)), float(np.polyval(BAK_POLY, bak)), float(np.polyval(OVRL_POLY, ovrl))
        )
