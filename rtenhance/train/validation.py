"""A fixed validation set (made once from held-out speakers) and its metrics."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from rtenhance.dsp.stft import istft, stft
from rtenhance.metrics import MetricError, pesq_wb, si_sdr
from rtenhance.model.gtcrn import GTCRN
from rtenhance.train.loss import LossTerms
from rtenhance.train.mixing import Mixer

VAL_BATCH = 16  # mixtures per forward pass during validation
FINGERPRINT_HEX_CHARS = 16


@dataclass(frozen=True)
class ValidationSet:
    """Noisy and target waveforms, (M, N) float32 tensors.

    Attributes:
        fingerprint: short digest of how the mixtures were made (seed, count, length, augmentation, and
            the names and lengths of the clips): validation scores are comparable only under the same
            fingerprint. It describes the recipe, not the samples, which differ in the last bits between
            machines and library versions.
    """

    noisy: torch.Tensor
    target: torch.Tensor
    fingerprint: str

    @classmethod
    def make(cls, mixer: Mixer, count: int, seconds: float) -> "ValidationSet":
        """Draw ``count`` mixtures of ``seconds`` seconds from ``mixer`` (seeded: always the same set)."""
        corpus = mixer.corpus
        clips = [(c.name, c.samples.shape[0]) for c in (*corpus.speech, *corpus.noise, *corpus.rirs)]
        recipe = repr((mixer.seed, count, seconds, mixer.sample_rate, dataclasses.asdict(mixer.cfg), clips))
        mixtures = [mixer.example(seconds) for _ in range(count)]
        return cls(
            torch.from_numpy(np.stack([m.noisy for m in mixtures])),  # (M, N)
            torch.from_numpy(np.stack([m.target for m in mixtures])),
            hashlib.sha256(recipe.encode()).hexdigest()[:FINGERPRINT_HEX_CHARS],
        )


def validate(
    model: GTCRN,
    val_set: ValidationSet,
    compute_loss: Callable[[GTCRN, torch.Tensor, torch.Tensor], LossTerms],
    with_pesq: bool,
) -> dict[str, float]:
    """Mean loss, SI-SDR (dB) and, if asked, WB-PESQ of the model's output on ``val_set``.

    The model is put in eval mode for the pass and back in its previous mode afterwards.
    """
    device = next(model.parameters()).device
    cfg = model.config.stft
    losses, sdrs, pesqs = [], [], []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for i in range(0, val_set.noisy.shape[0], VAL_BATCH):
                noisy = val_set.noisy[i : i + VAL_BATCH].to(device)  # (b, N)
                target = val_set.target[i : i + VAL_BATCH].to(device)
                losses.append(float(compute_loss(model, noisy, target).total) * noisy.shape[0])
                enhanced = istft(model(stft(noisy, cfg, causal=True)), cfg, noisy.shape[-1], causal=True)
                for est, ref in zip(enhanced.cpu().numpy(), target.cpu().numpy()):
                    sdrs.append(si_sdr(est, ref))
                    if with_pesq:
                        try:
                            pesqs.append(pesq_wb(est, ref))
                        except MetricError:
                            continue
    finally:
        model.train(was_training)
    metrics = {"loss": sum(losses) / val_set.noisy.shape[0], "si_sdr": float(np.mean(sdrs))}
    if pesqs:
        metrics["pesq"] = float(np.mean(pesqs))
    return metrics
