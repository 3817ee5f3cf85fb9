"""GTCRN: the whole network, offline (``forward``) and frame by frame (``step``) over the same weights."""

from __future__ import annotations

import torch
from torch import nn

from rtenhance.config import ModelConfig
from rtenhance.dsp.erb import ErbBands
from rtenhance.model.modules import BAND_STRIDE, SFE_NEIGHBOURS, ConvBlock, DPGRNN, GTConvBlock, sfe
from rtenhance.model.state import StreamState

INPUT_FEATURES = 3  # magnitude, real, imaginary
MASK_CHANNELS = 2  # complex ratio mask: real, imaginary
MAGNITUDE_EPS = 1e-12  # added under the square root of the magnitude feature


def strided_bands(bands: int) -> int:
    """Bands after a (1, 5) convolution with stride 2 and padding 2: ceil(bands / 2)."""
    return (bands - 1) // BAND_STRIDE + 1


class Encoder(nn.Module):
    """Two strided ConvBlocks then one GTConv block per dilation. (B, 9, T, F0) -> (B, C, T, F2) + skips."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.channels
        bands = strided_bands(strided_bands(cfg.n_bands))
        self.en_convs = nn.ModuleList(
            [ConvBlock(INPUT_FEATURES * SFE_NEIGHBOURS, c), ConvBlock(c, c, groups=2)]
            + [GTConvBlock(c, d) for d in cfg.gt_dilations]
        )
        self.bands = bands

    @property
    def gt_blocks(self) -> list[GTConvBlock]:
        return list(self.en_convs)[2:]  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for block in self.en_convs:
            x = block(x)
            skips.append(x)
        return x, skips

    def step(
        self, x: torch.Tensor, conv: tuple[torch.Tensor, ...], tra: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, list[torch.Tensor], tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        skips = []
        for block in list(self.en_convs)[:2]:
            x = block(x)
            skips.append(x)
        new_conv, new_tra = [], []
        for block, cache, hidden in zip(self.gt_blocks, conv, tra):
            x, cache, hidden = block.step(x, cache, hidden)
            skips.append(x)
            new_conv.append(cache)
            new_tra.append(hidden)
        return x, skips, tuple(new_conv), tuple(new_tra)


class Decoder(nn.Module):
    """Mirror of the encoder, each block fed (x + matching skip); ends in the 2-channel mask."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.channels
        f0 = cfg.n_bands
        f1 = strided_bands(f0)
        f2 = strided_bands(f1)
        # A transposed stride-2 convolution maps F to 2F - 1; output padding restores an even width.
        pad1 = f1 - (BAND_STRIDE * f2 - 1)
        pad0 = f0 - (BAND_STRIDE * f1 - 1)
        self.de_convs = nn.ModuleList(
            [GTConvBlock(c, d, transposed=True) for d in reversed(cfg.gt_dilations)]
            + [
                ConvBlock(c, c, groups=2, transposed=True, output_padding=pad1),
                ConvBlock(c, MASK_CHANNELS, transposed=True, output_padding=pad0, is_last=True),
            ]
        )

    @property
    def gt_blocks(self) -> list[GTConvBlock]:
        return list(self.de_convs)[:-2]  # type: ignore[return-value]

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for block, skip in zip(self.de_convs, reversed(skips)):
            x = block(x + skip)
        return x

    def step(
        self,
        x: torch.Tensor,
        skips: list[torch.Tensor],
        conv: tuple[torch.Tensor, ...],
        tra: tuple[torch.Tensor, ...],
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        rev = list(reversed(skips))
        n_gt = len(conv)
        new_conv, new_tra = [], []
        for block, skip, cache, hidden in zip(self.gt_blocks, rev, conv, tra):
            x, cache, hidden = block.step(x + skip, cache, hidden)
            new_conv.append(cache)
            new_tra.append(hidden)
        for block, skip in zip(list(self.de_convs)[n_gt:], rev[n_gt:]):
            x = block(x + skip)
        return x, tuple(new_conv), tuple(new_tra)


class GTCRN(nn.Module):
    """Grouped temporal convolutional recurrent network (Rong et al., ICASSP 2024).

    Predicts a complex ratio mask over ERB bands from (magnitude, real, imaginary) features and applies
    it to the noisy spectrum. Causal: output frame t depends on input frames <= t only.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        cfg = self.config
        self.erb = ErbBands(cfg.erb_low_bins, cfg.erb_bands, cfg.stft.n_fft, cfg.stft.sample_rate)
        self.encoder = Encoder(cfg)
        self.dpgrnns = nn.ModuleList([DPGRNN(cfg.channels, self.encoder.bands) for _ in range(cfg.dpgrnn_blocks)])
        self.decoder = Decoder(cfg)

    def _features(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, F, T, 2) spectrum -> (B, 9, T, bands) features."""
        real = spec[..., 0].transpose(1, 2)  # (B, T, F)
        imag = spec[..., 1].transpose(1, 2)
        mag = torch.sqrt(real**2 + imag**2 + MAGNITUDE_EPS)
        feat = torch.stack([mag, real, imag], dim=1)  # (B, 3, T, F)
        return sfe(self.erb.compress(feat))  # (B, 9, T, bands)

    def _apply_mask(self, mask: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        """(B, 2, T, bands) mask, (B, F, T, 2) spectrum -> (B, F, T, 2) enhanced spectrum."""
        m = self.erb.expand(mask).permute(0, 3, 2, 1)  # (B, F, T, 2)
        real = spec[..., 0] * m[..., 0] - spec[..., 1] * m[..., 1]
        imag = spec[..., 1] * m[..., 0] + spec[..., 0] * m[..., 1]
        return torch.stack([real, imag], dim=-1)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Enhance whole spectrograms.

        Args:
            spec: (B, F, T, 2) noisy spectrum (real, imaginary), F = n_fft // 2 + 1.

        Returns:
            (B, F, T, 2) enhanced spectrum.
        """
        x, skips = self.encoder(self._features(spec))  # (B, C, T, 33)
        for block in self.dpgrnns:
            x = block(x)
        return self._apply_mask(self.decoder(x, skips), spec)

    def init_state(self, batch: int = 1) -> StreamState:
        """Zero streaming state for ``batch`` independent streams (see ``StreamState`` for shapes)."""
        bands = self.encoder.bands
        enc = [b.init_state(batch, bands) for b in self.encoder.gt_blocks]
        dec = [b.init_state(batch, bands) for b in self.decoder.gt_blocks]
        p = next(self.parameters())
        to = lambda t: t.to(device=p.device, dtype=p.dtype)  # noqa: E731
        return StreamState(
            encoder_conv=tuple(to(c) for c, _ in enc),
            encoder_tra=tuple(to(h) for _, h in enc),
            decoder_conv=tuple(to(c) for c, _ in dec),
            decoder_tra=tuple(to(h) for _, h in dec),
            dpgrnn_inter=tuple(to(b.init_state(batch)) for b in self.dpgrnns),
        )

    def step(self, frame: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """Enhance one STFT frame.

        Args:
            frame: (B, F, 2) noisy frame (real, imaginary).
            state: the state returned by the previous call, or ``init_state(B)``; not modified.

        Returns:
            (B, F, 2) enhanced frame and the new state.
        """
        spec = frame.unsqueeze(2)  # (B, F, 1, 2)
        x, skips, enc_conv, enc_tra = self.encoder.step(self._features(spec), state.encoder_conv, state.encoder_tra)
        inter = []
        for block, hidden in zip(self.dpgrnns, state.dpgrnn_inter):
            x, hidden = block.step(x, hidden)
            inter.append(hidden)
        mask, dec_conv, dec_tra = self.decoder.step(x, skips, state.decoder_conv, state.decoder_tra)
        out = self._apply_mask(mask, spec)[:, :, 0]  # (B, F, 2)
        return out, StreamState(enc_conv, enc_tra, dec_conv, dec_tra, tuple(inter))
