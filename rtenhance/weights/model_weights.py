"""A trained GTCRN without PyTorch: its configuration, its named weights, the native step's plan, its cost.

``ModelWeights`` is what the daemon, ``enhance`` and ``profile`` load (from the ``.npz`` format of
``npz_format``). The native backend runs it directly from ``plan``; the PyTorch-based backends, training
and evaluation rebuild the network with ``torch_model`` (needs the ``train`` extra).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from rtenhance.backends.native.plan_format import Plan
from rtenhance.config import ModelConfig

if TYPE_CHECKING:
    from rtenhance.model.gtcrn import GTCRN

from rtenhance.backends import TORCH_HINT


class TorchMissing(ImportError):
    """PyTorch is needed for this and is not installed; the message says what to install."""


def require_torch(what: str) -> None:
    """Raise ``TorchMissing`` naming ``what`` when PyTorch is not installed."""
    if importlib.util.find_spec("torch") is None:
        raise TorchMissing(f"{what} needs PyTorch, which is not installed ({TORCH_HINT})")


@dataclass(frozen=True)
class ModelWeights:
    """A trained model, torch-free.

    Attributes:
        config: the network's shape.
        tensors: parameter and buffer name -> float32 array (``GTCRN.state_dict`` names and shapes).
        plan: the native step's plan and folded weights (``backends.native.plan_format``).
        profile: ``rtenhance profile``'s figures for this architecture (``profile.totals`` plus ``layers``).
    """

    config: ModelConfig
    tensors: dict[str, np.ndarray]
    plan: Plan
    profile: dict[str, Any]

    def torch_model(self) -> GTCRN:
        """The network as a PyTorch module in eval mode (needs PyTorch).

        Raises:
            TorchMissing: PyTorch is not installed.
        """
        require_torch("this backend or command")
        import torch

        from rtenhance.model.gtcrn import GTCRN

        model = GTCRN(self.config)
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in self.tensors.items()}, strict=True)
        return model.eval()

    @classmethod
    def from_model(cls, model: GTCRN) -> ModelWeights:
        """Everything the torch-free runtime needs, computed from a PyTorch model (needs PyTorch)."""
        from rtenhance.backends.native.plan import build_plan
        from rtenhance.model.profile import profile_model, totals

        tensors = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
        costs = profile_model(model.eval())
        layers = [{"name": c.name, "params": c.params, "fixed_params": c.fixed_params, "params_dense": c.dense_params,
                   "mmac_per_second": c.macs_per_second / 1e6, "mmac_per_second_dense": c.dense_macs_per_second / 1e6}
                  for c in costs]
        return cls(model.config, tensors, build_plan(model), {**totals(costs), "layers": layers})


def as_weights(model: GTCRN | ModelWeights) -> ModelWeights:
    """``model`` as ``ModelWeights`` (converted when it is a PyTorch module)."""
    return model if isinstance(model, ModelWeights) else ModelWeights.from_model(model)


def as_torch_model(model: GTCRN | ModelWeights) -> GTCRN:
    """``model`` as a PyTorch module (rebuilt when it is ``ModelWeights``; needs PyTorch)."""
    return model.torch_model() if isinstance(model, ModelWeights) else model


Model = Union["GTCRN", ModelWeights]  # what inference code takes: a PyTorch network or its torch-free weights
