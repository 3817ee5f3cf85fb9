"""The hybrid loss: its minimum at a perfect prediction, and a scale-invariant SI-SNR term."""

from __future__ import annotations

import torch

from rtenhance.config import StftConfig
from rtenhance.dsp.stft import istft, stft
from rtenhance.train.config import LossConfig
from rtenhance.train.loss import hybrid_loss, neg_log_sisnr

CFG = StftConfig()
N = 16000


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    clean = 0.1 * torch.randn(2, N, generator=g)
    noisy = clean + 0.05 * torch.randn(2, N, generator=g)
    return clean, noisy


def _loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return hybrid_loss(stft(pred, CFG, True), stft(target, CFG, True), pred, target, LossConfig()).total


def test_perfect_prediction_zeroes_spectral_terms_and_minimises_the_loss():
    clean, noisy = _pair()
    spec = stft(clean, CFG, causal=True)
    terms = hybrid_loss(spec, spec, clean, clean, LossConfig())
    assert terms.ri.item() == 0.0 and terms.mag.item() == 0.0
    assert terms.neg_log_sisnr.item() < -6.0  # SI-SNR capped only by the 1e-8 regulariser
    perfect = terms.total.item()
    for pred in (noisy, 0.5 * clean, clean + 1e-3 * torch.randn(2, N)):
        assert _loss(pred, clean).item() > perfect


def test_sisnr_term_is_scale_invariant():
    clean, noisy = _pair(1)
    base = neg_log_sisnr(noisy, clean)
    for scale in (0.1, 3.0):
        torch.testing.assert_close(neg_log_sisnr(scale * noisy, clean), base, rtol=1e-4, atol=1e-5)


def test_sisnr_term_is_minus_log10_of_the_power_ratio():
    clean, _ = _pair(2)
    noise = torch.randn(2, N)
    noise = noise - (noise * clean).sum(-1, keepdim=True) / clean.square().sum(-1, keepdim=True) * clean  # orthogonal
    noise = noise * (clean.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True)) * 10 ** (-10 / 20)
    torch.testing.assert_close(neg_log_sisnr(clean + noise, clean), torch.tensor(-1.0), rtol=1e-4, atol=1e-4)


def test_loss_has_gradients_through_the_synthesis():
    clean, noisy = _pair(3)
    spec = stft(noisy, CFG, causal=True).requires_grad_(True)
    pred = istft(spec, CFG, N, causal=True)
    hybrid_loss(spec, stft(clean, CFG, True), pred, clean, LossConfig()).total.backward()
    assert spec.grad is not None and torch.isfinite(spec.grad).all() and spec.grad.abs().sum() > 0
