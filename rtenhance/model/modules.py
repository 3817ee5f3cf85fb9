"""GTCRN building blocks. Each causal block has ``forward`` (a whole sequence) and ``step`` (one frame
plus its state) over the same weights; frame-local blocks have only ``forward``, which works on T = 1.

Feature maps are (B, C, T, F): batch, channels, frames, bands. Module and parameter names follow the
published GTCRN so that its checkpoints load without renaming inside the blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GT_KERNEL_FRAMES = 3  # temporal kernel of the depthwise convolution in a GTConv block
GT_KERNEL_BANDS = 3  # spectral kernel of the same convolution
SFE_NEIGHBOURS = 3  # bands unfolded into channels by subband feature extraction
BAND_KERNEL = 5  # spectral kernel of the strided encoder/decoder convolutions
BAND_STRIDE = 2  # their spectral stride
LAYER_NORM_EPS = 1e-8


def sfe(x: torch.Tensor) -> torch.Tensor:
    """Subband feature extraction: stack each band with its neighbours as channels.

    (B, C, T, F) -> (B, C * 3, T, F), channel c * 3 + k holding band f + k - 1 (zero beyond the edges).
    """
    pad = SFE_NEIGHBOURS // 2
    padded = F.pad(x, (pad, pad))  # (B, C, T, F + 2)
    n = x.shape[-1]
    stacked = torch.stack([padded[..., k : k + n] for k in range(SFE_NEIGHBOURS)], dim=2)  # (B, C, 3, T, F)
    return stacked.reshape(x.shape[0], x.shape[1] * SFE_NEIGHBOURS, x.shape[2], n)


class ConvBlock(nn.Module):
    """Frame-local strided convolution over bands + BatchNorm + PReLU (Tanh for the last decoder block).

    (B, C_in, T, F_in) -> (B, C_out, T, F_out). Kernel (1, 5), stride (1, 2), padding (0, 2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int = 1,
        transposed: bool = False,
        output_padding: int = 0,
        is_last: bool = False,
    ) -> None:
        super().__init__()
        kernel, stride, padding = (1, BAND_KERNEL), (1, BAND_STRIDE), (0, BAND_KERNEL // 2)
        if transposed:
            self.conv: nn.Module = nn.ConvTranspose2d(
                in_channels, out_channels, kernel, stride, padding, output_padding=(0, output_padding), groups=groups
            )
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, groups=groups)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act: nn.Module = nn.Tanh() if is_last else nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class TRA(nn.Module):
    """Temporal recurrent attention: per-channel energy over bands -> GRU -> Linear -> sigmoid gain.

    State: GRU hidden (1, B, 2 * channels).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.att_gru = nn.GRU(channels, channels * 2, 1, batch_first=True)
        self.att_fc = nn.Linear(channels * 2, channels)

    def _attend(self, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energy = x.pow(2).mean(dim=-1).transpose(1, 2)  # (B, T, C)
        att, hidden = self.att_gru(energy, hidden)  # (B, T, 2C)
        gain = torch.sigmoid(self.att_fc(att)).transpose(1, 2)  # (B, C, T)
        return x * gain[..., None], hidden

    def init_state(self, batch: int) -> torch.Tensor:
        """Zero GRU hidden state, (1, batch, 2 * channels)."""
        return torch.zeros(1, batch, self.att_gru.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, F) -> (B, C, T, F)."""
        return self._attend(x, self.init_state(x.shape[0]).to(x))[0]

    def step(self, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, 1, F), (1, B, 2C) -> (B, C, 1, F), (1, B, 2C)."""
        return self._attend(x, hidden)


class GTConvBlock(nn.Module):
    """Grouped temporal convolution block (ShuffleNetV2 style).

    Half the channels go SFE -> pointwise conv -> causal dilated depthwise conv -> pointwise conv -> TRA;
    the other half pass untouched; the halves are interleaved. The decoder's blocks were published as
    transposed convolutions; a transposed causal convolution is the causal convolution with the kernel
    flipped, which is how both paths compute it here.

    State: ``conv`` (B, channels, 2 * dilation, F) past depthwise inputs; ``tra`` (1, B, channels).
    """

    def __init__(self, channels: int, dilation: int, transposed: bool = False) -> None:
        super().__init__()
        half = channels // 2
        self.dilation = dilation
        self.transposed = transposed
        self.cache_frames = (GT_KERNEL_FRAMES - 1) * dilation
        conv_module = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.point_conv1 = conv_module(half * SFE_NEIGHBOURS, channels, 1)
        self.point_bn1 = nn.BatchNorm2d(channels)
        self.point_act = nn.PReLU()
        padding = (self.cache_frames if transposed else 0, GT_KERNEL_BANDS // 2)
        self.depth_conv = conv_module(
            channels,
            channels,
            (GT_KERNEL_FRAMES, GT_KERNEL_BANDS),
            stride=1,
            padding=padding,
            dilation=(dilation, 1),
            groups=channels,
        )
        self.depth_bn = nn.BatchNorm2d(channels)
        self.depth_act = nn.PReLU()
        self.point_conv2 = conv_module(channels, half, 1)
        self.point_bn2 = nn.BatchNorm2d(half)
        self.tra = TRA(half)

    def _depthwise(self, window: torch.Tensor) -> torch.Tensor:
        """Valid causal depthwise convolution over time: (B, C, T + 2d, F) -> (B, C, T, F)."""
        weight = self.depth_conv.weight  # (C, 1, kT, kF) for both module kinds
        if self.transposed:
            weight = weight.flip(2, 3)
        out = F.conv2d(
            window,
            weight,
            self.depth_conv.bias,
            padding=(0, GT_KERNEL_BANDS // 2),
            dilation=(self.dilation, 1),
            groups=self.depth_conv.groups,
        )
        return self.depth_act(self.depth_bn(out))

    def _pointwise_in(self, x1: torch.Tensor) -> torch.Tensor:
        return self.point_act(self.point_bn1(self.point_conv1(sfe(x1))))

    def _pointwise_out(self, h: torch.Tensor) -> torch.Tensor:
        return self.point_bn2(self.point_conv2(h))

    @staticmethod
    def _shuffle(h: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Interleave two (B, C/2, T, F) halves channel by channel -> (B, C, T, F)."""
        b, half, t, f = h.shape
        return torch.stack([h, x2], dim=2).reshape(b, half * 2, t, f)

    def init_state(self, batch: int, bands: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (conv cache (B, C, 2d, F), TRA hidden (1, B, C))."""
        channels = self.depth_conv.weight.shape[0]
        return torch.zeros(batch, channels, self.cache_frames, bands), self.tra.init_state(batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, F) -> (B, C, T, F)."""
        x1, x2 = x.chunk(2, dim=1)
        h = self._pointwise_in(x1)  # (B, C, T, F)
        h = self._depthwise(F.pad(h, (0, 0, self.cache_frames, 0)))
        h = self.tra(self._pointwise_out(h))  # (B, C/2, T, F)
        return self._shuffle(h, x2)

    def step(
        self, x: torch.Tensor, conv_cache: torch.Tensor, tra_hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame: (B, C, 1, F), (B, C, 2d, F), (1, B, C) -> (B, C, 1, F), new cache, new hidden."""
        x1, x2 = x.chunk(2, dim=1)
        h = self._pointwise_in(x1)  # (B, C, 1, F)
        window = torch.cat([conv_cache, h], dim=2)  # (B, C, 2d + 1, F)
        h = self._depthwise(window)
        h, tra_hidden = self.tra.step(self._pointwise_out(h), tra_hidden)
        return self._shuffle(h, x2), window[:, :, 1:], tra_hidden


class GRNN(nn.Module):
    """Grouped GRU: two GRUs, each on half of the features. (N, L, In) -> (N, L, hidden_size * dirs)."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn1 = nn.GRU(input_size // 2, hidden_size // 2, 1, batch_first=True, bidirectional=bidirectional)
        self.rnn2 = nn.GRU(input_size // 2, hidden_size // 2, 1, batch_first=True, bidirectional=bidirectional)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, L, In), hidden (dirs, N, hidden_size) or None for zeros -> y, new hidden."""
        x1, x2 = x.chunk(2, dim=-1)
        h1 = h2 = None
        if hidden is not None:
            h1, h2 = (h.contiguous() for h in hidden.chunk(2, dim=-1))
        y1, h1 = self.rnn1(x1, h1)
        y2, h2 = self.rnn2(x2, h2)
        return torch.cat([y1, y2], dim=-1), torch.cat([h1, h2], dim=-1)


class DPGRNN(nn.Module):
    """Grouped dual-path RNN: bidirectional GRU across bands, then causal GRU across time, each with
    Linear + LayerNorm + residual. (B, C, T, F) -> (B, C, T, F).

    State: inter-path GRU hidden (B, F, C).
    """

    def __init__(self, channels: int, bands: int) -> None:
        super().__init__()
        self.channels = channels
        self.bands = bands
        self.intra_rnn = GRNN(channels, channels // 2, bidirectional=True)
        self.intra_fc = nn.Linear(channels, channels)
        self.intra_ln = nn.LayerNorm((bands, channels), eps=LAYER_NORM_EPS)
        self.inter_rnn = GRNN(channels, channels)
        self.inter_fc = nn.Linear(channels, channels)
        self.inter_ln = nn.LayerNorm((bands, channels), eps=LAYER_NORM_EPS)

    def _intra(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F, C) -> (B, T, F, C), across bands within each frame."""
        b, t, f, c = x.shape
        y = self.intra_rnn(x.reshape(b * t, f, c))[0]  # (B*T, F, C)
        y = self.intra_fc(y).reshape(b, t, f, c)
        return x + self.intra_ln(y)

    def _inter(self, x: torch.Tensor, hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F, C), hidden (B, F, C) or None -> (B, T, F, C), new hidden (B, F, C); across time."""
        b, t, f, c = x.shape
        seq = x.transpose(1, 2).reshape(b * f, t, c)  # (B*F, T, C)
        h = None if hidden is None else hidden.reshape(1, b * f, c)
        y, h = self.inter_rnn(seq, h)  # (B*F, T, C), (1, B*F, C)
        y = self.inter_fc(y).reshape(b, f, t, c).transpose(1, 2)  # (B, T, F, C)
        return x + self.inter_ln(y), h.reshape(b, f, c)

    def init_state(self, batch: int) -> torch.Tensor:
        """Zero inter-path hidden state, (B, F, C)."""
        return torch.zeros(batch, self.bands, self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, F) -> (B, C, T, F)."""
        y = self._intra(x.permute(0, 2, 3, 1))  # (B, T, F, C)
        y, _ = self._inter(y, None)
        return y.permute(0, 3, 1, 2)

    def step(self, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame: (B, C, 1, F), (B, F, C) -> (B, C, 1, F), new hidden."""
        y = self._intra(x.permute(0, 2, 3, 1))  # (B, 1, F, C)
        y, hidden = self._inter(y, hidden)
        return y.permute(0, 3, 1, 2), hidden
