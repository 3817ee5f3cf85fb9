"""Batch normalisation over the global batch of a distributed run, on CPU (gloo) as on CUDA.

Under data parallelism each process sees ``1 / world_size`` of the batch; plain BatchNorm would normalise
with the statistics of that share, so the run would differ from a single process with the same global
batch. Here the per-channel sums and sums of squares are all-reduced (differentiably) so that every process
normalises with, and backpropagates through, the statistics of the whole batch. torch's SyncBatchNorm does
this only on GPUs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics are those of the batch of all processes.

    Same parameters, buffers and state_dict keys as ``nn.BatchNorm2d``; in eval mode it is exactly
    ``nn.BatchNorm2d``. ``group`` is the process group the statistics are reduced over.
    """

    group: dist.ProcessGroup | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), normalised per channel over the global batch in training mode."""
        if not self.training:
            return super().forward(x)
        channels = x.shape[1]
        count = torch.full((1,), float(x.numel() // channels), dtype=x.dtype, device=x.device)
        local = torch.cat([x.sum((0, 2, 3)), x.square().sum((0, 2, 3)), count])  # (2C + 1,)
        total = dist_fn.all_reduce(local, group=self.group or dist.group.WORLD)
        n = total[-1]
        mean = total[:channels] / n
        var = (total[channels : 2 * channels] / n - mean.square()).clamp_min(0.0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), m)
            self.running_var.lerp_(var.detach() * n / (n - 1.0), m)
        scale = self.weight * torch.rsqrt(var + self.eps)  # (C,)
        shift = self.bias - mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def use_global_batchnorm(model: nn.Module, group: dist.ProcessGroup | None = None) -> int:
    """Turn every ``nn.BatchNorm2d`` of ``model`` into a ``GlobalBatchNorm2d`` in place (weights kept).

    Returns:
        The number of layers converted.
    """
    converted = 0
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d
            module.group = group
            converted += 1
    return converted
