"""The official GTCRN hybrid loss (DESIGN section 2).

loss = ri_weight * (MSE(real_c) + MSE(imag_c)) + mag_weight * MSE(|X|^c) + sisnr_weight * (-log10 SI-SNR)

with compressed spectra X_c = X / |X|^(1 - c) (phase kept, magnitude |X|^c, c = 0.3) and the SI-SNR of
the waveforms as a power ratio (not in dB), exactly as the official training code computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rtenhance.train.config import LossConfig

MAG_EPS = 1e-12  # added under the square root of the magnitude
SISNR_EPS = 1e-8  # regularises the SI-SNR ratio and projection


@dataclass(frozen=True)
class LossTerms:
    """The loss and its parts (scalars), for logging."""

    total: torch.Tensor
    ri: torch.Tensor
    mag: torch.Tensor
    neg_log_sisnr: torch.Tensor


def neg_log_sisnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -log10(SI-SNR) with SI-SNR as a power ratio.

    Args:
        pred: (B, N) estimated waveforms.
        target: (B, N) reference waveforms.
    """
    scale = (target * pred).sum(-1, keepdim=True) / (target.square().sum(-1, keepdim=True) + SISNR_EPS)
    projected = scale * target  # (B, N): the part of pred along target
    ratio = projected.square().sum(-1) / ((pred - projected).square().sum(-1) + SISNR_EPS)
    return -torch.log10(ratio + SISNR_EPS).mean()


def hybrid_loss(
    pred_spec: torch.Tensor, true_spec: torch.Tensor, pred_wave: torch.Tensor, true_wave: torch.Tensor, cfg: LossConfig
) -> LossTerms:
    """The hybrid loss.

    Args:
        pred_spec: (B, F, T, 2) estimated spectrum (real, imaginary).
        true_spec: (B, F, T, 2) target spectrum.
        pred_wave: (B, N) estimated waveform (the synthesis of ``pred_spec``).
        true_wave: (B, N) target waveform.
        cfg: loss weights and compression exponent.
    """
    c = cfg.compress_exponent
    pred_mag = torch.sqrt(pred_spec.square().sum(-1) + MAG_EPS)  # (B, F, T)
    true_mag = torch.sqrt(true_spec.square().sum(-1) + MAG_EPS)
    pred_c = pred_spec / pred_mag.pow(1.0 - c).unsqueeze(-1)  # (B, F, T, 2)
    true_c = true_spec / true_mag.pow(1.0 - c).unsqueeze(-1)
    ri = torch.nn.functional.mse_loss(pred_c[..., 0], true_c[..., 0]) + torch.nn.functional.mse_loss(
        pred_c[..., 1], true_c[..., 1]
    )
    mag = torch.nn.functional.mse_loss(pred_mag.pow(c), true_mag.pow(c))
    sisnr = neg_log_sisnr(pred_wave, true_wave)
    total = cfg.ri_weight * ri + cfg.mag_weight * mag + cfg.sisnr_weight * sisnr
    return LossTerms(total, ri.detach(), mag.detach(), sisnr.detach())
