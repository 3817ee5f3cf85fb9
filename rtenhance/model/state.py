"""Streaming state of one GTCRN: every tensor that carries information from one frame to the next."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class StreamState:
    """Named recurrent state of ``GTCRN.step``; never mutated, ``step`` returns a new one.

    With the published sizes (C = 16 channels, F = 33 bands after the encoder, dilations 1, 2, 5):

    Attributes:
        encoder_conv: per encoder GTConv block, its depthwise convolution cache (B, C, 2 * d, F):
            (B, 16, 2, 33), (B, 16, 4, 33), (B, 16, 10, 33).
        encoder_tra: per encoder GTConv block, its TRA GRU hidden state (1, B, C) = (1, B, 16).
        decoder_conv: per decoder GTConv block (dilations 5, 2, 1), its convolution cache (B, C, 2 * d, F).
        decoder_tra: per decoder GTConv block, its TRA GRU hidden state (1, B, C).
        dpgrnn_inter: per DPGRNN block, the hidden state of its across-time GRUs (B, F, C) = (B, 33, 16).
    """

    encoder_conv: tuple[torch.Tensor, ...]
    encoder_tra: tuple[torch.Tensor, ...]
    decoder_conv: tuple[torch.Tensor, ...]
    decoder_tra: tuple[torch.Tensor, ...]
    dpgrnn_inter: tuple[torch.Tensor, ...]

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """Flat mapping ``{"encoder_conv_0": tensor, ...}`` in a fixed order (for export and tests)."""
        return {f"{f.name}_{i}": t for f in fields(self) for i, t in enumerate(getattr(self, f.name))}

    @classmethod
    def from_named_tensors(cls, named: dict[str, torch.Tensor]) -> "StreamState":
        """Inverse of ``named_tensors``."""
        groups: dict[str, list[torch.Tensor]] = {f.name: [] for f in fields(cls)}
        for name, tensor in named.items():
            group, _, _index = name.rpartition("_")
            groups[group].append(tensor)
        return cls(**{k: tuple(v) for k, v in groups.items()})

    def clone(self) -> "StreamState":
        """A deep copy: every tensor cloned."""
        return StreamState(**{f.name: tuple(t.clone() for t in getattr(self, f.name)) for f in fields(self)})
